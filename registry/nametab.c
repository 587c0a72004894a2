/* registry/nametab.c — a (kind, name) hash table for the registry client.
 *
 * Chained buckets that double when the table is as full as it has buckets:
 * the cache of locate answers (read by callers under the client's mutex)
 * and the names this node holds (the agent's own) are both one of these.
 * No locking here: the owner of each table says who may touch it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client_int.h"

static size_t
hash(int kind, const char *s)
{
    size_t h = 14695981039346656037u ^ (unsigned)kind; /* FNV-1a */
    while (*s)
        h = (h ^ (unsigned char)*s++) * 1099511628211u;
    return h;
}

static rc_name **
slot(rc_names *t, int kind, const char *name)
{
    rc_name **ep;

    if (!t->nb)
        return NULL;
    ep = &t->b[hash(kind, name) & (t->nb - 1)];
    while (*ep &&
           ((int)(*ep)->info.kind != kind || strcmp((*ep)->info.name, name)))
        ep = &(*ep)->next;
    return ep;
}

static bool
grow(rc_names *t)
{
    size_t nb = t->nb ? t->nb * 2 : 64;
    rc_name **b = calloc(nb, sizeof *b);

    if (!b)
        return false;
    for (size_t i = 0; i < t->nb; i++)
        for (rc_name *e = t->b[i], *next; e; e = next) {
            size_t h = hash((int)e->info.kind, e->info.name) & (nb - 1);
            next = e->next;
            e->next = b[h];
            b[h] = e;
        }
    free(t->b);
    t->b = b;
    t->nb = nb;
    return true;
}

rc_name *
pc__rc_names_get(rc_names *t, int kind, const char *name)
{
    rc_name **ep = slot(t, kind, name);
    return ep ? *ep : NULL;
}

rc_name *
pc__rc_names_put(rc_names *t, int kind, const char *name)
{
    rc_name **ep, *e;

    if (t->n >= t->nb && !grow(t) && !t->nb)
        return NULL;
    ep = slot(t, kind, name);
    if ((e = *ep)) {
        rc_name *next = e->next;
        memset(e, 0, sizeof *e);
        e->next = next;
    } else {
        if (!(e = calloc(1, sizeof *e)))
            return NULL;
        *ep = e;
        t->n++;
    }
    e->info.kind = (pc_name_kind)kind;
    snprintf(e->info.name, sizeof e->info.name, "%s", name);
    return e;
}

bool
pc__rc_names_del(rc_names *t, int kind, const char *name)
{
    rc_name **ep = slot(t, kind, name), *e;

    if (!ep || !(e = *ep))
        return false;
    *ep = e->next;
    free(e);
    t->n--;
    return true;
}

size_t
pc__rc_names_drop_if(rc_names *t, bool (*drop)(rc_name *e, void *ctx),
                     void *ctx)
{
    size_t n = 0;

    for (size_t i = 0; i < t->nb; i++)
        for (rc_name **ep = &t->b[i]; *ep;) {
            rc_name *e = *ep;
            if (drop(e, ctx)) {
                *ep = e->next;
                free(e);
                t->n--;
                n++;
            } else
                ep = &e->next;
        }
    return n;
}

static bool
all(rc_name *e, void *ctx)
{
    (void)e, (void)ctx;
    return true;
}

void
pc__rc_names_clear(rc_names *t)
{
    pc__rc_names_drop_if(t, all, NULL);
    free(t->b);
    t->b = NULL;
    t->nb = t->n = 0;
}
