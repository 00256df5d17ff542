// SPDX-License-Identifier: GPL-2.0
/* Per-process network bytes: every byte a tracked process sends or receives through an
 * AF_INET/AF_INET6 socket, counted per tgid.
 *
 * The BTF tracepoints sock_send_length and sock_recv_length (Linux 6.5+) fire at the end
 * of sock_sendmsg()/sock_recvmsg() for every socket, in the context of the task that
 * called it, with the byte count the call returns: send, sendto, sendmsg, sendmmsg,
 * write and writev on a socket, sendfile and splice into one, io_uring sends, and the
 * receive side alike. The first thing each program does is look the caller up in the
 * tracker's `tracked` map, so every other process pays one hash lookup.
 *
 * Each byte is also told local or not. A peer on this host talks through a loopback
 * device; the socket says where its peer is when it has one (TCP, connected UDP): a
 * loopback address, its own address, or a cached route through a loopback device. A
 * socket bound to a loopback address has only local peers. An unconnected UDP socket
 * otherwise has a peer per datagram, which the sock tracepoints do not show:
 *  - sending: a datagram to a local peer is transmitted on the loopback device inside
 *    the sendmsg call (lo has no queue), so net_dev_start_xmit notes, per thread, the
 *    socket and whether the device was a loopback one; a datagram that did not reach
 *    a device within the call went to a queued device: not loopback.
 *  - receiving: skb_copy_datagram_iovec shows the datagram and the device it came in
 *    on (skb_iif), but UDP copies a linear datagram without it, and frees it without
 *    a tracepoint on current kernels (deferred or __kfree_skb). Such bytes are counted
 *    in rx_unknown, and user space reports that process's remote receive bytes as
 *    unknown (null) rather than guess.
 *
 * This object needs the two sock tracepoints, so it loads only on 6.5+; it is loaded on
 * its own, after the others, and its absence turns off nothing else. */
#include "vmlinux.h"
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

#include "sock.h"
#include "live_map.bpf.h"

#define AF_INET 2
#define AF_INET6 10
#define MSG_PEEK 2
#define IFF_LOOPBACK 0x8
#define LOOPBACK_IFINDEX 1 /* the loopback device of every network namespace */

char LICENSE[] SEC("license") = "GPL";

/* Not preallocated: memory follows the processes that used a socket. */
struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_HASH);
    __uint(max_entries, DN_SOCK_KEYS_MAX);
    __uint(map_flags, BPF_F_NO_PREALLOC);
    __type(key, __u32);
    __type(value, struct dn_sock_counts);
} sock_counts SEC(".maps");

/* Per thread (tid): the device of the last datagram (see the header comment). */
struct {
    __uint(type, BPF_MAP_TYPE_LRU_HASH);
    __uint(max_entries, 8192);
    __type(key, __u32);
    __type(value, struct dn_sock_dev);
} thread_dev SEC(".maps");

/* Calls not counted because sock_counts was full. */
__u64 dropped = 0;
/* Bumped by a CPU after it added to sock_counts, in its own cache line with a plain
 * add: user space reads sock_counts (a read that walks every bucket of the hash) only
 * when the sum moved, or once a second. */
struct {
    __u64 n;
    __u64 pad[7];
} changes[DN_SOCK_CHANGE_SLOTS] = {};

static __always_inline bool v4_loopback(__be32 a)
{
    return (bpf_ntohl(a) >> 24) == 127;
}

/* 1: the peer is on this host (loopback); 0: it is not; -1: the socket has no peer
 * (unconnected). */
static __always_inline int peer_is_local(struct sock *sk, __u16 family)
{
    bool has_peer = false;
    if (family == AF_INET) {
        __be32 d = BPF_CORE_READ(sk, __sk_common.skc_daddr);
        __be32 s = BPF_CORE_READ(sk, __sk_common.skc_rcv_saddr);
        if (d) {
            has_peer = true;
            if (v4_loopback(d) || d == s)
                return 1;
        } else if (v4_loopback(s)) {
            return 1; /* bound to a loopback address: every peer is local */
        }
    } else {
        __u32 d[4] = {}, s[4] = {};
        bpf_core_read(d, sizeof d, &sk->__sk_common.skc_v6_daddr);
        bpf_core_read(s, sizeof s, &sk->__sk_common.skc_v6_rcv_saddr);
        if (d[0] | d[1] | d[2] | d[3]) {
            has_peer = true;
            if (!d[0] && !d[1] && !d[2] && d[3] == bpf_htonl(1))
                return 1; /* ::1 */
            if (!d[0] && !d[1] && d[2] == bpf_htonl(0xffff) && v4_loopback(d[3]))
                return 1; /* ::ffff:127.x.y.z */
            if (d[0] == s[0] && d[1] == s[1] && d[2] == s[2] && d[3] == s[3])
                return 1;
        } else if ((!s[0] && !s[1] && !s[2] && s[3] == bpf_htonl(1)) ||
                   (!s[0] && !s[1] && s[2] == bpf_htonl(0xffff) && v4_loopback(s[3]))) {
            return 1;
        }
    }
    if (!has_peer)
        return -1;
    /* A peer at another address of this host: the cached route goes through lo. */
    struct dst_entry *dst = BPF_CORE_READ(sk, sk_dst_cache);
    if (dst && (BPF_CORE_READ(dst, dev, flags) & IFF_LOOPBACK))
        return 1;
    return 0;
}

