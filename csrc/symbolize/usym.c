#include "symbolize/usym.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/grow.h"
#include "core/htab.h"
#include "symbolize/elf.h"

/* Objects whose symbols are kept at once. One cache for the whole process: every
 * monitor shares the libraries it has read (the first read of a large object with
 * compressed debug information costs a tenth of a second). */
#define DN_USYM_FILES 64

static pthread_mutex_t elf_lock = PTHREAD_MUTEX_INITIALIZER;
static struct dn_elf_cache *elf_cache;

/* fork() while a sampler thread names frames would leave the lock held for good in the
 * child: fork waits for it instead. */
static void atfork_prepare(void)
{
    pthread_mutex_lock(&elf_lock);
}

static void atfork_release(void)
{
    pthread_mutex_unlock(&elf_lock);
}

static void register_atfork(void)
{
    pthread_atfork(atfork_prepare, atfork_release, atfork_release);
}

static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;

enum kind { K_FILE, K_ANON, K_DELETED, K_MEMFD, K_SPECIAL };

struct xmap {
    uint64_t start, end, off, ino;
    int kind;
    char *path; /* K_FILE and K_SPECIAL */
};

struct pmaps {
    uint32_t tgid; /* the key */
    struct xmap *v;
    size_t n;
    int64_t read_ns; /* CLOCK_MONOTONIC when read */
};

struct dn_usym {
    struct dn_htab procs; /* tgid -> struct pmaps */
    char path_buf[4200];
    char sym_buf[512], src_buf[512]; /* the last result, copied out of the shared cache */
    char *text; /* the last maps file read */
    size_t text_cap;
};

struct dn_usym *dn_usym_new(void)
{
    pthread_once(&atfork_once, register_atfork);
    struct dn_usym *u = calloc(1, sizeof *u);
    if (!u)
        return NULL;
    dn_htab_init(&u->procs, sizeof(uint32_t));
    return u;
}

static void pmaps_free(struct pmaps *p)
{
    if (!p)
        return;
    for (size_t i = 0; i < p->n; i++)
        free(p->v[i].path);
    free(p->v);
    free(p);
}

void dn_usym_free(struct dn_usym *u)
{
    if (!u)
        return;
    for (size_t i = 0; i < u->procs.cap; i++)
        pmaps_free(u->procs.slots[i]);
    dn_htab_free(&u->procs);
    free(u->text);
    free(u);
}

/* A hexadecimal or decimal field at *s, and *s past it; false when there is none. */
static bool field(const char **s, const char *end, unsigned base, unsigned long long *out)
{
    const char *c = *s;
    unsigned long long v = 0;
    for (; c < end; c++) {
        unsigned d = *c >= '0' && *c <= '9'                  ? (unsigned)(*c - '0')
                     : base == 16 && *c >= 'a' && *c <= 'f' ? (unsigned)(*c - 'a' + 10)
                                                            : 99;
        if (d >= base)
            break;
        v = v * base + d;
    }
    if (c == *s)
        return false;
    *out = v;
    *s = c;
    return true;
}

/* One line of /proc/PID/maps, "start-end perms offset maj:min inode   path", in
 * [line, end): into *m when it is executable code (1), 0 when it is not, -1 when
 * malformed. Parsed by hand: sscanf took half of reading a process's maps. */
static int parse_line(const char *line, const char *end, struct xmap *m, const char **path,
                      size_t *path_len)
{
    const char *c = line;
    unsigned long long start, stop, off, dev, ino;
    if (!field(&c, end, 16, &start) || c == end || *c++ != '-' || !field(&c, end, 16, &stop) ||
        end - c < 6 || *c != ' ')
        return -1;
    if (c[3] != 'x') /* "rwxp": frames are in code only */
        return 0;
    c += 6;
    if (!field(&c, end, 16, &off) || c == end || *c++ != ' ' || !field(&c, end, 16, &dev) ||
        c == end || *c++ != ':' || !field(&c, end, 16, &dev) || c == end || *c++ != ' ' ||
        !field(&c, end, 10, &ino))
        return -1;
    while (c < end && *c == ' ')
        c++;
    *m = (struct xmap){start, stop, off, ino, K_ANON, NULL};
    *path = c;
    *path_len = (size_t)(end - c);
    return 1;
}

static int parse_maps(const char *text, size_t len, struct pmaps *p)
{
    size_t cap = 0;
    for (const char *line = text, *stop = text + len; line < stop;) {
        const char *end = memchr(line, '\n', (size_t)(stop - line));
        if (!end)
            end = stop;
        struct xmap m;
        const char *path;
        size_t plen;
        int r = parse_line(line, end, &m, &path, &plen);
        line = end + 1;
        if (r <= 0)
            continue;
        static const char del[] = " (deleted)";
        if (plen && path[0] == '/') {
            if (plen > 7 && memcmp(path, "/memfd:", 7) == 0)
                m.kind = K_MEMFD;
            else if (plen > sizeof del - 1 &&
                     memcmp(path + plen - (sizeof del - 1), del, sizeof del - 1) == 0)
                m.kind = K_DELETED;
            else
                m.kind = K_FILE;
        } else if ((plen == 6 && memcmp(path, "[vdso]", 6) == 0) ||
                   (plen == 10 && memcmp(path, "[vsyscall]", 10) == 0)) {
            m.kind = K_SPECIAL;
        }
        if ((m.kind == K_FILE || m.kind == K_SPECIAL) && !(m.path = strndup(path, plen)))
            return -ENOMEM;
        if (dn_grow(&p->v, &cap, p->n + 1, sizeof *p->v, 16)) {
            free(m.path);
            return -ENOMEM;
        }
        p->v[p->n++] = m;
    }
    return 0;
}

