"""Memory characterization: psi_mem and perf counters per sample, capabilities in the
metadata, memory_characterization in the summary.

This machine (a VM) has no hardware counters, so the unavailable path is proven as it
is (a clear reason, `insufficient-data`, nothing else disturbed), and the counting path
(inherit over the tree, deltas per sample, totals) with software events standing in
(DENET_PERF_SOFTWARE=1): task-clock ns against the CPU time of the tree, context
switches and minor faults against getrusage of the tree.
"""
import json
import os
import subprocess
import sys
import time

import pytest

import denet
from denet import _summary

# A parent that burns CPU, forks a child that touches 16 MiB and burns CPU, waits for
# it, sleeps a little, then reports getrusage of itself plus its waited child.
TREE = r"""
import json, os, resource, time
def burn(n):
    x = 0
    for i in range(n):
        x += i
burn(2_000_000)
c = os.fork()
if c == 0:
    b = bytearray(16 << 20)
    for i in range(0, len(b), 4096):
        b[i] = 1
    burn(3_000_000)
    os._exit(0)
os.waitpid(c, 0)
for _ in range(20):
    time.sleep(0.005)
s, k = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
print(json.dumps({"cpu": s.ru_utime + s.ru_stime + k.ru_utime + k.ru_stime,
                  "switches": s.ru_nvcsw + s.ru_nivcsw + k.ru_nvcsw + k.ru_nivcsw,
                  "minflt": s.ru_minflt + k.ru_minflt}), flush=True)
os._exit(0)  # no interpreter teardown after the report
"""


def run_tree(tmp_path, **kw):
    out = tmp_path / "report.json"
    with open(out, "w") as f:
        mon = denet.ProcessMonitor([sys.executable, "-S", "-c", TREE], base_interval_ms=30,
                                   max_interval_ms=30, stdout=f.fileno(), quiet=True, **kw)
        assert mon.run() == 0
    return mon, json.loads(out.read_text())


def test_without_hardware_counters_the_reason_is_clear_and_nothing_else_changes(tmp_path):
    ok, why = denet._denet.perf_available()
    if ok:
        pytest.skip(f"this machine has hardware counters ({why or 'available'}): see the counting test")
    mon, report = run_tree(tmp_path)
    cap = mon.get_metadata()["capabilities"]["perf_hw"]
    assert cap["available"] is False and cap["events"] == []
    assert cap["reason"] == why and len(cap["reason"]) > 20
    assert "counters" in cap["reason"] or "perf_event_paranoid" in cap["reason"]
    samples = mon.get_samples()
    assert samples and all("perf" not in s["aggregated"] for s in samples)
    mc = mon.get_summary()["memory_characterization"]
    assert mc["verdict"] == "insufficient-data"
    assert mc["mean_ipc"] is None and mc["llc_miss_rate"] is None and mc["backend_stall_ratio"] is None
    # nothing else disturbed: the exact CPU time of the tree is still there
    summary = mon.get_summary()
    assert abs(summary["total_cpu_time_secs"] - report["cpu"]) <= 0.05 + 0.05 * report["cpu"]


def test_hardware_counters_count_when_present(tmp_path):
    ok, why = denet._denet.perf_available()
    if not ok:
        pytest.skip(f"no hardware counters here: {why}")
    mon, report = run_tree(tmp_path)
    cap = mon.get_metadata()["capabilities"]["perf_hw"]
    assert cap["available"] and "cycles" in cap["events"]
    cycles = sum(s["aggregated"]["perf"]["cycles"] or 0 for s in mon.get_samples())
    assert cycles > 0
    assert mon.get_summary()["memory_characterization"]["mean_ipc"] is not None


def test_counting_path_with_software_events(tmp_path, monkeypatch):
    monkeypatch.setenv("DENET_PERF_SOFTWARE", "1")
    mon, report = run_tree(tmp_path)
    cap = mon.get_metadata()["capabilities"]["perf_hw"]
    assert cap["available"] is False and "DENET_PERF_SOFTWARE" in cap["reason"]
    assert cap["events"] == ["cycles", "instructions", "cache_refs", "cache_misses", "stalled_backend"]
    samples = mon.get_samples()
    perf = [s["aggregated"]["perf"] for s in samples]
    assert len(perf) >= 3
    total = {k: sum(p[k] for p in perf) for k in perf[0]}
    # cycles = task-clock ns: the CPU time of the whole tree, the forked child included
    # (inherit); the counter starts at the exec, getrusage a little before it.
    cpu = total["cycles"] / 1e9
    assert abs(cpu - report["cpu"]) <= 0.03 + 0.05 * report["cpu"], (cpu, report)
    assert abs(cpu - mon.get_summary()["total_cpu_time_secs"]) <= 0.03 + 0.05 * cpu
    # instructions = context switches of the tree; cache_refs = its minor faults (the
    # command waited on denet's hold pipe before its exec, where counting starts; on a
    # loaded machine it is also preempted there, which getrusage counts and perf not)
    assert report["switches"] - 40 <= total["instructions"] <= report["switches"] + 10, (total, report)
    assert abs(total["cache_refs"] - report["minflt"]) <= 300 + 0.05 * report["minflt"], (total, report)
    assert total["cache_refs"] >= 4096  # the child's 16 MiB, one fault a page
    # deltas: no sample repeats what an earlier one counted
    assert sum(1 for p in perf if p["cycles"] > 0) >= 2
    # software events are no measure of the memory system: no verdict from them
    assert mon.get_summary()["memory_characterization"]["verdict"] == "insufficient-data"


