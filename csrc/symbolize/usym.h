/* User-space frames: a process's executable mappings from /proc/PID/maps, then the
 * mapped object's symbols (symbolize/elf.c). Maps are read while the process lives and
 * kept after it exits, so its frames can still be named. Not thread-safe. */
#ifndef DENET_SYMBOLIZE_USYM_H
#define DENET_SYMBOLIZE_USYM_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

struct dn_usym;

struct dn_usym *dn_usym_new(void); /* NULL on ENOMEM */
void dn_usym_free(struct dn_usym *u);

/* (Re)reads the executable mappings of tgid. 0, or -errno (-ENOENT when it is gone: the
 * mappings read before are kept). */
int dn_usym_read_maps(struct dn_usym *u, pid_t tgid);
bool dn_usym_has_maps(const struct dn_usym *u, pid_t tgid);
/* When tgid's maps were read (CLOCK_MONOTONIC ns), 0 when never. */
int64_t dn_usym_maps_read_ns(const struct dn_usym *u, pid_t tgid);
void dn_usym_forget(struct dn_usym *u, pid_t tgid);

enum dn_usym_status {
    DN_USYM_OK,         /* symbol found */
    DN_USYM_NO_SYMBOL,  /* in a readable object, but no symbol covers it */
    DN_USYM_NO_MAPS,    /* the process's maps were never read */
    DN_USYM_UNMAPPED,   /* no executable mapping holds the address */
    DN_USYM_ANON,       /* anonymous memory (JIT code, say) */
    DN_USYM_DELETED,    /* the mapped file was deleted */
    DN_USYM_MEMFD,      /* a memfd */
    DN_USYM_SPECIAL,    /* [vdso], [vsyscall] */
    DN_USYM_UNREADABLE, /* the object cannot be opened or parsed */
};

struct dn_usym_frame {
    enum dn_usym_status status;
    const char *symbol; /* OK: the function; SPECIAL: "[vdso]"; else NULL */
    const char *module; /* the mapped file's base name, or NULL */
    const char *src;    /* source file with line information, or NULL */
    int line;
    const char *why;    /* a sentence for statuses other than OK */
};

/* Names the code at addr in tgid. lookup_addr is the address to look up (addr - 1 for
 * a return address, so a call at the end of a function is not taken for the next one).
 * Strings stay valid until the next call. */
void dn_usym_resolve(struct dn_usym *u, pid_t tgid, uint64_t addr, uint64_t lookup_addr,
                     struct dn_usym_frame *out);

#endif
