/* An append-only arena of immutable data (symbol names, symbolized frames) shared by
 * its producer and the snapshots that point into it: nothing in it moves or is freed
 * until the last reference goes, so a snapshot stays valid after the producer (and its
 * BPF programs) are gone. Allocation and interning are for one thread at a time (the
 * session's lock); references may be taken and dropped from any thread. */
#ifndef DENET_CORE_ARENA_H
#define DENET_CORE_ARENA_H

#include <stddef.h>

struct dn_arena;

struct dn_arena *dn_arena_new(void); /* NULL on ENOMEM; one reference */
struct dn_arena *dn_arena_ref(struct dn_arena *a);
void dn_arena_unref(struct dn_arena *a); /* NULL is fine */

/* n bytes, 8-aligned, zeroed; NULL on ENOMEM. */
void *dn_arena_alloc(struct dn_arena *a, size_t n);
/* One copy of each distinct string; NULL on ENOMEM. */
const char *dn_arena_intern(struct dn_arena *a, const char *s);

#endif
