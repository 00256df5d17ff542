/* Growing an array by doubling: the one helper every growable list here uses. */
#ifndef DENET_GROW_H
#define DENET_GROW_H

#include <errno.h>
#include <stdlib.h>

/* Makes room for at least `need` elements of `elem` bytes in *items (capacity *cap),
 * doubling from `first`. Returns 0, or -ENOMEM with *items and *cap unchanged. */
static inline int dn_grow(void *items, size_t *cap, size_t need, size_t elem, size_t first)
{
    if (need <= *cap)
        return 0;
    size_t ncap = *cap ? *cap : first;
    while (ncap < need)
        ncap *= 2;
    void *n = realloc(*(void **)items, ncap * elem);
    if (!n)
        return -ENOMEM;
    *(void **)items = n;
    *cap = ncap;
    return 0;
}

#endif
