/* Many small reads in one system call: a minimal io_uring (raw system calls, no liburing)
 * for the /proc files the collector re-reads at every sample. Where io_uring is missing
 * or refused (old kernel, kernel.io_uring_disabled, a seccomp profile), dn_uring_open
 * fails and the caller reads with pread as before. */
#ifndef DENET_URING_H
#define DENET_URING_H

#include <stddef.h>
#include <stdint.h>

struct dn_uring;

/* One read of len bytes at offset 0 of fd into buf. res: the bytes read, or -errno. */
struct dn_uring_read {
    int fd;
    unsigned len;
    char *buf;
    int res;
};

/* A ring for up to `entries` reads per system call (rounded up to a power of two).
 * Returns NULL with *err = -errno when io_uring cannot be used here. */
struct dn_uring *dn_uring_open(unsigned entries, int *err);
void dn_uring_close(struct dn_uring *u);

/* Performs every read of ops, as many per system call as the ring holds, and fills in
 * each res. Returns 0, or -errno when the ring failed: then no res is meaningful, and
 * the ring must be closed (reads may still be queued in it). */
int dn_uring_read_all(struct dn_uring *u, struct dn_uring_read *ops, size_t n);

#endif
