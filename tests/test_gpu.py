"""GPU monitoring through NVML, end to end, without a GPU.

A fake libnvidia-ml.so (tests/gpu/fake_nvml.c, built here with gcc) is loaded through
DENET_NVML_LIBRARY. It reports the devices and per-process figures a test writes into
its config file (FAKE_NVML_CONFIG), for pids of the tree the test spawned; every field
is then checked in the dicts, the JSONL and CSV files, the summaries and the CLI. The
paths where NVML is missing, fails to initialise, or a call fails are checked too: a
clear reason, and the rest of monitoring untouched."""
import csv
import ctypes
import json
import os
import re
import shutil
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest

import denet
from denet import _cli_format
from denet._summary import gpu_summary_of
from conftest import PY

REPO = Path(__file__).resolve().parent.parent
FAKE_SRC = REPO / "tests" / "gpu" / "fake_nvml.c"
MIB = 1 << 20
GIB = 1 << 30
GPU_FIELDS = ("gpu_memory_bytes", "gpu_sm_utilization")
#: pids above the kernel's largest pid_max (2**22): never a process of the tree.
FOREIGN = [4194304 + 1 + k for k in range(40)]

DEVICES = [
    f"device {80 * GIB} {2 * GIB} 40 12 55 70500 NVIDIA Fake A100-SXM4-80GB",
    f"device {16 * GIB} {1 * GIB} 7 3 31 21000 NVIDIA Fake T4",
]
SYSTEM_METRICS = [
    {"device_index": 0, "name": "NVIDIA Fake A100-SXM4-80GB", "system_utilization_gpu": 40,
     "system_utilization_memory": 12, "memory_total": 80 * GIB, "memory_used": 2 * GIB,
     "memory_free": 78 * GIB, "temperature": 55, "power_usage": 70500},
    {"device_index": 1, "name": "NVIDIA Fake T4", "system_utilization_gpu": 7,
     "system_utilization_memory": 3, "memory_total": 16 * GIB, "memory_used": 1 * GIB,
     "memory_free": 15 * GIB, "temperature": 31, "power_usage": 21000},
]


def tree_config(root, child):
    """The root on both devices (on device 0 with a compute and a graphics context, which
    is one process), the child on device 1, and 40 processes that are not of the tree
    (more than the first buffer denet passes to NVML holds)."""
    return DEVICES + [
        f"compute 0 {root} {512 * MIB}",
        f"graphics 0 {root} {512 * MIB}",
        f"compute 1 {root} {256 * MIB}",
        f"compute 1 {child} {1 * GIB}",
        f"util 0 {root} 30 10",
        f"util 0 {root} 50 20",
        f"util 1 {child} 7 3",
    ] + [f"compute 0 {pid} 4096" for pid in FOREIGN] + [f"util 0 {FOREIGN[0]} 99 99"]


def expected_process_data(root, child):
    """What denet must report for tree_config: the mean of the samples of the last second
    (30 and 50 -> 40), 0 % where a process has memory but ran nothing."""
    entries = [
        {"pid": root, "device_index": 0, "gpu_utilization": 40, "memory_usage": 512 * MIB,
         "memory_utilization_pct": 15},
        {"pid": root, "device_index": 1, "gpu_utilization": 0, "memory_usage": 256 * MIB,
         "memory_utilization_pct": 0},
        {"pid": child, "device_index": 1, "gpu_utilization": 7, "memory_usage": 1 * GIB,
         "memory_utilization_pct": 3},
    ]
    return sorted(entries, key=lambda e: (e["device_index"], e["pid"]))


# --------------------------------------------------------------------------
# the fake library


