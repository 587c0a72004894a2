/* channel.c — pycos's channel.py re-told: two subscriber tasks (on worker
 * 1) sum and multiply the numbers published on channel "sum_prod". The
 * publisher first delivers "start" with n = 2, which waits until both have
 * subscribed themselves and says how many got it; then it sends five numbers
 * and "end". Each subscriber gets the same message object, by reference. The
 * channel's transform drops negative numbers, so -5 reaches nobody.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "picos/picos.h"

static pc_chan *ch;
static double results[2]; /* [0] sum, [1] product */

static pc_msg *
drop_negative(void *ctx, const char *name, pc_msg *m)
{
    (void)ctx;
    (void)name;
    if (pc_msg_is(m, "num") && atof(pc_msg_str(m)) < 0)
        pc_msg_free(&m); /* the transform owns m: drop it, return NULL */
    return m;
}

static pc_msg *
subscriber(void *arg)
{
    int prod = (int)(intptr_t)arg;
    double r = prod ? 1 : 0;
    pc_msg *m = NULL;

    pc_chan_subscribe(ch, pc_self());
    while (pc_recv(&m, -1) == PC_OK && !pc_msg_is(m, "end")) {
        if (pc_msg_is(m, "num"))
            r = prod ? r * atof(pc_msg_str(m)) : r + atof(pc_msg_str(m));
        pc_msg_free(&m);
    }
    pc_msg_free(&m);
    pc_chan_unsubscribe(ch, pc_self());
    results[prod] = r;
    return NULL;
}

static pc_msg *
publisher(void *arg)
{
    static const char *nums[] = {"1.5", "2", "-5", "3", "4"};
    pc_msg *m;
    int reached = 0;

    (void)arg;
    if (pc_msg_new(&m, "start", NULL, 0) == PC_OK &&
        pc_chan_deliver(ch, &m, 2, 5.0, &reached) == PC_OK)
        printf("start reached %d subscribers\n", reached);
    pc_msg_free(&m); /* still ours when the deliver failed */
    for (size_t i = 0; i < sizeof nums / sizeof nums[0]; i++)
        if (pc_msg_new(&m, "num", nums[i], strlen(nums[i])) == PC_OK &&
            pc_chan_send(ch, &m) == PC_OK)
            printf("sent %s\n", nums[i]);
    if (pc_msg_new(&m, "end", NULL, 0) == PC_OK)
        pc_chan_send(ch, &m);
    return NULL;
}

int
main(void)
{
    pc_node_opts o = {.workers = 2};
    pc_spawn_opts w0 = {.worker = PC_WORKER(0)}, w1 = {.worker = PC_WORKER(1)};
    pc_chan_stats st;

    if (pc_node_start(&o) != PC_OK ||
        pc_chan_new(&ch, "sum_prod", drop_negative, NULL) != PC_OK ||
        pc_spawn(subscriber, (void *)0, &w1, NULL) != PC_OK ||
        pc_spawn(subscriber, (void *)1, &w1, NULL) != PC_OK ||
        pc_spawn(publisher, NULL, &w0, NULL) != PC_OK ||
        pc_node_run() != PC_OK || pc_chan_stats_get(ch, &st) != PC_OK)
        return 1;
    printf("sum: %g\nproduct: %g\n", results[0], results[1]);
    printf("channel: %llu messages, %llu dropped, %llu deliveries\n",
           (unsigned long long)st.messages, (unsigned long long)st.dropped,
           (unsigned long long)st.deliveries);
    pc_chan_free(&ch);
    return 0;
}
