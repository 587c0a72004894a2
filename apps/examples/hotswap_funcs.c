/* hotswap_funcs.c — new versions of picos-hotswap's server (pycos's
 * hotswap_funcs.py), built as a module the program loads at run time.
 *
 * server_v2 squares, server_v3 cubes. A new version starts from the top of
 * its function, with the task's ref and mailbox as they were; like version
 * 1 it takes new code only from the admin, the task whose ref its arg points
 * to. The module calls picos through the program, which exports its symbols.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "picos/picos.h"

pc_msg *server_v2(void *arg);
pc_msg *server_v3(void *arg);

static pc_msg *
serve(const char *version, int power, const pc_ref *admin)
{
    static const char *const verbs[] = {"", "", "squared", "cubed"};
    char text[64], me[48];
    pc_msg *m;

    pc_hot_swappable(true);
    printf("server %s: running as %s, %zu requests queued\n", version,
           pc_ref_str(pc_self(), me, sizeof me), pc_mailbox_depth());
    while (pc_recv(&m, -1) == PC_OK) {
        if (!pc_msg_is(m, PC_MSG_HOTSWAP)) {
            long n = atol(pc_msg_str(m)), r = n;
            for (int i = 1; i < power; i++)
                r *= n;
            snprintf(text, sizeof text, "%s: %ld %s is %ld", version, n,
                     verbs[power], r);
            pc_send_data(pc_msg_sender(m), "reply", text, strlen(text));
        } else if (!pc_ref_eq(pc_msg_sender(m), *admin)) {
            printf("server %s: swap asked by %s, not the admin: declined\n",
                   version, pc_ref_str(pc_msg_sender(m), me, sizeof me));
        } else {
            printf("server %s: swap asked by the admin: accepted\n", version);
            pc_hot_swap_accept(&m); /* returns only if a newer offer came */
        }
        pc_msg_free(&m);
    }
    return NULL;
}

pc_msg *
server_v2(void *arg)
{
    return serve("v2", 2, arg);
}

pc_msg *
server_v3(void *arg)
{
    return serve("v3", 3, arg);
}
