/* Symbols and source lines of ELF objects (executables and shared libraries), with
 * libelf and libdw, cached per file identity (device, inode, modification time) so a
 * library shared by every process of a tree is read once. Not thread-safe: one caller
 * at a time. */
#ifndef DENET_SYMBOLIZE_ELF_H
#define DENET_SYMBOLIZE_ELF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct dn_elf;
struct dn_elf_cache;

struct dn_elf_cache *dn_elf_cache_new(size_t max_files);
void dn_elf_cache_free(struct dn_elf_cache *c);

/* The object at path. When ino is not 0 the file must be that inode (the one a process
 * mapped); else NULL. On NULL, *why says why. The object stays valid until the next
 * call (the cache may evict). */
struct dn_elf *dn_elf_cache_get(struct dn_elf_cache *c, const char *path, uint64_t ino,
                                const char **why);

/* The function containing the byte at file offset off, and its source line when the
 * object (or its separate debug file under /usr/lib/debug/.build-id) has DWARF line
 * information. Strings stay valid until the next dn_elf_cache_get. */
struct dn_elf_hit {
    const char *symbol; /* NULL: no symbol covers it */
    const char *src;    /* NULL: no line information */
    int line;
};
void dn_elf_lookup(struct dn_elf *f, uint64_t off, struct dn_elf_hit *hit);

#endif
