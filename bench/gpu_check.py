"""Check denet's GPU figures on a real NVIDIA GPU, next to what nvidia-smi reports.

    python bench/gpu_check.py [--seconds 20] [--interval 200] [--workload auto|torch|cupy|nvcc]

It runs a small CUDA workload as a process tree, ``sh -c 'W 256 & W 512; wait'``: two
workers that each hold a known amount of device memory (256 and 512 MiB on top of
their CUDA context) and keep the GPU partly busy, children of a shell that does not
use the GPU. W is whatever this machine has: a PyTorch or CuPy script when one of
those imports with CUDA, else a CUDA C++ program compiled with nvcc.

denet monitors the tree (``gpu=True``). About once a second the script also runs
``nvidia-smi --query-compute-apps=pid,used_memory --format=csv`` and prints, per worker,
denet's ``gpu_memory_bytes`` next to nvidia-smi's ``used_memory`` (and denet's SM
utilization next to ``nvidia-smi pmon``'s, when pmon works). Then the devices (denet's
``system_metrics`` next to ``nvidia-smi --query-gpu``), the summary's ``gpu`` object,
and the cost of the GPU reads: the sampler's own timing of its NVML reads, and
``sample_once()`` of the same tree with ``gpu=True`` and ``gpu=False`` alternated.

Standard library and denet only; finishes in under 3 minutes. Exit status: 0 when the
figures were taken, 1 when nvidia-smi saw a worker that denet did not, 2 when there is
no NVIDIA GPU or driver (the reason is printed), 3 when no CUDA workload could be run.
"""
from __future__ import annotations

import argparse
import ctypes
import os
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time

try:
    import denet
except ImportError as e:  # pragma: no cover
    sys.exit(f"gpu_check: cannot import denet ({e}); run it with the interpreter denet is installed in "
             "(make build, then .venv/bin/python bench/gpu_check.py)")

MIB = 1 << 20
BUDGET_SECS = 170  # the whole check, compile and probes included: under 3 minutes
WORKER_MIB = (256, 512)
START = time.monotonic()

PY_WORKER = {
    "torch": """
        import sys, time, torch
        mib, secs = int(sys.argv[1]), float(sys.argv[2])
        buf = torch.ones(mib << 20, dtype=torch.uint8, device="cuda")
        a = torch.randn(2048, 2048, device="cuda")
        print("ready", flush=True)
        end = time.time() + secs
        while time.time() < end:
            for _ in range(4):
                a = torch.tanh(a @ a)
            torch.cuda.synchronize()
            time.sleep(0.005)
        print("done", int(buf.sum().item() >= 0), flush=True)
    """,
    "cupy": """
        import sys, time, cupy as cp
        mib, secs = int(sys.argv[1]), float(sys.argv[2])
        buf = cp.ones(mib << 20, dtype=cp.uint8)
        a = cp.random.rand(2048, 2048, dtype=cp.float32)
        print("ready", flush=True)
        end = time.time() + secs
        while time.time() < end:
            for _ in range(4):
                a = cp.tanh(a @ a)
            cp.cuda.Device().synchronize()
            time.sleep(0.005)
        print("done", int(buf.sum() >= 0), flush=True)
    """,
}

CUDA_WORKER = r"""
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <unistd.h>
#include <cuda_runtime.h>

__global__ void spin(float *x, int n, int iters)
{
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) {
        float v = x[i];
        for (int k = 0; k < iters; k++)
            v = v * 0.9999999f + 0.0000001f;
        x[i] = v;
    }
}

static double now(void)
{
    timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    if (argc < 3)
        return 2;
    size_t bytes = (size_t)atoi(argv[1]) << 20;
    double secs = atof(argv[2]);
    void *buf;
    cudaError_t e = cudaMalloc(&buf, bytes);
    if (e != cudaSuccess) {
        fprintf(stderr, "cudaMalloc: %s\n", cudaGetErrorString(e));
        return 1;
    }
    cudaMemset(buf, 1, bytes);
    int n = 1 << 20;
    float *x;
    cudaMalloc(&x, n * sizeof(float));
    cudaMemset(x, 0, n * sizeof(float));
    printf("ready\n");
    fflush(stdout);
    double end = now() + secs;
    while (now() < end) {
        spin<<<n / 256, 256>>>(x, n, 4000);
        e = cudaDeviceSynchronize();
        if (e != cudaSuccess) {
            fprintf(stderr, "kernel: %s\n", cudaGetErrorString(e));
            return 1;
        }
        usleep(5000);
    }
    printf("done\n");
    return 0;
}
"""