/* The whole text of a /proc file into u->text (grown as needed): its length, or -errno. */
static ssize_t read_text(struct dn_usym *u, const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    size_t len = 0;
    for (;;) {
        if (u->text_cap - len < 4096) {
            size_t ncap = u->text_cap ? 2 * u->text_cap : 16384;
            char *t = realloc(u->text, ncap);
            if (!t) {
                close(fd);
                return -ENOMEM;
            }
            u->text = t;
            u->text_cap = ncap;
        }
        ssize_t got = read(fd, u->text + len, u->text_cap - len);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0) {
            int e = errno;
            close(fd);
            return -e;
        }
        if (got == 0)
            break;
        len += (size_t)got;
    }
    close(fd);
    return (ssize_t)len;
}

int dn_usym_read_maps(struct dn_usym *u, pid_t tgid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/maps", (int)tgid);
    ssize_t len = read_text(u, path);
    if (len < 0)
        return (int)len;
    struct pmaps *p = calloc(1, sizeof *p);
    if (!p)
        return -ENOMEM;
    p->tgid = (uint32_t)tgid;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    p->read_ns = (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
    int rc = parse_maps(u->text, (size_t)len, p);
    if (rc == 0 && p->n == 0)
        rc = -ENOENT; /* a zombie: nothing mapped any more */
    if (rc) {
        pmaps_free(p);
        return rc;
    }
    uint32_t key = (uint32_t)tgid;
    struct pmaps *old = dn_htab_del(&u->procs, &key);
    if (dn_htab_put(&u->procs, p) != 0) {
        pmaps_free(p);
        if (old && dn_htab_put(&u->procs, old) != 0)
            pmaps_free(old);
        return -ENOMEM;
    }
    pmaps_free(old);
    return 0;
}

bool dn_usym_has_maps(const struct dn_usym *u, pid_t tgid)
{
    uint32_t key = (uint32_t)tgid;
    return dn_htab_get(&u->procs, &key) != NULL;
}

int64_t dn_usym_maps_read_ns(const struct dn_usym *u, pid_t tgid)
{
    uint32_t key = (uint32_t)tgid;
    const struct pmaps *p = dn_htab_get(&u->procs, &key);
    return p ? p->read_ns : 0;
}

void dn_usym_forget(struct dn_usym *u, pid_t tgid)
{
    uint32_t key = (uint32_t)tgid;
    pmaps_free(dn_htab_del(&u->procs, &key));
}

static const char *base_name(const char *path)
{
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

void dn_usym_resolve(struct dn_usym *u, pid_t tgid, uint64_t addr, uint64_t lookup_addr,
                     struct dn_usym_frame *out)
{
    memset(out, 0, sizeof *out);
    uint32_t key = (uint32_t)tgid;
    const struct pmaps *p = dn_htab_get(&u->procs, &key);
    if (!p) {
        out->status = DN_USYM_NO_MAPS;
        out->why = "the process exited before its memory maps could be read";
        return;
    }
    const struct xmap *m = NULL;
    for (size_t i = 0; i < p->n && !m; i++)
        if (addr >= p->v[i].start && addr < p->v[i].end)
            m = &p->v[i];
    if (!m) {
        out->status = DN_USYM_UNMAPPED;
        out->why = "no executable mapping of the process holds this address";
        return;
    }
    switch (m->kind) {
    case K_ANON:
        out->status = DN_USYM_ANON;
        out->why = "the code is in anonymous memory (generated at run time)";
        return;
    case K_DELETED:
        out->status = DN_USYM_DELETED;
        out->why = "the mapped file was deleted";
        return;
    case K_MEMFD:
        out->status = DN_USYM_MEMFD;
        out->why = "the code is in a memfd, which has no file to read symbols from";
        return;
    case K_SPECIAL:
        out->status = DN_USYM_SPECIAL;
        out->symbol = m->path;
        return;
    }
    out->module = base_name(m->path);
    const char *why = NULL;
    pthread_mutex_lock(&elf_lock);
    if (!elf_cache)
        elf_cache = dn_elf_cache_new(DN_USYM_FILES);
    struct dn_elf *f = elf_cache ? dn_elf_cache_get(elf_cache, m->path, m->ino, &why) : NULL;
    if (!f && elf_cache) {
        /* Another mount namespace (a container): the file through the process's root. */
        snprintf(u->path_buf, sizeof u->path_buf, "/proc/%d/root%s", (int)tgid, m->path);
        const char *why2;
        f = dn_elf_cache_get(elf_cache, u->path_buf, m->ino, &why2);
    }
    struct dn_elf_hit hit = {0};
    if (f) {
        uint64_t look = lookup_addr >= m->start && lookup_addr < m->end ? lookup_addr : addr;
        dn_elf_lookup(f, look - m->start + m->off, &hit);
        if (hit.symbol)
            snprintf(u->sym_buf, sizeof u->sym_buf, "%s", hit.symbol);
        if (hit.src)
            snprintf(u->src_buf, sizeof u->src_buf, "%s", hit.src);
    }
    pthread_mutex_unlock(&elf_lock);
    if (!f) {
        out->status = DN_USYM_UNREADABLE;
        out->why = why ? why : "out of memory";
        return;
    }
    out->symbol = hit.symbol ? u->sym_buf : NULL;
    out->src = hit.src ? u->src_buf : NULL;
    out->line = hit.line;
    out->status = hit.symbol ? DN_USYM_OK : DN_USYM_NO_SYMBOL;
    if (!hit.symbol)
        out->why = "no symbol of the mapped object covers this address";
}