def read_psi(path):
    with open(path) as f:
        text = f.read()
    return float(text.split("some avg10=")[1].split()[0])


def test_psi_mem_says_where_it_comes_from(tmp_path):
    if not os.path.exists("/proc/pressure/memory"):
        mon, _ = run_tree(tmp_path)
        psi = mon.get_metadata()["capabilities"]["psi"]
        assert psi["system"] is False and psi["per_process"] is False and psi["reason"]
        assert all("psi_mem" not in s["aggregated"] for s in mon.get_samples())
        return
    mon, _ = run_tree(tmp_path)
    psi = mon.get_metadata()["capabilities"]["psi"]
    assert psi["system"] is True and psi["source"]
    if not psi["per_process"]:
        assert psi["source"] == "/proc/pressure/memory"
        assert "system" in psi["reason"]
    samples = mon.get_samples()
    for s in samples:
        p = s["aggregated"]["psi_mem"]
        assert 0.0 <= p["some_avg10"] <= 100.0 and 0.0 <= p["full_avg10"] <= p["some_avg10"] + 1e-9
    mc = mon.get_summary()["memory_characterization"]
    mean = sum(s["aggregated"]["psi_mem"]["some_avg10"] for s in samples) / len(samples) / 100
    assert mc["psi_some_fraction"] == pytest.approx(mean, abs=1e-9)


def test_psi_of_the_process_cgroup(tmp_path):
    """A process in a cgroup v2 group of its own: psi_mem is that group's."""
    mnt = next((line.split()[4] for line in open("/proc/self/mountinfo") if " - cgroup2 " in line), None)
    if os.geteuid() != 0 or mnt is None:
        pytest.skip("needs root and a cgroup v2 hierarchy")
    group = os.path.join(mnt, f"denet-test-{os.getpid()}")
    os.mkdir(group)
    p = subprocess.Popen(["sleep", "5"])
    try:
        with open(os.path.join(group, "cgroup.procs"), "w") as f:
            f.write(str(p.pid))
        mon = denet.ProcessMonitor.from_pid(p.pid, quiet=True)
        psi = mon.get_metadata()["capabilities"]["psi"]
        assert psi["per_process"] is True, psi
        assert psi["source"] == os.path.join(group, "memory.pressure")
        before = read_psi(psi["source"])
        s = mon.sample_once()
        assert s["aggregated"]["psi_mem"]["some_avg10"] == pytest.approx(before, abs=1.0)
        mon.stop()
    finally:
        p.kill()
        p.wait()
        for _ in range(100):  # the group empties once the kernel has reaped sleep
            try:
                os.rmdir(group)
                break
            except OSError:
                time.sleep(0.05)


@pytest.mark.parametrize("perf,psi,verdict", [
    ({"cycles": 1000, "instructions": 500, "cache_refs": 100, "cache_misses": 50, "stalled_backend": 600},
     [], "memory-bound"),
    ({"cycles": 1000, "instructions": 2000, "cache_refs": 100, "cache_misses": 5, "stalled_backend": 100},
     [], "cpu-bound"),
    ({"cycles": 1000, "instructions": 1200, "cache_refs": 100, "cache_misses": 5, "stalled_backend": 300},
     [], "mixed"),
    ({"cycles": 1000, "instructions": 1200, "cache_refs": 100, "cache_misses": 5, "stalled_backend": 300},
     [60.0], "memory-bound"),
    ({"cycles": 1000, "instructions": 500, "cache_refs": 100, "cache_misses": 50, "stalled_backend": 500},
     [], "mixed"),
    ({}, [], "insufficient-data"),
    ({}, [80.0], "memory-bound"),
    ({"cycles": 1000, "instructions": 500, "stalled_backend": None}, [], "insufficient-data"),
])
def test_verdict_rules(perf, psi, verdict):
    # The same table as tests/c/test_session.c runs through the extension's rules.
    assert _summary.memory_characterization(perf, psi)["verdict"] == verdict


def test_summary_from_samples_without_a_summary_record(tmp_path, monkeypatch):
    monkeypatch.setenv("DENET_PERF_SOFTWARE", "1")
    mon, _ = run_tree(tmp_path)
    samples = mon.get_samples()
    from_samples = denet.generate_summary_from_metrics_json(samples, 1.0)
    mc = from_samples["memory_characterization"]
    total_cycles = sum(s["aggregated"]["perf"]["cycles"] for s in samples)
    total_instr = sum(s["aggregated"]["perf"]["instructions"] for s in samples)
    assert mc["mean_ipc"] == pytest.approx(total_instr / total_cycles)
