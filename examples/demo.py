"""make demo: monitor the bundled workload, print live samples and the summary."""
import os
import sys

import denet

HERE = os.path.dirname(os.path.abspath(__file__))


def fmt_bytes(n):
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def main():
    ebpf_ok, why = denet.ebpf_available()
    print(f"denet {denet.__version__}: monitoring examples/workload.py "
          f"(eBPF: {'on' if ebpf_ok else 'off - ' + why})\n")
    mon = denet.ProcessMonitor([sys.executable, os.path.join(HERE, "workload.py")],
                               base_interval_ms=200, max_interval_ms=500,
                               enable_ebpf=ebpf_ok, quiet=True)
    print(f"{'time':>6} {'procs':>5} {'cpu %':>7} {'rss':>10} {'disk write':>11} "
          f"{'threads':>7} {'syscalls':>9}")
    t0 = None
    mon.start()
    last = None
    while True:
        exited = mon.wait(timeout=0.5) is not None or not mon.is_running()
        s = mon.latest_sample()
        if s and s is not last and s.get("aggregated"):
            a = s["aggregated"]
            t0 = t0 or s["ts_ms"]
            sc = a.get("ebpf", {}).get("syscalls", {}).get("total", "-")
            print(f"{(s['ts_ms'] - t0) / 1000:>5.1f}s {a['process_count']:>5} "
                  f"{a['cpu_usage']:>7.1f} {fmt_bytes(a['mem_rss_kb'] * 1024):>10} "
                  f"{fmt_bytes(a['disk_write_bytes']):>11} {a['thread_count']:>7} {sc:>9}")
            last = s
        if exited:
            break
    code = mon.wait()
    mon.stop()
    s = mon.get_summary()
    print(f"\nexit code {code}; summary:")
    width = max(map(len, s))
    for k, v in s.items():
        if isinstance(v, dict):
            v = ", ".join(f"{kk}={vv}" for kk, vv in v.items() if vv)
        elif k == "processes":  # one row per process, heaviest CPU first
            v = "; ".join(f"pid {p['pid']} {p['cpu_secs']:.2f} s" for p in v[:3]) + \
                (f"; ... {len(v)} in all" if len(v) > 3 else "")
        elif isinstance(v, float):
            v = f"{v:.3f}"
        print(f"  {k:<{width}}  {v}")
    final = mon.get_samples()[-1]
    ebpf = (final.get("aggregated") or {}).get("ebpf", {})
    if "syscalls" in ebpf:
        top = ", ".join(f"{t['name']}={t['count']}" for t in ebpf["syscalls"]["top_syscalls"][:6])
        an = ebpf["syscalls"]["analysis"]
        print(f"\neBPF: top syscalls {top}")
        print(f"      behaviour {an['behavior_classification']}, "
              f"workload {an['performance_profile']['workload_type']}")
    elif "error" in ebpf:
        print(f"\neBPF: {ebpf['error']}")
    return code


if __name__ == "__main__":
    sys.exit(main())
