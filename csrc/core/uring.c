#include "core/uring.h"

#include <errno.h>
#include <linux/io_uring.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

struct dn_uring {
    int fd;
    unsigned sq_entries;
    unsigned *sq_tail, *sq_mask, *sq_array;
    unsigned *cq_head, *cq_tail, *cq_mask;
    struct io_uring_sqe *sqes;
    struct io_uring_cqe *cqes;
    void *sq_ring, *cq_ring;
    size_t sq_ring_len, cq_ring_len, sqes_len;
};

void dn_uring_close(struct dn_uring *u)
{
    if (!u)
        return;
    if (u->sqes)
        munmap(u->sqes, u->sqes_len);
    if (u->cq_ring && u->cq_ring != u->sq_ring)
        munmap(u->cq_ring, u->cq_ring_len);
    if (u->sq_ring)
        munmap(u->sq_ring, u->sq_ring_len);
    if (u->fd >= 0)
        close(u->fd);
    free(u);
}

static void *map_ring(int fd, size_t len, off_t what)
{
    void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, what);
    return p == MAP_FAILED ? NULL : p;
}

struct dn_uring *dn_uring_open(unsigned entries, int *err)
{
    struct dn_uring *u = calloc(1, sizeof *u);
    if (!u) {
        *err = -ENOMEM;
        return NULL;
    }
    struct io_uring_params p;
    memset(&p, 0, sizeof p);
    u->fd = (int)syscall(__NR_io_uring_setup, entries, &p);
    if (u->fd < 0) {
        *err = -errno;
        free(u);
        return NULL;
    }
    u->sq_entries = p.sq_entries;
    u->sq_ring_len = p.sq_off.array + p.sq_entries * sizeof(unsigned);
    u->cq_ring_len = p.cq_off.cqes + p.cq_entries * sizeof(struct io_uring_cqe);
    bool single = p.features & IORING_FEAT_SINGLE_MMAP;
    if (single && u->cq_ring_len > u->sq_ring_len)
        u->sq_ring_len = u->cq_ring_len;
    u->sq_ring = map_ring(u->fd, u->sq_ring_len, IORING_OFF_SQ_RING);
    u->cq_ring = !u->sq_ring ? NULL
                 : single    ? u->sq_ring
                             : map_ring(u->fd, u->cq_ring_len, IORING_OFF_CQ_RING);
    u->sqes_len = p.sq_entries * sizeof(struct io_uring_sqe);
    u->sqes = u->cq_ring ? map_ring(u->fd, u->sqes_len, IORING_OFF_SQES) : NULL;
    if (!u->sqes) {
        *err = -errno;
        dn_uring_close(u);
        return NULL;
    }
    char *sq = u->sq_ring, *cq = u->cq_ring;
    u->sq_tail = (unsigned *)(sq + p.sq_off.tail);
    u->sq_mask = (unsigned *)(sq + p.sq_off.ring_mask);
    u->sq_array = (unsigned *)(sq + p.sq_off.array);
    u->cq_head = (unsigned *)(cq + p.cq_off.head);
    u->cq_tail = (unsigned *)(cq + p.cq_off.tail);
    u->cq_mask = (unsigned *)(cq + p.cq_off.ring_mask);
    u->cqes = (struct io_uring_cqe *)(cq + p.cq_off.cqes);
    *err = 0;
    return u;
}

/* Submits ops[0..n) (n <= sq_entries) and waits for all of them. */
static int read_chunk(struct dn_uring *u, struct dn_uring_read *ops, unsigned n)
{
    unsigned tail = *u->sq_tail, mask = *u->sq_mask;
    for (unsigned i = 0; i < n; i++) {
        unsigned idx = (tail + i) & mask;
        struct io_uring_sqe *s = &u->sqes[idx];
        memset(s, 0, sizeof *s);
        s->opcode = IORING_OP_READ;
        s->fd = ops[i].fd;
        s->addr = (uint64_t)(uintptr_t)ops[i].buf;
        s->len = ops[i].len;
        s->off = 0;
        s->user_data = i;
        u->sq_array[idx] = idx;
        ops[i].res = -EINPROGRESS;
    }
    __atomic_store_n(u->sq_tail, tail + n, __ATOMIC_RELEASE);
    unsigned to_submit = n, done = 0;
    while (done < n) {
        int got = (int)syscall(__NR_io_uring_enter, u->fd, to_submit, n - done,
                               IORING_ENTER_GETEVENTS, NULL, 0);
        if (got < 0 && errno != EINTR)
            return -errno;
        if (got > 0) {
            if ((unsigned)got > to_submit)
                return -EPROTO;
            to_submit -= (unsigned)got;
        }
        unsigned head = *u->cq_head;
        unsigned ctail = __atomic_load_n(u->cq_tail, __ATOMIC_ACQUIRE);
        for (; head != ctail; head++) {
            const struct io_uring_cqe *e = &u->cqes[head & *u->cq_mask];
            if (e->user_data < n && ops[e->user_data].res == -EINPROGRESS) {
                ops[e->user_data].res = e->res;
                done++;
            }
        }
        __atomic_store_n(u->cq_head, head, __ATOMIC_RELEASE);
        if (got == 0 && to_submit)
            return -EAGAIN; /* the kernel took none of what is left */
    }
    return 0;
}

int dn_uring_read_all(struct dn_uring *u, struct dn_uring_read *ops, size_t n)
{
    for (size_t i = 0; i < n;) {
        unsigned k = n - i < u->sq_entries ? (unsigned)(n - i) : u->sq_entries;
        int rc = read_chunk(u, ops + i, k);
        if (rc)
            return rc;
        i += k;
    }
    return 0;
}
