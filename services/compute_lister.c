/* services/compute_lister.c — the compute client's lister task: which
 * compute nodes the cluster has (docs/computations.md, "Scheduling").
 *
 * Every LIST_PERIOD seconds it lists the cluster's names
 * (pc_cluster_names(), the PC_COMPUTE_NAME_PREFIX ones matching opts.nodes
 * by fnmatch), locates those it has not located yet, or whose listed ref
 * changed (pc_locate() connects to their node), and hands the list to the
 * agent (CL_NODES, a pointer the agent frees). It shares only a small
 * refcounted struct (lshare) with the client, so close never waits for it:
 * a stop flag under the lshare's mutex, and CL_STOP to wake it.
 */
#define _GNU_SOURCE
#include <fnmatch.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "picos/registry.h"
#include "picos/task.h"

#include "compute_client_int.h"

#define LIST_PERIOD 1.5

static bool
matches(char *const *patterns, size_t np, const char *name)
{
    if (!np)
        return true;
    for (size_t k = 0; k < np; k++)
        if (!fnmatch(patterns[k], name, 0))
            return true;
    return false;
}

void
pc__cc_ls_unref(lshare *ls)
{
    if (ls && atomic_fetch_sub(&ls->refs, 1) == 1) {
        for (size_t k = 0; k < ls->npatterns; k++)
            free(ls->patterns[k]);
        free(ls->patterns);
        free(ls->known);
        pthread_mutex_destroy(&ls->mu);
        free(ls);
    }
}

static void
lister_end(void *arg)
{
    pc__cc_ls_unref(arg);
}

pc_msg *
pc__cc_lister(void *arg)
{
    lshare *ls = arg;
    const size_t plen = strlen(PC_COMPUTE_NAME_PREFIX);

    pc_at_exit(lister_end, ls);
    for (;;) {
        pc_name_info *ni = NULL;
        size_t n = 0;
        pc_msg *m = NULL;
        bool stop;

        pthread_mutex_lock(&ls->mu);
        stop = ls->stop;
        pthread_mutex_unlock(&ls->mu);
        if (stop)
            break;
        if (pc_cluster_names(PC_NAME_TASK, &ni, &n, 2.0) == PC_OK) {
            nlist *l = malloc(sizeof *l + n * sizeof l->e[0]);
            if (l) {
                l->n = 0;
                for (size_t i = 0; i < n; i++) {
                    const char *node = ni[i].name + plen;
                    size_t k;
                    if (strncmp(ni[i].name, PC_COMPUTE_NAME_PREFIX, plen) ||
                        !*node || !matches(ls->patterns, ls->npatterns, node))
                        continue;
                    for (k = 0; k < ls->nknown; k++)
                        if (!strcmp(ls->known[k].name, node))
                            break;
                    if (k == ls->nknown) {
                        lknown *kk = realloc(ls->known, (k + 1) * sizeof *kk);
                        if (!kk)
                            continue;
                        ls->known = kk;
                        memset(&kk[k], 0, sizeof kk[k]);
                        snprintf(kk[k].name, sizeof kk[k].name, "%s", node);
                        ls->nknown++;
                    }
                    lknown *kn = &ls->known[k];
                    if (!pc_ref_eq(kn->listed, ni[i].ref) ||
                        pc_ref_is_nil(kn->located)) {
                        pc_ref r;
                        if (pc_locate(PC_NAME_TASK, ni[i].name, 2.0, &r) !=
                            PC_OK)
                            continue;
                        kn->listed = ni[i].ref;
                        kn->located = r;
                    }
                    l->e[l->n].ref = kn->located;
                    snprintf(l->e[l->n].name, sizeof l->e[l->n].name, "%s",
                             node);
                    l->n++;
                }
                pthread_mutex_lock(&ls->mu);
                stop = ls->stop;
                pthread_mutex_unlock(&ls->mu);
                if (stop || pc_msg_new(&m, CL_NODES, &l, sizeof l) != PC_OK ||
                    pc_send(ls->agent, &m) != PC_OK) {
                    pc_msg_free(&m);
                    free(l);
                }
            }
            free(ni);
        }
        if (pc_recv(&m, LIST_PERIOD) == PC_OK && pc_msg_is(m, CL_STOP)) {
            pc_msg_free(&m);
            break;
        }
        pc_msg_free(&m);
    }
    return NULL;
}
