/* tests/hotswap_mod.c — a task function built twice as a loadable module
 * (HS_VERSION "v1" and "v2") for test_hotswap's module swap. It answers
 * "get" with its version and accepts every hot-swap offer. */
#include <string.h>

#include "picos/hotswap.h"
#include "picos/picos.h"

pc_msg *hs_worker(void *arg);

pc_msg *
hs_worker(void *arg)
{
    pc_msg *m;

    (void)arg;
    pc_hot_swappable(true);
    while (pc_recv(&m, -1) == PC_OK) {
        if (pc_msg_is(m, PC_MSG_HOTSWAP))
            pc_hot_swap_accept(&m); /* returns only if the offer is stale */
        else if (pc_msg_is(m, "get"))
            pc_send_data(pc_msg_sender(m), "version", HS_VERSION,
                         strlen(HS_VERSION));
        else if (pc_msg_is(m, "quit")) {
            pc_msg_free(&m);
            return NULL;
        }
        pc_msg_free(&m);
    }
    return NULL;
}
