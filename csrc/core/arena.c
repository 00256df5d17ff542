#include "core/arena.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define CHUNK_SIZE (64 * 1024)

struct chunk {
    struct chunk *next;
    size_t used, size;
    _Alignas(8) char data[];
};

struct dn_arena {
    int refs;
    struct chunk *head;
    const char **strs; /* intern table: open addressing, power-of-two size */
    size_t scap, sn;
};

struct dn_arena *dn_arena_new(void)
{
    struct dn_arena *a = calloc(1, sizeof *a);
    if (a)
        a->refs = 1;
    return a;
}

struct dn_arena *dn_arena_ref(struct dn_arena *a)
{
    if (a)
        __atomic_add_fetch(&a->refs, 1, __ATOMIC_RELAXED);
    return a;
}

void dn_arena_unref(struct dn_arena *a)
{
    if (!a || __atomic_sub_fetch(&a->refs, 1, __ATOMIC_ACQ_REL) != 0)
        return;
    for (struct chunk *c = a->head, *next; c; c = next) {
        next = c->next;
        free(c);
    }
    free(a->strs);
    free(a);
}

void *dn_arena_alloc(struct dn_arena *a, size_t n)
{
    n = (n + 7) & ~(size_t)7;
    struct chunk *c = a->head;
    if (!c || c->size - c->used < n) {
        size_t size = n > CHUNK_SIZE / 4 ? n : CHUNK_SIZE;
        c = malloc(sizeof *c + size);
        if (!c)
            return NULL;
        c->size = size;
        c->used = 0;
        if (n > CHUNK_SIZE / 4 && a->head) {
            /* A big block gets a chunk of its own, behind the current one. */
            c->next = a->head->next;
            a->head->next = c;
        } else {
            c->next = a->head;
            a->head = c;
        }
    }
    void *p = c->data + c->used;
    c->used += n;
    memset(p, 0, n);
    return p;
}

static size_t str_hash(const char *s)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return (size_t)h;
}

static int grow_strs(struct dn_arena *a)
{
    size_t ncap = a->scap ? a->scap * 2 : 256;
    const char **n = calloc(ncap, sizeof *n);
    if (!n)
        return -1;
    for (size_t i = 0; i < a->scap; i++) {
        if (!a->strs[i])
            continue;
        size_t h = str_hash(a->strs[i]) & (ncap - 1);
        while (n[h])
            h = (h + 1) & (ncap - 1);
        n[h] = a->strs[i];
    }
    free(a->strs);
    a->strs = n;
    a->scap = ncap;
    return 0;
}

const char *dn_arena_intern(struct dn_arena *a, const char *s)
{
    if ((a->sn + 1) * 2 > a->scap && grow_strs(a) != 0)
        return NULL;
    size_t h = str_hash(s) & (a->scap - 1);
    while (a->strs[h]) {
        if (strcmp(a->strs[h], s) == 0)
            return a->strs[h];
        h = (h + 1) & (a->scap - 1);
    }
    size_t len = strlen(s) + 1;
    char *copy = dn_arena_alloc(a, len);
    if (!copy)
        return NULL;
    memcpy(copy, s, len);
    a->strs[h] = copy;
    a->sn++;
    return copy;
}
