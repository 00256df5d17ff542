"""What counting every socket byte per process costs (bench/sock.py): a loopback transfer,
iperf-like, timed unmonitored, under denet's eBPF collectors without the socket counter
(DENET_NO_SOCK=1), and with it. The ratio "sock" is with/without: the cost of the sock
programs (sock_send_length, sock_recv_length, net_dev_start_xmit, skb_copy_datagram_iovec)
alone; "all eBPF" is with/unmonitored.

Workloads (a C program: a sender and a receiver process over 127.0.0.1):
  tcp-bulk    1 GiB over TCP in 128 KiB writes
  tcp-small   64 MiB over TCP in 256-byte writes (per-call costs dominate)
  udp-small   200,000 unconnected 256-byte datagrams, each acked (both directions per call)

Runs alternate between the three ways; the table shows medians. Needs root.

    python3 bench/sock.py [--runs N]
"""
import argparse
import os
import statistics
import subprocess
import sys
import tempfile

import denet

XFER_C = r"""
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}
int main(int argc, char **argv)
{
    const char *mode = argv[1];
    long total = atol(argv[2]), chunk = atol(argv[3]);
    int udp = strcmp(mode, "udp") == 0;
    int ls = socket(AF_INET, udp ? SOCK_DGRAM : SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    if (bind(ls, (void *)&a, sizeof a) || getsockname(ls, (void *)&a, &al) || (!udp && listen(ls, 1)))
        return 2;
    char *buf = calloc(1, chunk > 65536 ? chunk : 65536);
    double t0 = now();
    pid_t pid = fork();
    if (pid == 0) { /* receiver */
        if (udp) {
            struct sockaddr_in peer;
            for (long got = 0; got < total;) {
                socklen_t pl = sizeof peer;
                ssize_t n = recvfrom(ls, buf, 65536, 0, (void *)&peer, &pl);
                if (n <= 0) _exit(3);
                got += n;
                sendto(ls, "k", 1, 0, (void *)&peer, pl);
            }
            _exit(0);
        }
        int c = accept(ls, NULL, NULL);
        long got = 0;
        ssize_t n;
        while ((n = read(c, buf, 65536)) > 0)
            got += n;
        _exit(got == total ? 0 : 3);
    }
    if (udp) {
        int s = socket(AF_INET, SOCK_DGRAM, 0);
        for (long sent = 0; sent < total; sent += chunk) {
            if (sendto(s, buf, chunk, 0, (void *)&a, sizeof a) != chunk) return 4;
            if (recv(s, buf, 16, 0) != 1) return 4;
        }
    } else {
        int s = socket(AF_INET, SOCK_STREAM, 0);
        if (connect(s, (void *)&a, sizeof a)) return 5;
        for (long sent = 0; sent < total;) {
            ssize_t n = write(s, buf, chunk);
            if (n <= 0) return 6;
            sent += n;
        }
        close(s);
    }
    int st;
    waitpid(pid, &st, 0);
    printf("%.6f\n", now() - t0);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 7;
}
"""

WORKLOADS = [
    ("tcp-bulk", ["tcp", str(1 << 30), str(128 << 10)], 2 << 30),
    ("tcp-small", ["tcp", str(64 << 20), "256"], 2 * (64 << 20)),
    ("udp-small", ["udp", str(200000 * 256), "256"], 200000 * 257 * 2),
]


def run_once(exe, args, how, out):
    cmd = [exe, *args]
    if how == "unmonitored":
        r = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, check=True)
        return float(r.stdout)
    env_no_sock = how == "ebpf-no-sock"
    if env_no_sock:
        os.environ["DENET_NO_SOCK"] = "1"
    try:
        with open(out, "w") as f:
            mon = denet.ProcessMonitor(cmd, enable_ebpf=True, quiet=True, stdout=f.fileno(),
                                       store_in_memory=False)
            code = mon.run()
    finally:
        os.environ.pop("DENET_NO_SOCK", None)
    if mon.ebpf_error or code != 0:
        raise SystemExit(f"{how}: exit {code}, eBPF: {mon.ebpf_error}")
    summary = mon.get_summary()
    if how == "ebpf":
        run_once.counted = summary["total_sock_tx_bytes"] + summary["total_sock_rx_bytes"]
    with open(out) as f:
        return float(f.read())


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=7)
    a = ap.parse_args()
    ok, why = denet.ebpf_available()
    sok, swhy = denet._denet.sock_available()
    if not ok or not sok:
        print(f"bench/sock.py needs eBPF and Linux 6.5+: {why or swhy}")
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        exe = os.path.join(tmp, "xfer")
        with open(exe + ".c", "w") as f:
            f.write(XFER_C)
        subprocess.run(["gcc", "-O2", "-o", exe, exe + ".c"], check=True)
        out = os.path.join(tmp, "out")
        hows = ["unmonitored", "ebpf-no-sock", "ebpf"]
        rows = []
        for name, args, expect in WORKLOADS:
            times = {h: [] for h in hows}
            for _ in range(a.runs):
                for h in hows:
                    times[h].append(run_once(exe, args, h, out))
            med = {h: statistics.median(v) for h, v in times.items()}
            rows.append((name, med, run_once.counted, expect))
    print("\nSocket byte counting overhead (median of %d runs, seconds; ratios in brackets)\n" % a.runs)
    print("| workload | unmonitored | eBPF without sock | eBPF with sock | sock | all eBPF |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, med, counted, expect in rows:
        print(f"| {name} | {med['unmonitored']:.3f} | {med['ebpf-no-sock']:.3f} | {med['ebpf']:.3f} | "
              f"{med['ebpf'] / med['ebpf-no-sock']:.2f}x | {med['ebpf'] / med['unmonitored']:.2f}x |")
    for name, med, counted, expect in rows:
        print(f"{name}: counted {counted:,} bytes (rx + tx), expected {expect:,}"
              + ("" if counted == expect else "  <-- MISMATCH"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
