/* A hash table of records keyed by their first ksz bytes (compared with memcmp, so
 * keys must have no uninitialised padding). Linear probing with backward-shift
 * deletion. The table stores pointers; records are owned by the caller. */
#ifndef DENET_CORE_HTAB_H
#define DENET_CORE_HTAB_H

#include <stddef.h>

struct dn_htab {
    void **slots;
    size_t cap, n, ksz;
};

void dn_htab_init(struct dn_htab *h, size_t ksz);
void dn_htab_free(struct dn_htab *h); /* the table only, not the records */
void *dn_htab_get(const struct dn_htab *h, const void *key);
/* Inserts rec (whose key must not be present yet). 0 or -ENOMEM. */
int dn_htab_put(struct dn_htab *h, void *rec);
/* Removes and returns the record with this key, or NULL. */
void *dn_htab_del(struct dn_htab *h, const void *key);

/* Iteration: for (size_t i = 0; i < h.cap; i++) if (h.slots[i]) ... (no changes meanwhile). */

#endif
