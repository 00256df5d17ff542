#include "symbolize/elf.h"

#include <errno.h>
#include <fcntl.h>
#include <gelf.h>
#include <libelf.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <elfutils/libdw.h>

#include "core/grow.h"

struct sym {
    uint64_t addr, size;
    size_t name; /* offset into names */
    int rank;    /* lower is preferred among symbols at one address */
};

struct seg {
    uint64_t off, filesz, vaddr;
};

struct dn_elf {
    uint64_t dev, ino;
    int64_t mtime_ns;
    uint64_t last_use;
    struct seg *segs;
    size_t nsegs;
    struct sym *syms;
    size_t nsyms;
    char *names;
    /* Line information: kept open only for objects that have it. */
    int dw_fd;
    Elf *dw_elf;
    Dwarf *dw;
    bool dw_aranges; /* has .debug_aranges: an address outside them has no line */
};

struct dn_elf_cache {
    struct dn_elf **v;
    size_t n, max;
    uint64_t clock;
};

static void elf_free(struct dn_elf *f)
{
    if (!f)
        return;
    if (f->dw)
        dwarf_end(f->dw);
    if (f->dw_elf)
        elf_end(f->dw_elf);
    if (f->dw_fd >= 0)
        close(f->dw_fd);
    free(f->segs);
    free(f->syms);
    free(f->names);
    free(f);
}

struct dn_elf_cache *dn_elf_cache_new(size_t max_files)
{
    if (elf_version(EV_CURRENT) == EV_NONE)
        return NULL;
    struct dn_elf_cache *c = calloc(1, sizeof *c);
    if (c)
        c->max = max_files ? max_files : 1;
    return c;
}

void dn_elf_cache_free(struct dn_elf_cache *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < c->n; i++)
        elf_free(c->v[i]);
    free(c->v);
    free(c);
}

static int sym_rank(const GElf_Sym *s, const char *name)
{
    int bind = GELF_ST_BIND(s->st_info);
    int r = bind == STB_GLOBAL ? 0 : bind == STB_WEAK ? 10 : 20;
    while (*name == '_') { /* clock_nanosleep before __clock_nanosleep */
        r++;
        name++;
    }
    return r;
}

static int cmp_sym(const void *a, const void *b)
{
    const struct sym *x = a, *y = b;
    if (x->addr != y->addr)
        return x->addr < y->addr ? -1 : 1;
    return x->rank - y->rank;
}

/* Appends the function symbols of one symbol table. */
static int add_syms(struct dn_elf *f, Elf *e, Elf_Scn *scn, const GElf_Shdr *sh, size_t *cap,
                    size_t *names_len, size_t *names_cap)
{
    Elf_Data *d = elf_getdata(scn, NULL);
    if (!d || !sh->sh_entsize)
        return 0;
    size_t n = sh->sh_size / sh->sh_entsize;
    for (size_t i = 0; i < n; i++) {
        GElf_Sym s;
        if (!gelf_getsym(d, (int)i, &s))
            continue;
        int type = GELF_ST_TYPE(s.st_info);
        if ((type != STT_FUNC && type != STT_GNU_IFUNC) || s.st_shndx == SHN_UNDEF || !s.st_value)
            continue;
        const char *name = elf_strptr(e, sh->sh_link, s.st_name);
        if (!name || !*name || *name == '@')
            continue;
        size_t len = strcspn(name, "@") + 1; /* clock_nanosleep@GLIBC_2.2.5: the name */
        if (dn_grow(&f->syms, cap, f->nsyms + 1, sizeof *f->syms, 1024) ||
            dn_grow(&f->names, names_cap, *names_len + len, 1, 16384))
            return -ENOMEM;
        memcpy(f->names + *names_len, name, len - 1);
        f->names[*names_len + len - 1] = '\0';
        f->syms[f->nsyms++] = (struct sym){s.st_value, s.st_size, *names_len, sym_rank(&s, name)};
        *names_len += len;
    }
    return 0;
}

/* The first table of this type (SHT_SYMTAB or SHT_DYNSYM) with functions in it. */
static int load_table(struct dn_elf *f, Elf *e, Elf64_Word type, size_t *cap, size_t *nl,
                      size_t *ncap)
{
    for (Elf_Scn *scn = NULL; (scn = elf_nextscn(e, scn));) {
        GElf_Shdr sh;
        if (!gelf_getshdr(scn, &sh) || sh.sh_type != type)
            continue;
        int rc = add_syms(f, e, scn, &sh, cap, nl, ncap);
        if (rc)
            return rc;
    }
    return 0;
}

