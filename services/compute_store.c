/* services/compute_store.c — the compute node's files: plain names,
 * directories, their recursive removal, SHA-256.
 *
 * DATA_DIR/compute/ holds lib/<sha256>.so (the libraries) and one s-<id>/
 * per session (docs/computations.md, "Inside a node"). A session's
 * directory is removed with everything in it when the session ends, and a
 * node that starts removes what a previous run left (it was killed before
 * it could). The removal walks with openat()/unlinkat() relative to
 * directory fds and never follows a symlink, so a worker that planted one
 * in its scratch directory can't make the node delete anything outside.
 *
 * The hashes are wolfSSL's (libpicos links it for TLS); the state is kept
 * in opaque storage of the header so that callers need no wolfSSL header.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <wolfssl/options.h>
#include <wolfssl/wolfcrypt/sha256.h>

#include "compute_node_int.h"

_Static_assert(sizeof(wc_Sha256) <= sizeof(pc__cst_sha),
               "pc__cst_sha too small for wc_Sha256");

bool
pc__cst_plain_name(const char *name)
{
    size_t n = name ? strnlen(name, 256) : 0;

    return n > 0 && n <= 255 && !strchr(name, '/') && strcmp(name, ".") &&
           strcmp(name, "..");
}

int
pc__cst_mkdir(const char *path, mode_t mode)
{
    struct stat st;

    if (mkdir(path, mode) != 0) {
        if (errno != EEXIST)
            return errno;
        if (lstat(path, &st) != 0)
            return errno;
        if (!S_ISDIR(st.st_mode))
            return ENOTDIR;
    }
    return chmod(path, mode) == 0 ? 0 : errno;
}

/* Empty the directory open as fd (closed here). */
static int
rm_in(int fd)
{
    DIR *d = fdopendir(fd);
    struct dirent *e;
    int err = 0;

    if (!d) {
        err = errno;
        close(fd);
        return err;
    }
    while ((e = readdir(d))) {
        int sub, e2;
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        if (unlinkat(dirfd(d), e->d_name, 0) == 0 || errno == ENOENT)
            continue;
        if (errno != EISDIR && errno != EPERM) {
            err = err ? err : errno;
            continue;
        }
        sub = openat(dirfd(d), e->d_name,
                     O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (sub < 0) {
            err = err ? err : errno;
            continue;
        }
        /* a directory its owner made unreadable (0000): ours to open */
        (void)fchmod(sub, 0700);
        e2 = rm_in(sub);
        if (e2 && !err)
            err = e2;
        if (unlinkat(dirfd(d), e->d_name, AT_REMOVEDIR) != 0 && !err)
            err = errno;
    }
    closedir(d);
    return err;
}

int
pc__cst_rm_tree(const char *path)
{
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC), err;

    if (fd < 0) {
        if (errno == ENOENT)
            return 0;
        if (errno == ENOTDIR || errno == ELOOP)
            return unlink(path) == 0 ? 0 : errno;
        return errno;
    }
    (void)fchmod(fd, 0700);
    err = rm_in(fd);
    if (rmdir(path) != 0 && !err)
        err = errno;
    return err;
}

void
pc__cst_rm_sessions(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    char path[4400];

    if (!d)
        return;
    while ((e = readdir(d)))
        if (!strncmp(e->d_name, "s-", 2)) {
            snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
            (void)pc__cst_rm_tree(path);
        }
    closedir(d);
}

void
pc__cst_hex(const uint8_t *sha, char *out)
{
    static const char digits[] = "0123456789abcdef";

    for (int i = 0; i < 32; i++) {
        out[2 * i] = digits[sha[i] >> 4];
        out[2 * i + 1] = digits[sha[i] & 15];
    }
    out[64] = '\0';
}

void
pc__cst_sha_init(pc__cst_sha *s)
{
    wc_InitSha256((wc_Sha256 *)(void *)s->st);
}

void
pc__cst_sha_update(pc__cst_sha *s, const void *data, size_t len)
{
    const uint8_t *p = data;

    /* wc_Sha256Update takes a word32 length */
    while (len) {
        word32 n = len > (1u << 30) ? (1u << 30) : (word32)len;
        wc_Sha256Update((wc_Sha256 *)(void *)s->st, p, n);
        p += n;
        len -= n;
    }
}

void
pc__cst_sha_final(pc__cst_sha *s, uint8_t out[32])
{
    wc_Sha256Final((wc_Sha256 *)(void *)s->st, out);
    wc_Sha256Free((wc_Sha256 *)(void *)s->st);
}