def say(text=""):
    print(text, flush=True)


def left():
    return BUDGET_SECS - (time.monotonic() - START)


def run(cmd, timeout):
    """(returncode, stdout, stderr); returncode None when it could not run or timed out."""
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=max(1.0, min(timeout, left())))
        return r.returncode, r.stdout, r.stderr
    except (OSError, subprocess.SubprocessError) as e:
        return None, "", str(e)


def table(headers, rows):
    rows = [[("-" if c is None else str(c)) for c in row] for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(headers)]
    out = ["  ".join(h.ljust(w) for h, w in zip(headers, widths)),
           "  ".join("-" * w for w in widths)]
    out += ["  ".join(c.rjust(w) if c[:1].isdigit() or c[:1] == "-" else c.ljust(w)
                      for c, w in zip(r, widths)) for r in rows]
    return "\n".join(out)


# --------------------------------------------------------------------------
# nvidia-smi


def smi_path():
    return shutil.which("nvidia-smi")


def smi_compute_apps():
    """{pid: used MiB} from nvidia-smi --query-compute-apps, or None when it cannot say."""
    if not smi_path():
        return None
    rc, out, _ = run(["nvidia-smi", "--query-compute-apps=pid,used_memory", "--format=csv,noheader,nounits"], 15)
    if rc != 0:
        return None
    apps = {}
    for line in out.splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) >= 2 and parts[0].isdigit():
            try:
                apps[int(parts[0])] = apps.get(int(parts[0]), 0) + int(parts[1])
            except ValueError:
                pass  # "[N/A]"
    return apps


def smi_pmon():
    """{pid: sm %} from one `nvidia-smi pmon -c 1 -s u`, or None."""
    if not smi_path():
        return None
    rc, out, _ = run(["nvidia-smi", "pmon", "-c", "1", "-s", "u"], 15)
    if rc != 0:
        return None
    sm = {}
    for line in out.splitlines():
        f = line.split()
        if len(f) >= 4 and not line.lstrip().startswith("#") and f[1].isdigit():
            sm[int(f[1])] = None if f[3] == "-" else int(f[3]) if f[3].isdigit() else None
    return sm


def smi_devices():
    if not smi_path():
        return None
    rc, out, _ = run(["nvidia-smi", "--query-gpu=index,name,memory.total,memory.used,utilization.gpu,"
                      "temperature.gpu,power.draw,driver_version", "--format=csv,noheader,nounits"], 15)
    if rc != 0:
        return None
    return [[p.strip() for p in line.split(",")] for line in out.splitlines() if line.strip()]


# --------------------------------------------------------------------------
# NVML itself, through ctypes: what each call denet makes costs, and what the driver's
# per-process utilization samples look like


class _Util(ctypes.Structure):
    _fields_ = [("gpu", ctypes.c_uint), ("memory", ctypes.c_uint)]


class _Mem(ctypes.Structure):
    _fields_ = [("total", ctypes.c_ulonglong), ("free", ctypes.c_ulonglong), ("used", ctypes.c_ulonglong)]


class _Proc(ctypes.Structure):  # nvmlProcessInfo_v2_t
    _fields_ = [("pid", ctypes.c_uint), ("used", ctypes.c_ulonglong), ("gi", ctypes.c_uint), ("ci", ctypes.c_uint)]


class _Sample(ctypes.Structure):  # nvmlProcessUtilizationSample_t
    _fields_ = [("pid", ctypes.c_uint), ("ts", ctypes.c_ulonglong), ("sm", ctypes.c_uint), ("mem", ctypes.c_uint),
                ("enc", ctypes.c_uint), ("dec", ctypes.c_uint)]


def _nvml():
    try:
        lib = ctypes.CDLL(os.environ.get("DENET_NVML_LIBRARY") or "libnvidia-ml.so.1")
    except OSError:
        return None, None
    if lib.nvmlInit_v2() != 0:
        return None, None
    h = ctypes.c_void_p()
    if lib.nvmlDeviceGetHandleByIndex_v2(0, ctypes.byref(h)) != 0:
        lib.nvmlShutdown()
        return None, None
    return lib, h


