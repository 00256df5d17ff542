/* User side of bpf/sock.bpf.c: bytes through each tracked process's INET sockets,
 * counted in the kernel per tgid (sock_send_length/sock_recv_length, Linux 6.5+).
 *
 * Counts begin at dn_sock_open(). Processes that are no longer tracked (they exited and
 * the collector let them go) are folded into totals kept here and deleted from the
 * kernel map, so totals keep the traffic of children that exited. Not thread-safe: one
 * caller at a time (the session's lock). */
#ifndef DENET_EBPF_SOCK_H
#define DENET_EBPF_SOCK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "bpf/sock.h"

struct dn_sock;

/* Whether this kernel has the sock_send_length/sock_recv_length tracepoints (its BTF
 * names them). 0, or -errno with a sentence saying why not (and what would fix it) in
 * why. The answer is cached. */
int dn_sock_probe(char *why, size_t len);

/* Loads and attaches the programs, filtering on the tracker's maps (the `tracked` hash
 * and the `live` bitmap). On failure returns -errno and writes a sentence that says what
 * failed and how to fix it into err. */
int dn_sock_open(struct dn_sock **out, int tracked_map_fd, int live_map_fd, char *err,
                 size_t errlen);
void dn_sock_close(struct dn_sock *s);

/* Totals count only this process (include_children=False); 0: the whole tree. */
void dn_sock_only_tgid(struct dn_sock *s, pid_t tgid);

/* Reads the kernel's counts; folds those of processes no longer tracked (at most once
 * a second). 0 or -errno (the previous snapshot then stays). */
int dn_sock_snapshot(struct dn_sock *s);

/* One process's counts in the last snapshot (zeros when it used no socket). */
void dn_sock_get(const struct dn_sock *s, pid_t tgid, struct dn_sock_counts *out);

/* Totals of the run in the last snapshot: every process counted, exited ones too. */
void dn_sock_totals(const struct dn_sock *s, struct dn_sock_counts *out);

/* Calls not counted because the kernel map was full. */
uint64_t dn_sock_dropped(const struct dn_sock *s);

#endif
