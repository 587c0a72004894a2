/* hotswap.c — replacing a running server's code (pycos's hotswap.py).
 *
 *     picos-hotswap [MODULE]     (default: the one built from hotswap_funcs.c)
 *
 * A daemon server answers numbers; version 1, here, doubles them. Versions 2
 * (squares) and 3 (cubes) come from a module loaded at run time, as pycos
 * loads hotswap_funcs.py. The admin task:
 *
 *  1. queues three requests, then asks the server to swap to v2. The server
 *     was spawned on the admin's worker (the default), so it can't run while
 *     the admin queues: the offer reaches it with the three requests waiting.
 *     It accepts, and v2 answers them — same ref, same mailbox.
 *  2. lets a stranger task ask for a swap to v3. An offer is a message
 *     (PC_MSG_HOTSWAP) that pc_recv() returns ahead of the queued requests;
 *     what it tells is who asked (its sender), so every version takes new
 *     code only from the admin (pycos's server checks the new function's name
 *     instead). v2 declines by freeing the offer and goes on as v2: it
 *     answers the stranger's request, then the admin's last one.
 *
 * The server is a daemon: pc_node_run() ends it once the admin is done, and
 * only then may main() unload the module it runs from.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "picos/picos.h"

#ifndef HOTSWAP_FUNCS
#define HOTSWAP_FUNCS "./libpicos-hotswap-funcs.so"
#endif

static pc_module *funcs; /* server_v2 and server_v3 */
static pc_ref admin_ref, server_ref;
static bool stranger_ok, admin_ok;

/* Version 1. Its arg, like the other versions', points to the admin's ref. */
static pc_msg *
server_v1(void *arg)
{
    const pc_ref *admin = arg;
    char text[64];
    pc_msg *m;

    pc_hot_swappable(true);
    while (pc_recv(&m, -1) == PC_OK) {
        if (!pc_msg_is(m, PC_MSG_HOTSWAP)) {
            long n = atol(pc_msg_str(m));
            snprintf(text, sizeof text, "v1: %ld doubled is %ld", n, 2 * n);
            pc_send_data(pc_msg_sender(m), "reply", text, strlen(text));
        } else if (!pc_ref_eq(pc_msg_sender(m), *admin)) {
            printf("server v1: swap asked by %s, not the admin: declined\n",
                   pc_ref_str(pc_msg_sender(m), text, sizeof text));
        } else {
            printf("server v1: swap asked by the admin, %zu requests queued: "
                   "accepted\n",
                   pc_mailbox_depth());
            pc_hot_swap_accept(&m); /* returns only if a newer offer came */
        }
        pc_msg_free(&m);
    }
    return NULL;
}

static bool
request(long n)
{
    char text[32];

    snprintf(text, sizeof text, "%ld", n);
    return pc_send_data(server_ref, "request", text, strlen(text)) == PC_OK;
}

/* Wait for a reply, print it, and check it came from `version`. */
static bool
reply(const char *who, const char *version)
{
    pc_msg *m;

    if (pc_recv(&m, 10.0) != PC_OK)
        return false;
    printf("%s got %s\n", who, pc_msg_str(m));
    bool ok = strncmp(pc_msg_str(m), version, strlen(version)) == 0;
    pc_msg_free(&m);
    return ok;
}

static pc_msg *
stranger(void *arg)
{
    char me[48];

    (void)arg;
    printf("stranger %s: asking the server to swap to v3\n",
           pc_ref_str(pc_self(), me, sizeof me));
    stranger_ok = pc_hot_swap(server_ref, pc_module_fn(funcs, "server_v3"),
                              &admin_ref) == PC_OK &&
                  request(5) && reply("stranger", "v2:");
    return NULL;
}

static pc_msg *
admin(void *arg)
{
    pc_spawn_opts daemon = {.flags = PC_TASK_DAEMON};
    pc_spawn_opts joinable = {.flags = PC_TASK_JOINABLE};
    pc_task_fn v2 = pc_module_fn(funcs, "server_v2");
    char text[48];
    pc_ref s;

    (void)arg;
    admin_ref = pc_self();
    if (!v2 || pc_spawn(server_v1, &admin_ref, &daemon, &server_ref) != PC_OK ||
        !request(1) || !reply("admin", "v1:"))
        return NULL;
    printf("admin: the server runs as %s\n",
           pc_ref_str(server_ref, text, sizeof text));
    if (!request(2) || !request(3) || !request(4))
        return NULL;
    printf("admin: 3 requests queued; asking the server to swap to v2\n");
    if (pc_hot_swap(server_ref, v2, &admin_ref) != PC_OK)
        return NULL;
    for (int i = 0; i < 3; i++)
        if (!reply("admin", "v2:"))
            return NULL;
    if (pc_spawn(stranger, NULL, &joinable, &s) != PC_OK ||
        pc_task_join(s, 10.0, NULL) != PC_OK)
        return NULL;
    admin_ok = stranger_ok && request(6) && reply("admin", "v2:");
    return NULL;
}

int
main(int argc, char **argv)
{
    const char *path = argc > 1 ? argv[1] : HOTSWAP_FUNCS;
    int rc = 1;

    if (pc_module_load(path, &funcs) != PC_OK) {
        fprintf(stderr, "usage: picos-hotswap [MODULE]\n");
        return 2;
    }
    if (pc_node_start(NULL) == PC_OK &&
        pc_spawn(admin, NULL, NULL, NULL) == PC_OK && pc_node_run() == PC_OK)
        rc = admin_ok ? 0 : 1;
    pc_module_free(&funcs); /* no task runs its code any more */
    return rc;
}