def nvml_call_costs(rounds=30):
    """[[call, median µs, max µs, result]] for each NVML call of denet's read, device 0."""
    lib, h = _nvml()
    if not lib:
        return []
    util, mem, val = _Util(), _Mem(), ctypes.c_uint()
    procs, samples = (_Proc * 256)(), (_Sample * 1024)()
    count = ctypes.c_uint()

    def plist(fn):
        count.value = 256
        return fn(h, ctypes.byref(count), procs)

    def putil(since):
        count.value = 1024
        return lib.nvmlDeviceGetProcessUtilization(h, samples, ctypes.byref(count), ctypes.c_ulonglong(since))

    wall_us = lambda: time.time_ns() // 1000  # noqa: E731
    calls = [
        ("nvmlDeviceGetUtilizationRates", lambda: lib.nvmlDeviceGetUtilizationRates(h, ctypes.byref(util))),
        ("nvmlDeviceGetMemoryInfo", lambda: lib.nvmlDeviceGetMemoryInfo(h, ctypes.byref(mem))),
        ("nvmlDeviceGetTemperature", lambda: lib.nvmlDeviceGetTemperature(h, 0, ctypes.byref(val))),
        ("nvmlDeviceGetPowerUsage", lambda: lib.nvmlDeviceGetPowerUsage(h, ctypes.byref(val))),
        ("nvmlDeviceGetComputeRunningProcesses_v2", lambda: plist(lib.nvmlDeviceGetComputeRunningProcesses_v2)),
        ("nvmlDeviceGetGraphicsRunningProcesses_v2", lambda: plist(lib.nvmlDeviceGetGraphicsRunningProcesses_v2)),
        ("nvmlDeviceGetProcessUtilization (last 1 s)", lambda: putil(wall_us() - 1_000_000)),
        ("nvmlDeviceGetProcessUtilization (all kept)", lambda: putil(0)),
    ]
    rows = []
    for name, fn in calls:
        times, rc = [], None
        for _ in range(rounds):
            t0 = time.perf_counter_ns()
            rc = fn()
            times.append((time.perf_counter_ns() - t0) / 1000)
        extra = f"rc {rc}" + (f", {count.value} entries" if "Process" in name and rc == 0 else "")
        rows.append([name, f"{statistics.median(times):.0f}", f"{max(times):.0f}", extra])
    lib.nvmlShutdown()
    return rows


def nvml_samples(pids, reads=8, every=0.2):
    """What nvmlDeviceGetProcessUtilization(lastSeen = 1 s ago) returns for these pids,
    read `reads` times `every` seconds apart: [[read, pid, age ms, sm %, mem %]]."""
    lib, h = _nvml()
    if not lib:
        return []
    samples, count, rows = (_Sample * 1024)(), ctypes.c_uint(), []
    for k in range(reads):
        now = time.time_ns() // 1000
        count.value = 1024
        rc = lib.nvmlDeviceGetProcessUtilization(h, samples, ctypes.byref(count), ctypes.c_ulonglong(now - 1_000_000))
        now = time.time_ns() // 1000  # after the call: a sample may be stamped during it
        got = [samples[i] for i in range(count.value)] if rc == 0 else []
        mine = [x for x in got if x.pid in pids]
        if not mine:
            rows.append([k, "-", "-", "-", f"rc {rc}, {len(got)} entries"])
        for x in sorted(mine, key=lambda x: (x.pid, x.ts)):
            rows.append([k, x.pid, f"{(now - x.ts) / 1000:.0f}", x.sm, x.mem])
        time.sleep(every)
    lib.nvmlShutdown()
    return rows


# --------------------------------------------------------------------------
# the workload


def probe_python(framework):
    code = {"torch": "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)",
            "cupy": "import cupy, sys; sys.exit(0 if cupy.cuda.runtime.getDeviceCount() > 0 else 1)"}[framework]
    rc, _, err = run([sys.executable, "-c", code], 60)
    return rc == 0, (err.strip().splitlines() or [""])[-1]