@pytest.fixture(scope="session")
def fake_lib(tmp_path_factory):
    gcc = shutil.which("gcc") or shutil.which("cc")
    if gcc is None:
        msg = "gcc is needed to build the fake libnvidia-ml.so (tests/gpu/fake_nvml.c)"
        if os.environ.get("DENET_REQUIRE_EBPF"):
            pytest.fail(msg + "; it is missing and DENET_REQUIRE_EBPF is set")
        pytest.skip(msg)
    out = tmp_path_factory.mktemp("fake-nvml") / "libnvidia-ml.so.1"
    r = subprocess.run([gcc, "-std=c11", "-Wall", "-Wextra", "-Werror", "-O1", "-shared", "-fPIC",
                        "-fvisibility=hidden", "-o", str(out), str(FAKE_SRC), "-lpthread"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return out


class FakeNvml:
    def __init__(self, lib: Path, config: Path):
        self.lib = lib
        self.config = config

    def write(self, lines):
        tmp = self.config.with_suffix(".tmp")
        tmp.write_text("\n".join(lines) + "\n")
        os.replace(tmp, self.config)  # the fake re-reads it at every call

    def env(self):
        return {"DENET_NVML_LIBRARY": str(self.lib), "FAKE_NVML_CONFIG": str(self.config)}

    def init_count(self):
        return ctypes.CDLL(str(self.lib)).fake_nvml_init_count()

    def calls(self, fn):
        """How often denet (this process) called FN of the fake."""
        return ctypes.CDLL(str(self.lib)).fake_nvml_calls(fn.encode())


@pytest.fixture
def nvml(fake_lib, tmp_path, monkeypatch):
    fake = FakeNvml(fake_lib, tmp_path / "nvml.conf")
    fake.write(DEVICES)
    for key, value in fake.env().items():
        monkeypatch.setenv(key, value)
    return fake


# --------------------------------------------------------------------------
# a tree whose pids the test learns


TREE = r"""
import os, subprocess, sys, time
child = subprocess.Popen(["sleep", "30"])
tmp = sys.argv[1] + ".tmp"
with open(tmp, "w") as f:
    f.write(f"{os.getpid()} {child.pid}")
os.replace(tmp, sys.argv[1])
while not os.path.exists(sys.argv[2]):
    time.sleep(0.02)
child.kill()
child.wait()
"""


def tree_cmd(tmp_path):
    return [PY, "-c", TREE, str(tmp_path / "pids"), str(tmp_path / "done")]


def wait_for(predicate, timeout=20.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def read_pids(tmp_path):
    path = tmp_path / "pids"
    text = wait_for(lambda: path.exists() and path.read_text(), what="the tree's pids")
    root, child = map(int, text.split())
    return root, child


def gpu_of(sample):
    return (sample["aggregated"] if "aggregated" in sample else sample).get("gpu")


def with_process_data(samples):
    return [s for s in samples if (gpu_of(s) or {}).get("has_process_data")]


def samples_after_config(mon, n=3):
    """Waits until n samples carry process data (the config written after the start)."""
    wait_for(lambda: len(with_process_data(mon.get_samples())) >= n, what=f"{n} samples with GPU data")


# --------------------------------------------------------------------------
# everything, end to end


def test_gpu_available_with_the_fake_library(nvml):
    assert denet.gpu_available() == (True, "")
    assert nvml.init_count() == 0  # the probe shut NVML down again


def test_tree_samples_summary_and_files(nvml, tmp_path):
    out = tmp_path / "run.jsonl"
    mon = denet.ProcessMonitor(tree_cmd(tmp_path), base_interval_ms=50, output_file=str(out),
                               write_metadata=True)
    assert mon.is_gpu_enabled() and mon.gpu_device_count() == 2 and mon.gpu_error is None
    mon.start()
    root, child = read_pids(tmp_path)
    assert root == mon.get_pid()
    nvml.write(tree_config(root, child))
    samples_after_config(mon, 5)
    # More memory in use and a busier device 0 for a while: the peaks.
    busy = [DEVICES[0].replace(f" {2 * GIB} 40 ", f" {5 * GIB} 90 "), DEVICES[1]]
    busy += [line for line in tree_config(root, child)[2:] if not line.startswith("util 0")]
    nvml.write(busy + [f"util 0 {root} 95 50"])
    # the busy phase lasts until a sample's window (the last second) holds only its
    # samples: the process's mean is then 95
    wait_for(lambda: any(d["system_utilization_gpu"] == 90
                         for s in mon.get_samples() for d in gpu_of(s)["system_metrics"])
             and any(s["parent"]["gpu_sm_utilization"] == 95 for s in mon.get_samples()),
             what="the busier device")
    nvml.write(tree_config(root, child))
    n = len(mon.get_samples())
    wait_for(lambda: len(mon.get_samples()) >= n + 2, what="samples after the busy phase")
    (tmp_path / "done").touch()
    assert mon.wait(timeout=20) == 0
    mon.stop()

    samples = mon.get_samples()
    # The samples between the config naming the tree and the busy phase, less the one
    # at each end, which may have been read while the file was being replaced.
    busy_at = next(i for i, s in enumerate(samples)
                   if gpu_of(s)["system_metrics"][0]["system_utilization_gpu"] == 90)
    steady = with_process_data(samples[:busy_at - 1])[1:]
    assert len(steady) >= 3
    for s in steady:
        gpu = s["aggregated"]["gpu"]
        assert list(gpu) == ["system_metrics", "process_data", "has_process_data", "collection_method"]
        assert gpu["system_metrics"] == SYSTEM_METRICS
        assert gpu["process_data"] == expected_process_data(root, child)
        assert gpu["has_process_data"] is True and gpu["collection_method"] == "nvml"
        # each process's own Metrics: both devices summed, a graphics+compute process once
        assert s["parent"]["gpu_memory_bytes"] == 768 * MIB
        assert s["parent"]["gpu_sm_utilization"] == 40
        (c,) = s["children"]
        assert c["pid"] == child
        assert c["metrics"]["gpu_memory_bytes"] == GIB and c["metrics"]["gpu_sm_utilization"] == 7
        assert s["aggregated"]["gpu_memory_bytes"] == 768 * MIB + GIB
        assert s["aggregated"]["gpu_sm_utilization"] == 47
        # the rest of the sample is as without a GPU
        assert s["aggregated"]["process_count"] == 2 and s["aggregated"]["mem_rss_kb"] > 0
    # before the config named the tree: devices, no process of it on them
    first = samples[0]
    assert gpu_of(first)["system_metrics"] == SYSTEM_METRICS
    assert gpu_of(first)["process_data"] == [] and gpu_of(first)["has_process_data"] is False
    assert first["parent"]["gpu_memory_bytes"] == 0 and first["parent"]["gpu_sm_utilization"] == 0
    # the foreign processes never show up
    assert not {p["pid"] for s in samples for p in gpu_of(s)["process_data"]} & set(FOREIGN)

    summary = mon.get_summary()
    expected = {"enabled": True, "device_count": 2, "total_memory_gb": 96.0,
                "peak_used_memory_gb": 6.0, "max_system_gpu_utilization": 90,
                "max_process_gpu_utilization": 95, "process_memory_usage_gb": 1.75}
    assert summary["gpu"] == expected
    assert mon.get_gpu_summary() == expected
    assert gpu_summary_of(samples) == expected  # the Python summary agrees with the C one
    assert summary["sample_count"] == len(samples) and summary["total_cpu_time_secs"] > 0
    cost = mon._gpu_read_cost()
    assert cost["reads"] == len(samples) and cost["total_ns"] >= cost["max_ns"] > 0

    # JSONL: the same samples and summary as the dicts
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert lines[0]["kind"] == "metadata" and lines[-1]["kind"] == "summary"
    assert [{k: v for k, v in l.items() if k != "kind"} for l in lines[1:-1]] == samples
    assert lines[-1]["gpu"] == expected
    assert denet.generate_summary_from_file(str(out))["gpu"] == expected
    from_samples = denet.generate_summary_from_metrics_json(samples, 1.0)
    assert from_samples["gpu"] == expected and "gpu" not in from_samples.get("estimated", [])

    # CSV: the per-process fields as schema columns
    path = tmp_path / "run.csv"
    mon.save_samples(str(path), format="csv")
    rows = list(csv.DictReader(path.open()))
    assert len(rows) == len(samples)
    for column in GPU_FIELDS:
        assert f"aggregated.{column}" in rows[0] and f"parent.{column}" in rows[0]
    for row, s in zip(rows, samples):
        for column in GPU_FIELDS:
            assert int(row[f"aggregated.{column}"]) == s["aggregated"][column]
            assert int(row[f"parent.{column}"]) == s["parent"][column]
        children = json.loads(row["children"])
        assert [c["metrics"]["gpu_memory_bytes"] for c in children] == \
            [c["metrics"]["gpu_memory_bytes"] for c in s["children"]]
    back = denet.analysis.load_metrics(str(path))
    assert [b["aggregated"]["gpu_memory_bytes"] for b in back] == \
        [s["aggregated"]["gpu_memory_bytes"] for s in samples]
    # JSON array
    path = tmp_path / "run.json"
    mon.save_samples(str(path), format="json")
    records = json.loads(path.read_text())
    assert records[-1]["gpu"] == expected
    assert [r["aggregated"]["gpu"] for r in records[1:-1]] == [s["aggregated"]["gpu"] for s in samples]
    del mon
    import gc
    gc.collect()
    assert nvml.init_count() == 0  # the monitor shut NVML down


def test_flat_samples_cover_the_process_alone(nvml, tmp_path):
    mon = denet.ProcessMonitor(tree_cmd(tmp_path), base_interval_ms=50, include_children=False)
    root, child = read_pids(tmp_path)
    nvml.write(tree_config(root, child))
    s = mon.sample_once()
    (tmp_path / "done").touch()
    mon.wait(timeout=20)
    mon.stop()
    assert list(s)[-1] == "gpu" and s["gpu"]["system_metrics"] == SYSTEM_METRICS
    assert [p["pid"] for p in s["gpu"]["process_data"]] == [root, root]
    assert s["gpu_memory_bytes"] == 768 * MIB
    assert mon.get_summary()["gpu"]["process_memory_usage_gb"] == 0.75


def test_utilization_keeps_the_samples_nvml_no_longer_returns(nvml, tmp_path):
    """NVML returns each process's newest sample only: the samples read before it, still
    in the window, count in the mean (60 then 20: 40)."""
    mon = denet.ProcessMonitor(tree_cmd(tmp_path), include_children=False)
    root, child = read_pids(tmp_path)
    lines = DEVICES + [f"compute 0 {root} {512 * MIB}"]
    for _ in range(5):  # both reads within 0.8 s of the first sample's stamp
        nvml.write(lines + [f"util 0 {root} 60 30 50"])
        written = os.stat(nvml.config).st_mtime
        first = mon.sample_once()
        time.sleep(0.3)  # NVML's utilization is read at most every 250 ms
        nvml.write(lines + [f"util 0 {root} 20 10 0"])
        second = mon.sample_once()
        if time.time() - written < 0.8:
            break
    else:
        pytest.fail("two sample_once() calls 0.3 s apart took over 0.8 s five times in a row")
    (tmp_path / "done").touch()
    mon.wait(timeout=20)
    mon.stop()
    assert first["gpu_sm_utilization"] == 60
    (entry,) = [p for p in second["gpu"]["process_data"] if p["device_index"] == 0]
    assert (entry["gpu_utilization"], entry["memory_utilization_pct"]) == (40, 20)


def test_utilization_is_not_read_while_the_tree_holds_no_context(nvml, tmp_path):
    """nvmlDeviceGetProcessUtilization is the one slow call of a read (1.6 ms on an H100):
    it is skipped while no process of the tree is in a device's process lists, and read
    at most every 250 ms while one is."""
    call = "nvmlDeviceGetProcessUtilization"
    mon = denet.ProcessMonitor(tree_cmd(tmp_path), include_children=False)
    root, child = read_pids(tmp_path)
    # others use the GPU, the tree does not
    nvml.write(DEVICES + [f"compute 0 {FOREIGN[0]} 4096", f"util 0 {FOREIGN[0]} 99 99"])
    before = nvml.calls(call)
    idle = [mon.sample_once() for _ in range(5)]
    assert nvml.calls(call) == before
    assert all(s["gpu_sm_utilization"] == 0 and s["gpu"]["process_data"] == [] for s in idle)
    # the tree's process takes a context on device 0
    nvml.write(DEVICES + [f"compute 0 {root} {512 * MIB}", f"util 0 {root} 30 10"])
    t0 = time.monotonic()
    busy = [mon.sample_once() for _ in range(5)]
    elapsed = time.monotonic() - t0
    (tmp_path / "done").touch()
    mon.wait(timeout=20)
    mon.stop()
    assert 1 <= nvml.calls(call) - before <= 1 + int(elapsed / 0.25)
    assert all(s["gpu_sm_utilization"] == 30 for s in busy)


@pytest.mark.parametrize("clock_offset", [0, 10 * 86400], ids=["wall-clock", "other-clock"])
def test_utilization_is_the_mean_of_the_last_second(nvml, tmp_path, clock_offset):
    """NVML returns one sample per process, stamped when the driver took it, and a busy
    process's sample does not come at every read: on a real H100 two busy workers read
    every 200 ms showed 44 % and 0 % by turns. Each read reports, per process, the mean
    of its samples of the last second (or since the previous read, if longer): every
    read of a second shows the same figure, an older sample counts for nothing. The
    window is found on the driver's clock whichever clock that is (clock_offset)."""
    mon = denet.ProcessMonitor(tree_cmd(tmp_path), include_children=False)
    root, child = read_pids(tmp_path)
    for _ in range(5):  # the three reads must come within 0.6 s of the samples' stamps
        nvml.write(DEVICES + [f"compute 0 {root} {512 * MIB}", f"clock_offset {clock_offset}",
                              f"util 0 {root} 60 30 300", f"util 0 {root} 20 10 400",
                              f"util 0 {root} 99 99 5000"])
        written = os.stat(nvml.config).st_mtime
        reads = [mon.sample_once() for _ in range(3)]
        if time.time() - written < 0.6:
            break
    else:
        pytest.fail("three sample_once() calls took over 0.6 s five times in a row")
    time.sleep(max(0.0, written + 1.5 - time.time()))
    late = mon.sample_once()
    (tmp_path / "done").touch()
    mon.wait(timeout=20)
    mon.stop()
    for s in reads:  # (60 + 20) / 2 and (30 + 10) / 2; the 5 s old sample is out
        (entry,) = [p for p in s["gpu"]["process_data"] if p["device_index"] == 0]
        assert (entry["gpu_utilization"], entry["memory_utilization_pct"]) == (40, 20)
        assert s["gpu_sm_utilization"] == 40
    # a second and more after the newest sample: no sample in the window, 0 %, and the
    # process is still listed with its memory
    (entry,) = [p for p in late["gpu"]["process_data"] if p["device_index"] == 0]
    assert entry == {"pid": root, "device_index": 0, "gpu_utilization": 0,
                     "memory_usage": 512 * MIB, "memory_utilization_pct": 0}
    assert late["gpu_sm_utilization"] == 0

def test_from_pid_and_execute_with_monitoring_take_the_keyword(nvml, tmp_path):
    mon = denet.ProcessMonitor.from_pid(os.getpid(), include_children=False)
    assert mon.is_gpu_enabled()
    assert "gpu" in mon.sample_once()
    mon.stop()
    mon = denet.ProcessMonitor.from_pid(os.getpid(), include_children=False, gpu=False)
    assert not mon.is_gpu_enabled() and "gpu" not in mon.sample_once()
    mon.stop()

    code, mon = denet.execute_with_monitoring(["sleep", "0.2"], base_interval_ms=50)
    assert code == 0 and mon.is_gpu_enabled()
    assert all(gpu_of(s)["collection_method"] == "nvml" for s in mon.get_samples())
    assert mon.get_summary()["gpu"]["device_count"] == 2
    code, mon = denet.execute_with_monitoring(["sleep", "0.1"], gpu=False)
    assert code == 0 and not mon.is_gpu_enabled() and "gpu" not in mon.get_summary()
    with pytest.raises(TypeError, match="gpu"):
        denet.execute_with_monitoring(["true"], gpu="yes")


def test_gpu_false_leaves_the_gpu_alone(nvml):
    mon = denet.ProcessMonitor(["sleep", "0.3"], base_interval_ms=50, gpu=False)
    assert mon.run() == 0
    assert not mon.is_gpu_enabled() and mon.gpu_device_count() == 0 and mon.gpu_error is None
    for s in mon.get_samples():
        assert "gpu" not in s["aggregated"]
        assert all(s[part][f] is None for part in ("parent", "aggregated") for f in GPU_FIELDS)
    assert "gpu" not in mon.get_summary()
    assert mon.get_gpu_summary() == {
        "enabled": False, "device_count": 0, "total_memory_gb": 0.0, "peak_used_memory_gb": 0.0,
        "max_system_gpu_utilization": 0, "max_process_gpu_utilization": None,
        "process_memory_usage_gb": 0.0}
    assert nvml.init_count() == 0


# --------------------------------------------------------------------------
# without a usable NVML: a clear reason, the rest of monitoring untouched


def assert_monitoring_works(mon):
    samples = mon.get_samples()
    assert len(samples) >= 2
    for s in samples:
        assert s["aggregated"]["mem_rss_kb"] >= 0 and s["parent"]["cpu_usage"] >= 0
        assert all(s[part][f] is None for part in ("parent", "aggregated") for f in GPU_FIELDS)
    summary = mon.get_summary()
    assert summary["sample_count"] == len(samples) and summary["peak_mem_rss_kb"] > 0


def check_unavailable(reason_pattern):
    ok, reason = denet.gpu_available()
    assert not ok and re.search(reason_pattern, reason), reason

    # the default: no warning, no gpu key, null per-process fields, the reason kept
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        mon = denet.ProcessMonitor(["sleep", "0.3"], base_interval_ms=50)
    assert not mon.is_gpu_enabled() and mon.gpu_device_count() == 0
    assert mon.gpu_error == reason
    assert mon.run() == 0
    assert_monitoring_works(mon)
    assert all("gpu" not in s["aggregated"] for s in mon.get_samples())
    assert "gpu" not in mon.get_summary()
    assert mon.get_gpu_summary()["enabled"] is False and mon.get_gpu_summary()["error"] == reason

    # asked for: a warning, and every sample and the summary say why
    with pytest.warns(RuntimeWarning, match="GPU monitoring disabled"):
        mon = denet.ProcessMonitor(["sleep", "0.3"], base_interval_ms=50, gpu=True)
    assert mon.run() == 0
    assert_monitoring_works(mon)
    for s in mon.get_samples():
        assert s["aggregated"]["gpu"] == {"system_metrics": [], "process_data": [],
                                          "has_process_data": False, "collection_method": "none",
                                          "error": reason}
    assert mon.get_summary()["gpu"] == {
        "enabled": False, "device_count": 0, "total_memory_gb": 0.0, "peak_used_memory_gb": 0.0,
        "max_system_gpu_utilization": 0, "max_process_gpu_utilization": None,
        "process_memory_usage_gb": 0.0, "error": reason}
    assert denet.generate_summary_from_metrics_json(mon.get_samples(), 1.0)["gpu"]["error"] == reason
    # quiet: no warning
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        denet.ProcessMonitor(["true"], gpu=True, quiet=True).wait()
    return reason


def test_no_nvml_library(monkeypatch):
    monkeypatch.setenv("DENET_NVML_LIBRARY", "/nonexistent/libnvidia-ml.so.1")
    reason = check_unavailable(r"cannot load the NVIDIA management library /nonexistent/libnvidia-ml\.so\.1")
    assert "install the NVIDIA driver" in reason and "DENET_NVML_LIBRARY" in reason


def test_a_library_that_is_not_nvml(monkeypatch):
    monkeypatch.setenv("DENET_NVML_LIBRARY", "libc.so.6")
    check_unavailable(r"libc\.so\.6 has no nvmlInit_v2")


def test_nvml_fails_to_initialise(nvml):
    nvml.write(["init 9"] + DEVICES)
    reason = check_unavailable(r"nvmlInit failed: Driver Not Loaded \(NVML error 9\)")
    assert "nvidia-smi" in reason
    assert nvml.init_count() == 0


def test_nvml_device_count_fails(nvml):
    nvml.write(["count_fail 999"] + DEVICES)
    check_unavailable(r"nvmlDeviceGetCount failed: Unknown Error \(NVML error 999\)")
    assert nvml.init_count() == 0


def test_no_device(nvml):
    nvml.write([])
    check_unavailable(r"NVML found no NVIDIA GPU")
    assert nvml.init_count() == 0


def test_a_failing_call_is_reported_and_monitoring_goes_on(nvml, tmp_path):
    mon = denet.ProcessMonitor(tree_cmd(tmp_path), base_interval_ms=50)
    mon.start()
    root, child = read_pids(tmp_path)
    good = tree_config(root, child)
    nvml.write(good)
    samples_after_config(mon, 2)
    nvml.write(good + ["fail nvmlDeviceGetMemoryInfo 15"])
    both = ("nvmlDeviceGetMemoryInfo on GPU 0 failed: GPU is lost (NVML error 15); "
            "nvmlDeviceGetMemoryInfo on GPU 1 failed: GPU is lost (NVML error 15)")
    wait_for(lambda: sum(gpu_of(s).get("error") == both for s in mon.get_samples()) >= 2,
             what="samples with the error")
    nvml.write(good)  # the GPU is back
    n = len(mon.get_samples())
    wait_for(lambda: len(mon.get_samples()) >= n + 3, what="samples after the error")
    (tmp_path / "done").touch()
    assert mon.wait(timeout=20) == 0
    mon.stop()
    samples = mon.get_samples()
    failed = [s for s in samples if "error" in gpu_of(s)]
    # the sample read while the file was replaced may have only one device's error
    assert all(gpu_of(s)["error"] in (both, both.split("; ")[0], both.split("; ")[1]) for s in failed)
    for s in [s for s in failed if gpu_of(s)["error"] == both]:
        gpu = gpu_of(s)
        for d in gpu["system_metrics"]:
            assert d["memory_total"] is None and d["memory_used"] is None and d["memory_free"] is None
            assert d["system_utilization_gpu"] is not None and d["temperature"] is not None
        assert gpu["process_data"] == expected_process_data(root, child)  # per-process reads fine
        assert s["aggregated"]["gpu_memory_bytes"] == 768 * MIB + GIB
        assert s["aggregated"]["mem_rss_kb"] > 0
    recovered = [s for s in samples[samples.index(failed[-1]) + 1:] if len(s["children"]) == 1]
    assert recovered and all("error" not in gpu_of(s) for s in recovered)
    assert gpu_of(recovered[-1])["system_metrics"] == SYSTEM_METRICS
    assert mon.get_summary()["gpu"]["total_memory_gb"] == 96.0


@pytest.mark.parametrize("fn", ["nvmlDeviceGetComputeRunningProcesses_v2",
                                "nvmlDeviceGetGraphicsRunningProcesses_v2"])
def test_a_failing_process_list_makes_process_memory_unknown(nvml, tmp_path, fn):
    mon = denet.ProcessMonitor(tree_cmd(tmp_path), include_children=True)
    root, child = read_pids(tmp_path)
    nvml.write(tree_config(root, child) + [f"fail {fn} 999"])
    mon.sample_once()
    s = mon.sample_once()
    (tmp_path / "done").touch()
    mon.wait(timeout=20)
    mon.stop()
    gpu = s["aggregated"]["gpu"]
    assert gpu["error"].startswith(f"{fn} on GPU 0 failed: Unknown Error (NVML error 999)")
    assert s["parent"]["gpu_memory_bytes"] is None and s["aggregated"]["gpu_memory_bytes"] is None
    assert s["parent"]["gpu_sm_utilization"] == 40  # utilization was read
    assert s["aggregated"]["mem_rss_kb"] > 0


def test_no_per_process_utilization(nvml, tmp_path):
    """Some GPUs do not support nvmlDeviceGetProcessUtilization: utilization is unknown
    (null, no error), memory still known."""
    mon = denet.ProcessMonitor(tree_cmd(tmp_path))
    root, child = read_pids(tmp_path)
    nvml.write(tree_config(root, child) + ["no_process_util"])
    s = mon.sample_once()
    (tmp_path / "done").touch()
    mon.wait(timeout=20)
    mon.stop()
    gpu = s["aggregated"]["gpu"]
    assert "error" not in gpu
    assert all(p["gpu_utilization"] is None and p["memory_utilization_pct"] is None
               for p in gpu["process_data"])
    assert s["parent"]["gpu_sm_utilization"] is None and s["parent"]["gpu_memory_bytes"] == 768 * MIB
    assert mon.get_summary()["gpu"]["max_process_gpu_utilization"] is None


def test_memory_not_available_is_null(nvml, tmp_path):
    mon = denet.ProcessMonitor(tree_cmd(tmp_path))
    root, child = read_pids(tmp_path)
    nvml.write(DEVICES + [f"compute 1 {child} na"])
    s = mon.sample_once()
    (tmp_path / "done").touch()
    mon.wait(timeout=20)
    mon.stop()
    assert s["aggregated"]["gpu"]["process_data"] == [
        {"pid": child, "device_index": 1, "gpu_utilization": 0, "memory_usage": None,
         "memory_utilization_pct": 0}]
    assert s["children"][0]["metrics"]["gpu_memory_bytes"] is None
    assert s["parent"]["gpu_memory_bytes"] == 0
    assert s["aggregated"]["gpu_memory_bytes"] is None  # a sum with an unknown part


# --------------------------------------------------------------------------
# the command line


def cli_env(extra):
    env = dict(os.environ)
    env.update(extra)
    env["PYTHONPATH"] = str(REPO) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def test_cli_gpu_rows_file_and_stats(nvml, tmp_path):
    out = tmp_path / "cli.jsonl"
    p = subprocess.Popen([sys.executable, "-m", "denet", "--gpu", "--interval", "50", "--out", str(out),
                          "run", "--", *tree_cmd(tmp_path)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=cli_env(nvml.env()))
    try:
        root, child = read_pids(tmp_path)
        nvml.write(tree_config(root, child))
        wait_for(lambda: out.exists() and '"has_process_data":true' in out.read_text(), what="GPU data in --out")
    finally:
        (tmp_path / "done").touch()
        stdout, stderr = p.communicate(timeout=60)
    assert p.returncode == 0, stderr
    assert "GPU monitoring unavailable" not in stderr
    assert re.search(r"GPU devices\s+2 \(96\.0 GiB in all\)", stderr), stderr
    assert re.search(r"GPU peak memory of the tree\s+1\.8 GiB", stderr), stderr
    # one process: the mean of its samples since the last read (40), or the newest (50)
    # had no read of the device come before the config named the tree
    assert re.search(r"GPU max utilization, device / one process\s+40 % / (40|50) %", stderr), stderr
    summary = json.loads(out.read_text().splitlines()[-1])
    assert summary["gpu"]["process_memory_usage_gb"] == 1.75

    r = subprocess.run([sys.executable, "-m", "denet", "stats", str(out)], capture_output=True, text=True,
                       env=cli_env({}))
    assert r.returncode == 0 and re.search(r"GPU devices\s+2 \(96\.0 GiB in all\)", r.stdout), r.stdout
    r = subprocess.run([sys.executable, "-m", "denet", "--json", "stats", str(out)], capture_output=True,
                       text=True, env=cli_env({}))
    assert json.loads(r.stdout)["gpu"] == summary["gpu"]

    # --json: the summary line carries gpu; --no-gpu: none anywhere
    r = subprocess.run([sys.executable, "-m", "denet", "--json", "run", "--", "sleep", "0.2"],
                       capture_output=True, text=True, env=cli_env(nvml.env()), timeout=60)
    lines = [json.loads(line) for line in r.stdout.splitlines()]
    assert lines[-1]["gpu"]["device_count"] == 2 and "gpu" in lines[1]["aggregated"]
    r = subprocess.run([sys.executable, "-m", "denet", "--json", "--no-gpu", "run", "--", "sleep", "0.2"],
                       capture_output=True, text=True, env=cli_env(nvml.env()), timeout=60)
    lines = [json.loads(line) for line in r.stdout.splitlines()]
    assert "gpu" not in lines[-1] and "gpu" not in lines[1]["aggregated"]
    assert lines[1]["aggregated"]["gpu_memory_bytes"] is None


def test_cli_says_why_there_is_no_gpu(tmp_path):
    env = cli_env({"DENET_NVML_LIBRARY": "/nonexistent/libnvidia-ml.so.1"})
    r = subprocess.run([sys.executable, "-m", "denet", "--gpu", "run", "--", "sleep", "0.1"],
                       capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 0
    assert "denet: GPU monitoring unavailable: cannot load the NVIDIA management library" in r.stderr
    assert re.search(r"GPU\s+off: cannot load", r.stderr), r.stderr
    # without --gpu nothing is said: most machines have no GPU
    r = subprocess.run([sys.executable, "-m", "denet", "run", "--", "sleep", "0.1"],
                       capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 0 and "GPU" not in r.stderr
    r = subprocess.run([sys.executable, "-m", "denet", "stats", "x.jsonl", "--no-gpu"],
                       capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 2 and "--no-gpu applies to run and attach" in r.stderr


def test_status_line_shows_the_tree_on_the_gpu():
    sample = {"ts_ms": 1, "parent": {}, "children": [],
              "aggregated": {"process_count": 2, "cpu_usage": 50.0, "mem_rss_kb": 1024, "thread_count": 3,
                             "gpu_memory_bytes": 3 * MIB, "gpu_sm_utilization": 47,
                             "gpu": {"system_metrics": [], "process_data": [{"pid": 1}],
                                     "has_process_data": True, "collection_method": "nvml"}}}
    line = _cli_format.status_line(sample, 1.0)
    assert "GPU 47% 3.0 MiB" in line
    sample["aggregated"]["gpu"]["has_process_data"] = False  # a GPU, but the tree is not on it
    assert "GPU" not in _cli_format.status_line(sample, 1.0)
    del sample["aggregated"]["gpu"]
    assert "GPU" not in _cli_format.status_line(sample, 1.0)


# --------------------------------------------------------------------------
# the rules of the implementation


def test_nvml_is_loaded_at_run_time_never_run_as_a_program():
    src = (REPO / "csrc" / "core" / "gpu.c").read_text()
    assert 'dlopen(path, RTLD_NOW | RTLD_LOCAL)' in src and '"libnvidia-ml.so.1"' in src
    code = re.sub(r"/\*.*?\*/", "", src, flags=re.S)
    for call in ("fork(", "exec", "popen(", "system(", "posix_spawn"):
        assert call not in code, call
    assert "#include <nvml.h>" not in src and "#include \"nvml.h\"" not in src
    setup = (REPO / "setup.py").read_text()
    assert "nvidia-ml" not in setup  # no build-time dependency
    # the sampler side stays free of Python
    for name in ("gpu.c", "gpu.h", "gpu_sample.c", "gpu_sample.h"):
        assert "Python.h" not in (REPO / "csrc" / "core" / name).read_text()


def test_schema_has_the_gpu_fields():
    by_name = {f["name"]: f for f in denet.SCHEMA}
    assert by_name["gpu_memory_bytes"]["type"] == "int|None" and by_name["gpu_memory_bytes"]["unit"] == "bytes"
    assert by_name["gpu_sm_utilization"]["type"] == "int|None" and by_name["gpu_sm_utilization"]["unit"] == "%"


# --------------------------------------------------------------------------
# bench/gpu_check.py, the check for a real GPU, kept working here


def test_gpu_check_says_there_is_no_gpu():
    env = cli_env({"DENET_NVML_LIBRARY": "/nonexistent/libnvidia-ml.so.1"})
    r = subprocess.run([sys.executable, str(REPO / "bench" / "gpu_check.py")], capture_output=True,
                       text=True, env=env, timeout=60)
    assert r.returncode == 2, r.stdout + r.stderr
    assert "no NVIDIA GPU to check: cannot load the NVIDIA management library" in r.stdout
    assert "Nothing was measured" in r.stdout


def test_gpu_check_runs_against_the_fake(nvml):
    """With the fake NVML, a fake nvidia-smi and a worker that only pretends: every table
    of the check is printed and the figures agree."""
    env = cli_env(nvml.env())
    env["PATH"] = str(REPO / "tests" / "gpu" / "bin") + os.pathsep + env["PATH"]
    worker = f"{sys.executable} {REPO / 'tests' / 'gpu' / 'fake_worker.py'}"
    r = subprocess.run([sys.executable, str(REPO / "bench" / "gpu_check.py"), "--seconds", "10",
                        "--interval", "100", "--worker", worker],
                       capture_output=True, text=True, env=env, timeout=150)
    assert r.returncode == 0, r.stdout + r.stderr
    out = r.stdout
    assert "driver 999.99, 2 device(s): NVIDIA Fake A100-SXM4-80GB; NVIDIA Fake T4" in out
    rows = re.findall(r"^\s+[\d.]+\s+(\d+)\s+([\d.]+)\s+(\d+)\s+([+-][\d.]+)\s+33$", out, re.M)
    assert {float(d) for _, d, _, _ in rows} <= {556.0, 812.0} and len(rows) >= 2, out
    assert all(float(d) == float(s) for _, d, s, _ in rows), out
    assert "SM utilization: denet's latest sample next to one `nvidia-smi pmon -c 1 -s u`" in out
    assert re.search(r"^\s+0\s+NVIDIA Fake A100-SXM4-80GB\s+81920\s+81920\s+2048\s+2048\s+40\s+40", out, re.M), out
    assert "Summary gpu: enabled=True, device_count=2" in out
    assert re.search(r"sampler's NVML reads .*\s\d+\s+\d+\s+\d+$", out, re.M), out
    assert "difference: the GPU part of one sample" in out
    assert re.search(r"start-up: gpu_available\(\) .*\s1\s+\d+", out), out
    assert "RESULT: denet saw every worker nvidia-smi saw" in out
    # NVML's own calls, timed through ctypes, and the driver's utilization samples
    for call in ("nvmlDeviceGetMemoryInfo", "nvmlDeviceGetComputeRunningProcesses_v2",
                 "nvmlDeviceGetProcessUtilization (last 1 s)"):
        assert re.search(rf"^{re.escape(call)}\s+\d+\s+\d+\s+rc 0", out, re.M), out
    assert re.search(r"^\s*0\s+\d+\s+\d+\s+33\s+\d+$", out, re.M), out  # the worker's 33 %
