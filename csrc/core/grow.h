/* Growing an array by doubling: the one helper every growable list here uses. */
#ifndef DENET_GROW_H
#define DENET_GROW_H

#include <errno.h>
#include <stdlib.h>

/* The capacity that holds `need` (> cap) elements: cap, or `first` when 0, doubled. */
static inline size_t dn_grow_cap(size_t cap, size_t need, size_t first)
{
    size_t ncap = cap ? cap : first;
    while (ncap < need)
        ncap *= 2;
    return ncap;
}

/* Makes room for at least `need` elements of `elem` bytes in *items (capacity *cap),
 * doubling from `first`. Returns 0, or -ENOMEM with *items and *cap unchanged. */
static inline int dn_grow(void *items, size_t *cap, size_t need, size_t elem, size_t first)
{
    if (need <= *cap)
        return 0;
    size_t ncap = dn_grow_cap(*cap, need, first);
    void *n = realloc(*(void **)items, ncap * elem);
    if (!n)
        return -ENOMEM;
    *(void **)items = n;
    *cap = ncap;
    return 0;
}

#endif
