/* actors/err.c — error strings and ref formatting.
 *
 * Both tables come from PC_ERR_LIST in picos/err.h, so adding an error is one
 * line there and nothing here.
 */
#include "picos/err.h"

#include <inttypes.h>
#include <stdio.h>

#include "picos/ref.h"

const char *
pc_strerror(int rc)
{
    switch (rc) {
#define PC__ERR_STR(name, code, text)                                          \
    case code:                                                                 \
        return text;
        PC_ERR_LIST(PC__ERR_STR)
#undef PC__ERR_STR
    }
    return "unknown error";
}

const char *
pc_err_name(int rc)
{
    switch (rc) {
#define PC__ERR_NAME(name, code, text)                                         \
    case code:                                                                 \
        return "PC_" #name;
        PC_ERR_LIST(PC__ERR_NAME)
#undef PC__ERR_NAME
    }
    return "PC_UNKNOWN";
}

char *
pc_ref_str(pc_ref r, char *buf, unsigned size)
{
    if (buf && size)
        snprintf(buf, size, "%" PRIx64 ":%" PRIu32 ".%" PRIu32, r.node,
                 (uint32_t)r.id, (uint32_t)(r.id >> 32));
    return buf;
}