def build_worker(kind, workdir):
    """argv prefix of one worker (then MIB SECS), or (None, why)."""
    if kind in PY_WORKER:
        ok, why = probe_python(kind)
        if not ok:
            return None, f"{kind}: not usable with CUDA ({why or 'import failed'})"
        path = os.path.join(workdir, f"worker_{kind}.py")
        with open(path, "w") as f:
            f.write(textwrap.dedent(PY_WORKER[kind]))
        return [sys.executable, path], ""
    nvcc = shutil.which("nvcc") or next((p for p in ("/usr/local/cuda/bin/nvcc",) if os.path.exists(p)), None)
    if not nvcc:
        return None, "nvcc: not found"
    src = os.path.join(workdir, "worker.cu")
    exe = os.path.join(workdir, "worker")
    with open(src, "w") as f:
        f.write(CUDA_WORKER)
    say(f"compiling the CUDA worker with {nvcc} ...")
    # for the GPUs of this machine when nvcc can tell (CUDA 11.5+), else its default
    rc, _, err = run([nvcc, "-O2", "-arch=native", "-o", exe, src], 90)
    if rc != 0 and left() > 60:
        rc, _, err = run([nvcc, "-O2", "-o", exe, src], 90)
    if rc != 0:
        return None, f"nvcc failed: {(err.strip().splitlines() or ['timed out'])[-1]}"
    return [exe], ""


def choose_worker(wanted, workdir):
    tried = []
    for kind in (["torch", "cupy", "nvcc"] if wanted == "auto" else [wanted]):
        argv, why = build_worker(kind, workdir)
        if argv:
            return kind, argv, tried
        tried.append(why)
    return None, None, tried


# --------------------------------------------------------------------------
# the check


def tree_pids(sample):
    if not sample or not isinstance(sample.get("parent"), dict):
        return {}
    pids = {}
    for c in sample.get("children", []):
        pids[c["pid"]] = c["metrics"]
    return pids


def sample_once_cost(root_pid, rounds=25):
    """Median µs of sample_once() on the tree with and without the GPU reads, alternated."""
    try:
        with_gpu = denet.ProcessMonitor.from_pid(root_pid, gpu=True, quiet=True)
        without = denet.ProcessMonitor.from_pid(root_pid, gpu=False, quiet=True)
    except (OSError, ValueError) as e:
        return None, None, str(e)
    t_on, t_off = [], []
    for _ in range(rounds):
        for mon, times in ((with_gpu, t_on), (without, t_off)):
            t0 = time.perf_counter()
            if mon.sample_once() is None:
                return None, None, "the workload ended"
            times.append((time.perf_counter() - t0) * 1e6)
    with_gpu.stop()
    without.stop()
    return statistics.median(t_on), statistics.median(t_off), None