static bool has_section(Elf *e, const char *want)
{
    size_t shstrndx;
    if (elf_getshdrstrndx(e, &shstrndx) != 0)
        return false;
    for (Elf_Scn *scn = NULL; (scn = elf_nextscn(e, scn));) {
        GElf_Shdr sh;
        const char *name;
        if (gelf_getshdr(scn, &sh) && sh.sh_type != SHT_NOBITS &&
            (name = elf_strptr(e, shstrndx, sh.sh_name)) && strcmp(name, want) == 0)
            return true;
    }
    return false;
}

/* /usr/lib/debug/.build-id/xx/yyyy.debug from the object's GNU build id, or "". */
static void debug_file_path(Elf *e, char *out, size_t len)
{
    out[0] = '\0';
    for (Elf_Scn *scn = NULL; (scn = elf_nextscn(e, scn));) {
        GElf_Shdr sh;
        if (!gelf_getshdr(scn, &sh) || sh.sh_type != SHT_NOTE)
            continue;
        Elf_Data *d = elf_getdata(scn, NULL);
        size_t off = 0, name_off, desc_off;
        GElf_Nhdr nh;
        while (d && (off = gelf_getnote(d, off, &nh, &name_off, &desc_off)) > 0) {
            if (nh.n_type != NT_GNU_BUILD_ID || nh.n_namesz != 4 || nh.n_descsz < 2 ||
                memcmp((char *)d->d_buf + name_off, "GNU", 4) != 0)
                continue;
            const unsigned char *id = (const unsigned char *)d->d_buf + desc_off;
            int w = snprintf(out, len, "/usr/lib/debug/.build-id/%02x/", id[0]);
            for (size_t i = 1; i < nh.n_descsz && w > 0 && (size_t)w + 3 < len; i++)
                w += snprintf(out + w, len - (size_t)w, "%02x", id[i]);
            if (w > 0 && (size_t)w + 7 < len)
                strcat(out, ".debug");
            else
                out[0] = '\0';
            return;
        }
    }
}

/* Opens the separate debug file, if installed. */
static Elf *open_debug(Elf *main, int *fd_out)
{
    char path[512];
    *fd_out = -1;
    debug_file_path(main, path, sizeof path);
    if (!path[0])
        return NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return NULL;
    Elf *e = elf_begin(fd, ELF_C_READ_MMAP, NULL);
    if (!e) {
        close(fd);
        return NULL;
    }
    *fd_out = fd;
    return e;
}

static struct dn_elf *elf_load(int fd, const struct stat *st, const char **why)
{
    struct dn_elf *f = calloc(1, sizeof *f);
    if (!f) {
        *why = "out of memory";
        return NULL;
    }
    f->dw_fd = -1;
    f->dev = (uint64_t)st->st_dev;
    f->ino = (uint64_t)st->st_ino;
    f->mtime_ns = (int64_t)st->st_mtim.tv_sec * 1000000000LL + st->st_mtim.tv_nsec;
    Elf *e = elf_begin(fd, ELF_C_READ_MMAP, NULL);
    Elf *dbg = NULL;
    int dbg_fd = -1;
    size_t cap = 0, nl = 0, ncap = 0, nph = 0, seg_cap = 0;
    if (!e || elf_kind(e) != ELF_K_ELF || elf_getphdrnum(e, &nph) != 0) {
        *why = "the mapped file is not a readable ELF object";
        goto fail;
    }
    for (size_t i = 0; i < nph; i++) {
        GElf_Phdr ph;
        if (!gelf_getphdr(e, (int)i, &ph) || ph.p_type != PT_LOAD)
            continue;
        if (dn_grow(&f->segs, &seg_cap, f->nsegs + 1, sizeof *f->segs, 4))
            goto oom;
        f->segs[f->nsegs++] = (struct seg){ph.p_offset, ph.p_filesz, ph.p_vaddr};
    }
    /* .symtab (complete), else the debug file's, else .dynsym (exported names only). */
    if (load_table(f, e, SHT_SYMTAB, &cap, &nl, &ncap))
        goto oom;
    if (!f->nsyms)
        dbg = open_debug(e, &dbg_fd);
    if (!f->nsyms && dbg && load_table(f, dbg, SHT_SYMTAB, &cap, &nl, &ncap))
        goto oom;
    if (!f->nsyms && load_table(f, e, SHT_DYNSYM, &cap, &nl, &ncap))
        goto oom;
    qsort(f->syms, f->nsyms, sizeof *f->syms, cmp_sym);
    size_t k = 0; /* one symbol per address: the preferred name, the largest size */
    for (size_t i = 0; i < f->nsyms; i++) {
        if (k && f->syms[k - 1].addr == f->syms[i].addr) {
            if (f->syms[i].size > f->syms[k - 1].size)
                f->syms[k - 1].size = f->syms[i].size;
            continue;
        }
        f->syms[k++] = f->syms[i];
    }
    f->nsyms = k;

