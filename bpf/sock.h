/* Shared by sock.bpf.c and csrc/ebpf/sock.c: per-process socket byte counts. */
#ifndef DENET_BPF_SOCK_H
#define DENET_BPF_SOCK_H

#ifndef __VMLINUX_H__
#include <linux/types.h>
#endif

/* Processes with counts at once (live and not yet folded by user space). More than
 * the tracked map holds, so a tree that fits there always fits here. */
#define DN_SOCK_KEYS_MAX 16384
/* Slots of the `changes` counters, one per CPU (CPUs past it share a slot). */
#define DN_SOCK_CHANGE_SLOTS 256

/* Bytes through one process's AF_INET/AF_INET6 sockets (TCP, UDP, any INET socket that
 * goes through sock_sendmsg/sock_recvmsg). rx/tx are all of it; rx_lo/tx_lo the part
 * exchanged with a peer on this host through a loopback device; rx_unknown the part
 * whose peer could not be told (see sock.bpf.c). */
struct dn_sock_counts {
    __u64 rx, tx;
    __u64 rx_lo, tx_lo;
    __u64 rx_unknown;
};

/* Per-thread note of the device the last datagram of an unconnected socket used (see
 * sock.bpf.c). */
struct dn_sock_dev {
    __u64 tx_sk;   /* the socket whose datagram was just transmitted, 0 once consumed */
    __u32 tx_lo;   /* ... through a loopback device */
    __u32 rx;      /* the UDP datagram just copied to this thread: 0 none (or consumed),
                    * DN_SOCK_RX_REMOTE, DN_SOCK_RX_LOCAL */
};

#define DN_SOCK_RX_REMOTE 1
#define DN_SOCK_RX_LOCAL 2

#endif
