/* actors/names.c — names on this node (Erlang's register/whereis).
 *
 * A chained hash table under one mutex: names are looked up when a remote
 * node asks (pc_locate_at) or a program starts, never on a message's hot
 * path, so a lock is simpler than anything cleverer. An entry is freed by
 * pc_unregister(); a holder that ends does not remove its names itself —
 * instead every lookup and registration checks that the holder is alive
 * (pc_alive) and drops the entry when it is not, so a dead proc's name is
 * free again, as in Erlang, without a hook in the exit path. A dead
 * holder's entry stays in memory until its name is next touched.
 *
 * With a cluster name service plugged in (pc_names_set_hook(), set by
 * registry/client.c while the node has joined), a newly taken name is also
 * offered to the hook, outside the lock since it waits for the registries;
 * if the hook refuses, the local entry is taken back, so a failed
 * pc_register() leaves nothing behind. The hook is copied under its own
 * lock and called on the copy: the client clears it only at the node's end.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

typedef struct name_ent {
    struct name_ent *next;
    pc_ref ref;
    char name[];
} name_ent;

#define NBUCKETS 256

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static name_ent *buckets[NBUCKETS];

static name_ent **find(const char *name);

static pthread_mutex_t hook_mu = PTHREAD_MUTEX_INITIALIZER;
static pc_names_hook hook;

void
pc_names_set_hook(const pc_names_hook *h)
{
    pthread_mutex_lock(&hook_mu);
    hook = h ? *h : (pc_names_hook){0};
    pthread_mutex_unlock(&hook_mu);
}

static pc_names_hook
hook_get(void)
{
    pc_names_hook h;
    pthread_mutex_lock(&hook_mu);
    h = hook;
    pthread_mutex_unlock(&hook_mu);
    return h;
}

/* Remove `name` when `ref` holds it (mu not held). */
static void
drop_if(const char *name, pc_ref ref)
{
    name_ent **ep, *e = NULL;

    pthread_mutex_lock(&mu);
    ep = find(name);
    if (*ep && pc_ref_eq((*ep)->ref, ref)) {
        e = *ep;
        *ep = e->next;
    }
    pthread_mutex_unlock(&mu);
    free(e);
}

static size_t
hash(const char *s)
{
    size_t h = 14695981039346656037u; /* FNV-1a */
    while (*s)
        h = (h ^ (unsigned char)*s++) * 1099511628211u;
    return h % NBUCKETS;
}

static bool
name_ok(const char *name)
{
    return name && name[0] && strnlen(name, PC_NAME_MAX + 1) <= PC_NAME_MAX;
}

/* The slot holding `name`'s entry, or the empty slot at its chain's end
 * (mu held); an entry whose holder ended is dropped on the way. */
static name_ent **
find(const char *name)
{
    name_ent **ep = &buckets[hash(name)];

    while (*ep) {
        name_ent *e = *ep;
        if (!strcmp(e->name, name)) {
            if (pc_alive(e->ref))
                return ep;
            *ep = e->next; /* names are unique: no other entry of it */
            free(e);
            break;
        }
        ep = &e->next;
    }
    while (*ep)
        ep = &(*ep)->next;
    return ep;
}

pc_err
pc_register(const char *name, pc_ref ref)
{
    name_ent **ep, *e;
    size_t len;
    pc_err rc = PC_OK;
    bool added = false;
    pc_names_hook h;

    if (!name_ok(name))
        return PC_EINVAL;
    if (ref.node != pc_node_id() || !pc_alive(ref))
        return PC_ENOENT;
    len = strlen(name);
    pthread_mutex_lock(&mu);
    ep = find(name);
    if (*ep) {
        if (!pc_ref_eq((*ep)->ref, ref))
            rc = PC_EEXIST;
    } else if (!(e = malloc(sizeof *e + len + 1))) {
        rc = PC_ENOMEM;
    } else {
        e->ref = ref;
        memcpy(e->name, name, len + 1);
        e->next = NULL;
        *ep = e;
        added = true;
    }
    pthread_mutex_unlock(&mu);
    if (added && (h = hook_get()).reg &&
        (rc = h.reg(h.ctx, name, ref)) != PC_OK)
        drop_if(name, ref);
    return rc;
}

pc_err
pc_unregister(const char *name)
{
    name_ent **ep, *e;

    if (!name_ok(name))
        return PC_ENOENT;
    pthread_mutex_lock(&mu);
    ep = find(name);
    if ((e = *ep))
        *ep = e->next;
    pthread_mutex_unlock(&mu);
    if (!e)
        return PC_ENOENT;
    free(e);
    pc_names_hook h = hook_get();
    if (h.unreg)
        h.unreg(h.ctx, name);
    return PC_OK;
}

pc_err
pc_whereis(const char *name, pc_ref *ref)
{
    name_ent *e;

    if (!name_ok(name))
        return PC_ENOENT;
    pthread_mutex_lock(&mu);
    e = *find(name);
    if (e && ref)
        *ref = e->ref;
    pthread_mutex_unlock(&mu);
    return e ? PC_OK : PC_ENOENT;
}

/* node.c, when the node is freed: names die with it. */
void
pc__names_clear(void)
{
    pthread_mutex_lock(&mu);
    for (size_t i = 0; i < NBUCKETS; i++) {
        name_ent *e;
        while ((e = buckets[i])) {
            buckets[i] = e->next;
            free(e);
        }
    }
    pthread_mutex_unlock(&mu);
}