    /* Line information from the object's own DWARF only: a separate debug file's is
     * compressed, and libdw inflates all of it up front (a tenth of a second for libc,
     * seconds and hundreds of MB for a large program), in the middle of a sample. */
    if (has_section(e, ".debug_info") && (f->dw = dwarf_begin_elf(e, DWARF_C_READ, NULL))) {
        f->dw_elf = e;
        f->dw_fd = dup(fd);
        f->dw_aranges = has_section(e, ".debug_aranges");
        e = NULL;
    }
    if (e)
        elf_end(e);
    if (dbg)
        elf_end(dbg);
    if (dbg_fd >= 0)
        close(dbg_fd);
    return f;

oom:
    *why = "out of memory reading symbols";
fail:
    if (e)
        elf_end(e);
    if (dbg)
        elf_end(dbg);
    if (dbg_fd >= 0)
        close(dbg_fd);
    elf_free(f);
    return NULL;
}

struct dn_elf *dn_elf_cache_get(struct dn_elf_cache *c, const char *path, uint64_t ino,
                                const char **why)
{
    *why = NULL;
    struct stat st;
    if (stat(path, &st) != 0) {
        *why = "the mapped file cannot be found";
        return NULL;
    }
    if (ino && (uint64_t)st.st_ino != ino) {
        *why = "the mapped file was replaced on disk";
        return NULL;
    }
    int64_t mtime = (int64_t)st.st_mtim.tv_sec * 1000000000LL + st.st_mtim.tv_nsec;
    c->clock++;
    for (size_t i = 0; i < c->n; i++) {
        struct dn_elf *f = c->v[i];
        if (f->dev == (uint64_t)st.st_dev && f->ino == (uint64_t)st.st_ino && f->mtime_ns == mtime) {
            f->last_use = c->clock;
            return f;
        }
    }
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        *why = "the mapped file cannot be opened";
        return NULL;
    }
    struct dn_elf *f = elf_load(fd, &st, why);
    close(fd);
    if (!f)
        return NULL;
    f->last_use = c->clock;
    if (c->n == c->max) { /* evict the least recently used */
        size_t lru = 0;
        for (size_t i = 1; i < c->n; i++)
            if (c->v[i]->last_use < c->v[lru]->last_use)
                lru = i;
        elf_free(c->v[lru]);
        c->v[lru] = c->v[--c->n];
    }
    if (!c->v && !(c->v = calloc(c->max, sizeof *c->v))) {
        elf_free(f);
        *why = "out of memory";
        return NULL;
    }
    c->v[c->n++] = f;
    return f;
}

static bool off_to_vaddr(const struct dn_elf *f, uint64_t off, uint64_t *vaddr)
{
    for (size_t i = 0; i < f->nsegs; i++) {
        const struct seg *s = &f->segs[i];
        if (off >= s->off && off < s->off + s->filesz) {
            *vaddr = off - s->off + s->vaddr;
            return true;
        }
    }
    return false;
}

static const char *sym_at(const struct dn_elf *f, uint64_t vaddr)
{
    size_t lo = 0, hi = f->nsyms;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (f->syms[mid].addr <= vaddr)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (!lo)
        return NULL;
    const struct sym *s = &f->syms[lo - 1];
    if (s->size ? vaddr >= s->addr + s->size : lo < f->nsyms && vaddr >= f->syms[lo].addr)
        return NULL;
    return f->names + s->name;
}

static bool cu_for(Dwarf *dw, bool aranges, uint64_t vaddr, Dwarf_Die *cu)
{
    if (dwarf_addrdie(dw, vaddr, cu))
        return true;
    if (aranges)
        return false;
    /* No .debug_aranges (some compilers leave it out): walk the units' ranges. */
    Dwarf_Off off = 0, next;
    size_t hsize;
    while (dwarf_nextcu(dw, off, &next, &hsize, NULL, NULL, NULL) == 0) {
        if (dwarf_offdie(dw, off + hsize, cu) && dwarf_haspc(cu, vaddr) > 0)
            return true;
        off = next;
    }
    return false;
}

void dn_elf_lookup(struct dn_elf *f, uint64_t off, struct dn_elf_hit *hit)
{
    memset(hit, 0, sizeof *hit);
    uint64_t vaddr;
    if (!off_to_vaddr(f, off, &vaddr))
        return;
    hit->symbol = sym_at(f, vaddr);
    Dwarf_Die cu;
    if (!f->dw || !cu_for(f->dw, f->dw_aranges, vaddr, &cu))
        return;
    Dwarf_Line *l = dwarf_getsrc_die(&cu, vaddr);
    int line = 0;
    const char *src = l ? dwarf_linesrc(l, NULL, NULL) : NULL;
    if (src && dwarf_lineno(l, &line) == 0 && line > 0) {
        hit->src = src;
        hit->line = line;
    }
}