def off_gpu_cost():
    """sample_once_cost of a process that uses no GPU (a `sleep`): what GPU monitoring
    costs a tree that never touches the GPU on a machine that has one."""
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        return sample_once_cost(sleeper.pid)
    finally:
        sleeper.kill()
        sleeper.wait()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=20.0, help="how long the workers run (default 20)")
    ap.add_argument("--interval", type=int, default=200, help="denet's sampling interval in ms (default 200)")
    ap.add_argument("--workload", choices=["auto", "torch", "cupy", "nvcc"], default="auto")
    ap.add_argument("--worker", metavar="CMD",
                    help="a command that stands in for the CUDA worker (it gets MIB SECS); "
                         "tests/test_gpu.py checks this script with it")
    args = ap.parse_args()
    args.seconds = max(5.0, min(args.seconds, 60.0))

    say(f"denet {denet.__version__}, gpu_check")
    t = time.perf_counter()
    ok, reason = denet.gpu_available()
    startup_us = (time.perf_counter() - t) * 1e6  # what every monitor with GPU monitoring pays
    if not ok:
        say(f"no NVIDIA GPU to check: {reason}")
        say("Nothing was measured. Run this on a machine with an NVIDIA GPU and its driver.")
        return 2
    devices = smi_devices()
    if devices:
        say(f"driver {devices[0][-1]}, {len(devices)} device(s): " + "; ".join(d[1] for d in devices))
    if not smi_path():
        say("nvidia-smi not found: denet's figures are printed without the comparison")

    with tempfile.TemporaryDirectory(prefix="denet-gpu-check-") as workdir:
        if args.worker:
            kind, worker, tried = "given", shlex.split(args.worker), []
        else:
            kind, worker, tried = choose_worker(args.workload, workdir)
        if not worker:
            say("no CUDA workload could be run here: " + "; ".join(tried))
            say("Install PyTorch or CuPy with CUDA, or the CUDA toolkit (nvcc), and run again.")
            return 3
        if left() < args.seconds + 30:
            args.seconds = left() - 30
            if args.seconds < 5:
                say("no time left for the workload after preparing it (the check must end within 3 minutes)")
                return 3
        say(f"workload: {kind} ({' '.join(worker)}), workers of {WORKER_MIB[0]} and {WORKER_MIB[1]} MiB, "
            f"{args.seconds:.0f} s")
        q = shlex.join(worker)
        script = f"{q} {WORKER_MIB[0]} {args.seconds} & {q} {WORKER_MIB[1]} {args.seconds}; wait"
        mon = denet.ProcessMonitor(["sh", "-c", script], base_interval_ms=args.interval,
                                   max_interval_ms=args.interval, gpu=True, stdout=subprocess.DEVNULL,
                                   start_new_session=True)
        if not mon.is_gpu_enabled():
            say(f"denet could not start GPU monitoring: {mon.gpu_error}")
            mon.stop()
            return 2
        mon.start()
        rows, missed, sm_rows = [], set(), []
        cost, calls, raw, off_cost = None, [], [], None
        t0 = time.monotonic()
        deadline = t0 + args.seconds + 60  # CUDA start-up included
        while mon.is_running() and time.monotonic() < deadline and left() > 25:
            time.sleep(1.0)
            apps = smi_compute_apps()
            # denet's reading from after nvidia-smi's: a worker's memory only grows, so a
            # worker nvidia-smi listed must have memory in it
            time.sleep(2 * args.interval / 1000)
            pids = tree_pids(mon.latest_sample())
            elapsed = time.monotonic() - t0
            for pid, m in sorted(pids.items()):
                used = None if apps is None else apps.get(pid)
                denet_mib = None if m.get("gpu_memory_bytes") is None else m["gpu_memory_bytes"] / MIB
                if used is not None and not denet_mib:
                    missed.add(pid)
                diff = None if used is None or denet_mib is None else f"{denet_mib - used:+.1f}"
                rows.append([f"{elapsed:.1f}", pid, None if denet_mib is None else f"{denet_mib:.1f}",
                             used, diff, m.get("gpu_sm_utilization")])
            on_gpu = any(m.get("gpu_memory_bytes") for m in pids.values())
            # one SM reading first, before the costs below take their time (on a slow
            # machine the workload may end meanwhile), then more after them
            if len(sm_rows) < 4 and on_gpu and left() > 40 and (cost is not None or not sm_rows):
                pmon = smi_pmon()
                after = tree_pids(mon.latest_sample())
                if pmon is not None:
                    for pid, m in sorted(after.items()):
                        sm_rows.append([f"{time.monotonic() - t0:.1f}", pid, m.get("gpu_sm_utilization"),
                                        pmon.get(pid)])
            if cost is None and on_gpu and left() > 40:
                cost = sample_once_cost(mon.get_pid())
                calls = nvml_call_costs()
                off_cost = off_gpu_cost()
                raw = nvml_samples(set(pids))
        if mon.is_running():
            say("stopping the workload (time budget)")
            for sig in (signal.SIGTERM, signal.SIGKILL):
                try:
                    os.killpg(mon.get_pid(), sig)  # its own session: the shell and the workers
                except OSError:
                    break
                if mon.wait(timeout=2) is not None:
                    break
        mon.wait(timeout=10)
        mon.stop()

        samples = mon.get_samples()
        say()
        say("Per worker: denet's gpu_memory_bytes (MiB) next to nvidia-smi --query-compute-apps used_memory "
            "(MiB), about once a second")
        shown = rows if len(rows) <= 40 else rows[:10] + [["..."] * 6] + rows[-28:]
        say(table(["t (s)", "pid", "denet MiB", "nvidia-smi MiB", "diff", "denet SM %"], shown))
        diffs = [abs(float(r[4])) for r in rows if r[4] not in (None, "...")]
        if diffs:
            say(f"memory, denet - nvidia-smi: {len(diffs)} readings, largest difference {max(diffs):.1f} MiB, "
                f"median {statistics.median(diffs):.1f} MiB (nvidia-smi rounds to MiB; the two read "
                f"{2 * args.interval} to {3 * args.interval} ms apart)")
        elif smi_path():
            say("nvidia-smi listed none of the workers: in a container whose pid namespace is not the "
                "host's, NVML reports host pids and neither tool can match them")
        if sm_rows:
            say()
            say("SM utilization: denet's latest sample next to one `nvidia-smi pmon -c 1 -s u`")
            say(table(["t (s)", "pid", "denet SM %", "pmon sm %"], sm_rows))

        last = next((s for s in reversed(samples) if s["aggregated"].get("gpu", {}).get("system_metrics")), None)
        if last:
            say()
            say("Devices: denet's last sample (system_metrics) next to nvidia-smi --query-gpu now")
            smi = smi_devices() or []
            drows = []
            for d in last["aggregated"]["gpu"]["system_metrics"]:
                s = next((x for x in smi if x[0] == str(d["device_index"])), None)
                mib = lambda v: None if v is None else f"{v / MIB:.0f}"  # noqa: E731
                drows.append([d["device_index"], d["name"], mib(d["memory_total"]), s and s[2],
                              mib(d["memory_used"]), s and s[3], d["system_utilization_gpu"], s and s[4],
                              d["temperature"], s and s[5],
                              None if d["power_usage"] is None else f"{d['power_usage'] / 1000:.1f}", s and s[6]])
            say(table(["gpu", "name", "total MiB", "smi", "used MiB", "smi", "util %", "smi", "temp C",
                       "smi", "power W", "smi"], drows))
            errors = sorted({s["aggregated"]["gpu"]["error"] for s in samples if "error" in s["aggregated"].get("gpu", {})})
            for e in errors:
                say(f"denet reported: {e}")

        say()
        say("Summary gpu: " + ", ".join(f"{k}={v}" for k, v in mon.get_summary().get("gpu", {}).items()))
        own = mon._gpu_read_cost()
        say()
        say("Cost of the GPU reads")
        crow = []
        if own["reads"]:
            crow.append(["sampler's NVML reads (every device, process lists, utilization)", own["reads"],
                         f"{own['total_ns'] / own['reads'] / 1000:.0f}", f"{own['max_ns'] / 1000:.0f}"])
        if cost and cost[0] is not None:
            on, off, _ = cost
            crow.append(["sample_once() of the tree, gpu=True", 25, f"{on:.0f}", None])
            crow.append(["sample_once() of the tree, gpu=False", 25, f"{off:.0f}", None])
            crow.append(["difference: the GPU part of one sample", None, f"{on - off:.0f}", None])
        elif cost:
            crow.append([f"sample_once() comparison not taken: {cost[2]}", None, None, None])
        if off_cost and off_cost[0] is not None:
            crow.append(["sample_once() of a process on no GPU (sleep), gpu=True", 25, f"{off_cost[0]:.0f}", None])
            crow.append(["sample_once() of a process on no GPU (sleep), gpu=False", 25, f"{off_cost[1]:.0f}", None])
        crow.append(["start-up: gpu_available() (dlopen, nvmlInit, devices, nvmlShutdown), once", 1,
                     f"{startup_us:.0f}", None])
        say(table(["what", "reads", "mean/median µs", "max µs"], crow))
        if calls:
            say()
            say("Each NVML call of one read (device 0, 30 calls each, through ctypes, workers running)")
            say(table(["call", "median µs", "max µs", "result"], calls))
        if raw:
            say()
            say("The driver's per-process utilization samples: nvmlDeviceGetProcessUtilization(lastSeen = "
                "1 s ago), read every 200 ms (age: how old each sample was at the read)")
            say(table(["read", "pid", "age ms", "sm %", "mem %"], raw))

        say()
        if missed:
            say(f"RESULT: nvidia-smi saw worker pid(s) {sorted(missed)} on the GPU that denet reported "
                "without GPU memory")
            return 1
        if not diffs:
            say("RESULT: figures taken, but no worker could be compared with nvidia-smi")
            return 0
        say(f"RESULT: denet saw every worker nvidia-smi saw; took {time.monotonic() - START:.0f} s")
        return 0


if __name__ == "__main__":
    sys.exit(main())
