/* services/compute_client_files.c — a computation's library and data
 * files on the client (pc_compute_opts.library and .files;
 * docs/computations.md, "Limits").
 *
 * Each file is read into memory once (a regular file, CP_UPLOAD_MAX in
 * all, at most CP_FILES_MAX data files of distinct plain base names) and
 * hashed (SHA-256 by wolfSSL): the agent uploads those bytes to every
 * node (compute_agent.c). The library must be a computation: an ELF file
 * that defines PC_COMPUTATION_SYMBOL (an ELF64 one in its symbol tables,
 * read with every offset bounded by the file's size; another class in its
 * bytes), so a wrong file is refused here with one line rather than by
 * every node.
 */
#define _GNU_SOURCE
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <wolfssl/options.h>
#include <wolfssl/wolfcrypt/sha256.h>

#include "picos/computation.h"

#include "compute_client_int.h"
#include "compute_int.h"

/* Whether an ELF file defines `sym` (dynamic or static symbol table). Not
 * an ELF64 file: whether its bytes hold the name at all. */
static bool
elf_defines(const unsigned char *p, size_t len, const char *sym)
{
    Elf64_Ehdr eh;
    size_t sl = strlen(sym);

    if (len < sizeof eh || memcmp(p, ELFMAG, SELFMAG))
        return false;
    memcpy(&eh, p, sizeof eh);
    if (eh.e_ident[EI_CLASS] != ELFCLASS64)
        return memmem(p, len, sym, sl + 1) != NULL;
    if (eh.e_shentsize != sizeof(Elf64_Shdr) || eh.e_shoff > len ||
        (size_t)eh.e_shnum > (len - eh.e_shoff) / sizeof(Elf64_Shdr))
        return false;
    for (size_t i = 0; i < eh.e_shnum; i++) {
        Elf64_Shdr sh, st;
        memcpy(&sh, p + eh.e_shoff + i * sizeof sh, sizeof sh);
        if ((sh.sh_type != SHT_DYNSYM && sh.sh_type != SHT_SYMTAB) ||
            sh.sh_link >= eh.e_shnum || sh.sh_offset > len ||
            sh.sh_size > len - sh.sh_offset)
            continue;
        memcpy(&st, p + eh.e_shoff + sh.sh_link * sizeof st, sizeof st);
        if (st.sh_offset > len || st.sh_size > len - st.sh_offset)
            continue;
        for (size_t k = 0; k < sh.sh_size / sizeof(Elf64_Sym); k++) {
            Elf64_Sym s;
            memcpy(&s, p + sh.sh_offset + k * sizeof s, sizeof s);
            if (s.st_shndx == SHN_UNDEF || s.st_name >= st.sh_size ||
                st.sh_size - s.st_name < sl + 1)
                continue;
            if (!memcmp(p + st.sh_offset + s.st_name, sym, sl + 1))
                return true;
        }
    }
    return false;
}

static pc_err
read_file(const char *path, size_t max, unsigned char **out, size_t *len,
          char *err, size_t esize)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    unsigned char *buf;
    size_t n = 0;

    *out = NULL;
    if (fd < 0) {
        snprintf(err, esize, "%s: %s", path, strerror(errno));
        return PC_EINVAL;
    }
    if (fstat(fd, &st) || !S_ISREG(st.st_mode)) {
        snprintf(err, esize, "%s: not a regular file", path);
        close(fd);
        return PC_EINVAL;
    }
    if ((uint64_t)st.st_size > max) {
        snprintf(err, esize, "%s: %lld bytes, more than %zu in all", path,
                 (long long)st.st_size, max);
        close(fd);
        return PC_EINVAL;
    }
    if (!(buf = malloc((size_t)st.st_size + 1))) {
        close(fd);
        snprintf(err, esize, "%s", pc_strerror(PC_ENOMEM));
        return PC_ENOMEM;
    }
    while (n < (size_t)st.st_size) {
        ssize_t r = read(fd, buf + n, (size_t)st.st_size - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            snprintf(err, esize, "%s: %s", path,
                     r < 0 ? strerror(errno) : "shorter than its size");
            free(buf);
            close(fd);
            return PC_EINVAL;
        }
        n += (size_t)r;
    }
    close(fd);
    *out = buf;
    *len = n;
    return PC_OK;
}

static void
sha256(const unsigned char *p, size_t len, uint8_t out[32])
{
    wc_Sha256 s;

    wc_InitSha256(&s);
    while (len) {
        word32 k = len > (1u << 30) ? (1u << 30) : (word32)len;
        wc_Sha256Update(&s, p, k);
        p += k;
        len -= k;
    }
    wc_Sha256Final(&s, out);
    wc_Sha256Free(&s);
}

/* Read the library and the files into c (err: why not). */
pc_err
pc__cc_load_files(pc_compute *c, const pc_compute_opts *o, char *err,
                  size_t esize)
{
    size_t nf = 0, total = 0;
    pc_err rc;

    while (o->files && o->files[nf])
        nf++;
    if (nf > CP_FILES_MAX) {
        snprintf(err, esize, "%zu data files: at most %d", nf, CP_FILES_MAX);
        return PC_EINVAL;
    }
    if (!(c->files = calloc(nf + 1, sizeof *c->files)))
        return PC_ENOMEM;
    for (size_t k = 0; k <= nf; k++) {
        const char *path = k ? o->files[k - 1] : o->library;
        const char *base = strrchr(path, '/');
        cfile *f = &c->files[k];
        base = base ? base + 1 : path;
        c->nfiles = k + 1;
        if (k && !pc__cc_plain_name(base)) {
            snprintf(err, esize, "data file %s: no file name", path);
            return PC_EINVAL;
        }
        for (size_t q = 1; k && q < k; q++) {
            if (!strcmp(c->files[q].name, base)) {
                snprintf(err, esize, "data files %s and %s have one name",
                         o->files[q - 1], path);
                return PC_EINVAL;
            }
        }
        if (!(f->name = strdup(k ? base : "")))
            return PC_ENOMEM;
        if ((rc = read_file(path, CP_UPLOAD_MAX - total, &f->data, &f->len, err,
                            esize)) != PC_OK)
            return rc;
        total += f->len;
        if (!k && !elf_defines(f->data, f->len, PC_COMPUTATION_SYMBOL)) {
            snprintf(err, esize,
                     "%s is not a computation: it defines no %s (see "
                     "picos/computation.h)",
                     path, PC_COMPUTATION_SYMBOL);
            return PC_EINVAL;
        }
        sha256(f->data, f->len, f->sha);
    }
    return PC_OK;
}
