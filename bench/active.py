"""Time one eBPF sample of an active tree, where every process makes system calls.

bench/sampling.py times trees of sleeping processes. Here each of N processes makes 31
distinct system calls every 100 ms, so a syscall counter that keeps counts per
(process, number) holds N x 31 of them, and every process ran since the last sample.
denet: ProcessMonitor.from_pid(root, enable_ebpf=True).sample_once(), median of rounds,
in µs per sample and per process, and the same with offcpu=False (no off-CPU maps to
read and no off-CPU part to build: every process of this tree switches between samples),
the two monitors taking turns round by round. Each timed call comes 120 ms after that
monitor's previous one, so every process made its calls and slept in between. Besides
wall time, the sampling thread's CPU time per process ("CPU µs/p", from
time.thread_time()), which time lost to other work on a shared machine does not move.
Root only (eBPF).

    python3 bench/active.py [--sizes 1,50,200] [--rounds 25]

To compare two builds, run it with PYTHONPATH pointing at the other build's checkout.
"""
import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import denet

# active K: K-1 children and the root itself each make the 31 calls of one round every
# 100 ms.
ACTIVE_C = r"""
#define _GNU_SOURCE
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/times.h>
#include <sys/utsname.h>
#include <sys/sysinfo.h>
#include <time.h>
#include <unistd.h>

static void round_of_calls(void)
{
    struct utsname u;
    struct sysinfo si;
    struct tms t;
    struct rusage ru;
    struct rlimit rl;
    struct timespec ts;
    struct timeval tv;
    struct itimerval it;
    char cwd[256];
    cpu_set_t set;
    sigset_t ss;
    gid_t groups[64];
    uid_t a, b, c;
    syscall(SYS_getpid);
    syscall(SYS_getppid);
    syscall(SYS_getuid);
    syscall(SYS_geteuid);
    syscall(SYS_getgid);
    syscall(SYS_getegid);
    syscall(SYS_gettid);
    syscall(SYS_getpgrp);
    syscall(SYS_getsid, 0);
    syscall(SYS_getpgid, 0);
    syscall(SYS_uname, &u);
    syscall(SYS_sysinfo, &si);
    syscall(SYS_times, &t);
    syscall(SYS_getrusage, RUSAGE_SELF, &ru);
    syscall(SYS_getrlimit, RLIMIT_NOFILE, &rl);
    syscall(SYS_prlimit64, 0, RLIMIT_STACK, NULL, &rl);
    syscall(SYS_getcwd, cwd, sizeof cwd);
    syscall(SYS_getpriority, PRIO_PROCESS, 0);
    syscall(SYS_sched_yield);
    syscall(SYS_sched_getscheduler, 0);
    syscall(SYS_sched_getaffinity, 0, sizeof set, &set);
    syscall(SYS_clock_gettime, CLOCK_MONOTONIC, &ts);
    syscall(SYS_gettimeofday, &tv, NULL);
    syscall(SYS_time, NULL);
    syscall(SYS_getresuid, &a, &b, &c);
    syscall(SYS_getresgid, &a, &b, &c);
    syscall(SYS_getgroups, 64, groups);
    syscall(SYS_getitimer, ITIMER_REAL, &it);
    syscall(SYS_rt_sigprocmask, SIG_BLOCK, NULL, &ss, 8);
    syscall(SYS_rt_sigpending, &ss, 8);
    syscall(SYS_umask, 022);
}

int main(int argc, char **argv)
{
    (void)argc;
    int k = atoi(argv[1]);
    for (int i = 1; i < k; i++)
        if (fork() == 0)
            break;
    struct timespec pause = {0, 100 * 1000 * 1000};
    for (;;) {
        round_of_calls();
        nanosleep(&pause, NULL);
    }
}
"""


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="1,50,200")
    ap.add_argument("--rounds", type=int, default=25)
    args = ap.parse_args()
    ok, why = denet.ebpf_available()
    if not ok:
        sys.exit(f"bench/active.py needs eBPF: {why}")
    tmp = tempfile.mkdtemp(prefix="denet-active-")
    try:
        exe = os.path.join(tmp, "active")
        with open(exe + ".c", "w") as f:
            f.write(ACTIVE_C)
        subprocess.run(["gcc", "-O2", "-o", exe, exe + ".c"], check=True)
        print(f"denet {denet.__version__} ({os.path.dirname(denet.__file__)}): one eBPF sample "
              f"of an active tree, median of {args.rounds} rounds")
        print(f"{'processes':>9} {'µs/sample':>10} {'µs/process':>10} {'CPU µs/p':>10} "
              f"{'offcpu=False':>13} {'µs/process':>10} {'CPU µs/p':>10}")
        for n in [int(x) for x in args.sizes.split(",")]:
            root = subprocess.Popen([exe, str(n)], start_new_session=True)
            try:
                time.sleep(0.5 + n / 200)  # every process has run a round
                mons = [denet.ProcessMonitor.from_pid(root.pid, store_in_memory=False,
                                                      enable_ebpf=True, quiet=True, offcpu=offcpu)
                        for offcpu in (True, False)]
                for mon in mons:
                    assert mon.ebpf_error is None, mon.ebpf_error
                time.sleep(0.3)  # every process has made its calls since the attach
                for mon in mons:
                    s = mon.sample_once()
                    assert s["aggregated"]["process_count"] == n, s["aggregated"]["process_count"]
                    assert s["aggregated"]["ebpf"]["syscalls"]["total"] >= 31 * n
                # One timed call per monitor and round, each after a pause longer than the
                # tree's period, so that every process ran (and switched) since the
                # monitor's previous sample: back-to-back calls would find little changed.
                times, cpu = [[], []], [[], []]
                for _ in range(args.rounds):
                    for mon, into, into_cpu in zip(mons, times, cpu):
                        time.sleep(0.12)
                        t, c = time.perf_counter(), time.thread_time()
                        mon.sample_once()
                        into.append(time.perf_counter() - t)
                        into_cpu.append(time.thread_time() - c)
                med = [statistics.median(t) * 1e6 for t in times]
                mcpu = [statistics.median(t) * 1e6 / n for t in cpu]
                print(f"{n:>9} {med[0]:>10.0f} {med[0] / n:>10.1f} {mcpu[0]:>10.1f} "
                      f"{med[1]:>13.0f} {med[1] / n:>10.1f} {mcpu[1]:>10.1f}")
                for mon in mons:
                    mon.stop()
            finally:
                os.killpg(root.pid, 9)
                root.wait()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