static __always_inline void count(__u32 tgid, struct sock *sk, int ret, int flags, bool tx)
{
    if (ret <= 0 || !sk)
        return;
    __u16 family = BPF_CORE_READ(sk, __sk_common.skc_family);
    if (family != AF_INET && family != AF_INET6)
        return;
    if (!tx && (flags & MSG_PEEK))
        return; /* the same bytes are received again */
    int local = peer_is_local(sk, family);
    if (local < 0) {
        /* Unconnected: what the thread noted about this very datagram during the call. */
        __u32 tid = (__u32)bpf_get_current_pid_tgid();
        struct dn_sock_dev *d = bpf_map_lookup_elem(&thread_dev, &tid);
        if (tx) {
            local = d && d->tx_sk == (__u64)sk ? d->tx_lo : 0;
            if (d)
                d->tx_sk = 0;
        } else {
            local = d && d->rx ? d->rx == DN_SOCK_RX_LOCAL : -1;
            if (d)
                d->rx = 0;
        }
    }

    struct dn_sock_counts *c = bpf_map_lookup_elem(&sock_counts, &tgid);
    if (!c) {
        struct dn_sock_counts zero = {};
        bpf_map_update_elem(&sock_counts, &tgid, &zero, BPF_NOEXIST); /* or another CPU's */
        c = bpf_map_lookup_elem(&sock_counts, &tgid);
        if (!c) {
            __sync_fetch_and_add(&dropped, 1);
            return;
        }
    }
    /* Per-CPU slots, preemption off: plain adds never lose an update. */
    if (tx) {
        c->tx += ret;
        if (local > 0)
            c->tx_lo += ret;
    } else {
        c->rx += ret;
        if (local > 0)
            c->rx_lo += ret;
        else if (local < 0)
            c->rx_unknown += ret;
    }
    changes[bpf_get_smp_processor_id() & (DN_SOCK_CHANGE_SLOTS - 1)].n++;
}

SEC("tp_btf/sock_send_length")
int BPF_PROG(dn_sock_send, struct sock *sk, int ret, int flags)
{
    __u32 tgid = bpf_get_current_pid_tgid() >> 32;
    if (!dn_is_live(tgid))
        return 0;
    count(tgid, sk, ret, flags, true);
    return 0;
}

SEC("tp_btf/sock_recv_length")
int BPF_PROG(dn_sock_recv, struct sock *sk, int ret, int flags)
{
    __u32 tgid = bpf_get_current_pid_tgid() >> 32;
    if (!dn_is_live(tgid))
        return 0;
    count(tgid, sk, ret, flags, false);
    return 0;
}

static __always_inline struct dn_sock_dev *thread_note(__u32 tid)
{
    struct dn_sock_dev *d = bpf_map_lookup_elem(&thread_dev, &tid);
    if (d)
        return d;
    struct dn_sock_dev zero = {};
    bpf_map_update_elem(&thread_dev, &tid, &zero, BPF_NOEXIST);
    return bpf_map_lookup_elem(&thread_dev, &tid);
}

/* A packet handed to a device by a tracked thread (process context: the sendmsg call of
 * a datagram on its way out; lo transmits at once, it has no queue). */
SEC("tp_btf/net_dev_start_xmit")
int BPF_PROG(dn_sock_xmit, const struct sk_buff *skb, const struct net_device *dev)
{
    __u64 pid_tgid = bpf_get_current_pid_tgid();
    if (!dn_is_live(pid_tgid >> 32))
        return 0;
    struct sock *sk = BPF_CORE_READ(skb, sk);
    if (!sk || BPF_CORE_READ(sk, sk_protocol) != IPPROTO_UDP)
        return 0; /* only datagrams of UDP sockets need the note (TCP has its peer) */
    struct dn_sock_dev *d = thread_note((__u32)pid_tgid);
    if (d) {
        d->tx_sk = (__u64)sk;
        d->tx_lo = (BPF_CORE_READ(dev, flags) & IFF_LOOPBACK) != 0;
    }
    return 0;
}

/* Data of a received packet copied to a tracked thread, inside its recvmsg call (not for
 * linear UDP datagrams: see the top). Only UDP datagrams are noted: TCP and others say
 * where their peer is themselves. */
SEC("tp_btf/skb_copy_datagram_iovec")
int BPF_PROG(dn_sock_copy, const struct sk_buff *skb, int len)
{
    __u64 pid_tgid = bpf_get_current_pid_tgid();
    if (!dn_is_live(pid_tgid >> 32))
        return 0;
    struct sock *owner = BPF_CORE_READ(skb, sk); /* TCP's queued data has its socket */
    if (owner && BPF_CORE_READ(owner, sk_protocol) != IPPROTO_UDP)
        return 0;
    unsigned char *head = BPF_CORE_READ(skb, head);
    __u16 nh = BPF_CORE_READ(skb, network_header);
    __u8 ip[10] = {};
    if (!head || bpf_probe_read_kernel(ip, sizeof ip, head + nh))
        return 0;
    __u8 proto = (ip[0] >> 4) == 4 ? ip[9] : (ip[0] >> 4) == 6 ? ip[6] : 0;
    if (proto != IPPROTO_UDP)
        return 0;
    struct dn_sock_dev *d = thread_note((__u32)pid_tgid);
    if (d)
        d->rx = BPF_CORE_READ(skb, skb_iif) == LOOPBACK_IFINDEX ? DN_SOCK_RX_LOCAL
                                                                 : DN_SOCK_RX_REMOTE;
    return 0;
}
