#include "core/htab.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

void dn_htab_init(struct dn_htab *h, size_t ksz)
{
    memset(h, 0, sizeof *h);
    h->ksz = ksz;
}

void dn_htab_free(struct dn_htab *h)
{
    free(h->slots);
    h->slots = NULL;
    h->cap = h->n = 0;
}

static size_t key_hash(const void *key, size_t ksz)
{
    const unsigned char *p = key;
    uint64_t x = 1469598103934665603ULL; /* FNV-1a, then a final mix */
    for (size_t i = 0; i < ksz; i++)
        x = (x ^ p[i]) * 1099511628211ULL;
    x ^= x >> 29;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 32;
    return (size_t)x;
}

void *dn_htab_get(const struct dn_htab *h, const void *key)
{
    if (!h->cap)
        return NULL;
    size_t mask = h->cap - 1;
    for (size_t i = key_hash(key, h->ksz) & mask; h->slots[i]; i = (i + 1) & mask)
        if (memcmp(h->slots[i], key, h->ksz) == 0)
            return h->slots[i];
    return NULL;
}

static void place(void **slots, size_t mask, size_t ksz, void *rec)
{
    size_t i = key_hash(rec, ksz) & mask;
    while (slots[i])
        i = (i + 1) & mask;
    slots[i] = rec;
}

int dn_htab_put(struct dn_htab *h, void *rec)
{
    if ((h->n + 1) * 4 > h->cap * 3) { /* keep the load under 3/4 */
        size_t ncap = h->cap ? h->cap * 2 : 64;
        void **ns = calloc(ncap, sizeof *ns);
        if (!ns)
            return -ENOMEM;
        for (size_t i = 0; i < h->cap; i++)
            if (h->slots[i])
                place(ns, ncap - 1, h->ksz, h->slots[i]);
        free(h->slots);
        h->slots = ns;
        h->cap = ncap;
    }
    place(h->slots, h->cap - 1, h->ksz, rec);
    h->n++;
    return 0;
}

void *dn_htab_del(struct dn_htab *h, const void *key)
{
    if (!h->cap)
        return NULL;
    size_t mask = h->cap - 1, i = key_hash(key, h->ksz) & mask;
    while (h->slots[i] && memcmp(h->slots[i], key, h->ksz) != 0)
        i = (i + 1) & mask;
    void *rec = h->slots[i];
    if (!rec)
        return NULL;
    h->slots[i] = NULL;
    h->n--;
    /* Backward shift: move later members of the run into the hole when their home
     * slot is at or before it. */
    for (size_t j = (i + 1) & mask; h->slots[j]; j = (j + 1) & mask) {
        size_t home = key_hash(h->slots[j], h->ksz) & mask;
        int between = (i <= j) ? (home > i && home <= j) : (home > i || home <= j);
        if (!between) {
            h->slots[i] = h->slots[j];
            h->slots[j] = NULL;
            i = j;
        }
    }
    return rec;
}
