"""The env record (write_env=True, --write-env, get_env()): denet's field names, each
value checked against what the system itself says."""
import glob
import json
import os
import subprocess
import sys
import time

import pytest

import denet
from denet import _formats
from denet.analysis import load_metrics

ENV_KEYS = ["ts_ms", "host", "kernel", "lscpu", "numa", "affinity_inherited", "cpu_governor",
            "cpu_freq_khz", "thp_enabled", "smt_active", "cgroup", "cgroup_limits"]


def range_list(cpus):
    out, cpus = [], sorted(cpus)
    i = 0
    while i < len(cpus):
        j = i
        while j + 1 < len(cpus) and cpus[j + 1] == cpus[j] + 1:
            j += 1
        out.append(str(cpus[i]) if i == j else f"{cpus[i]}-{cpus[j]}")
        i = j + 1
    return ",".join(out)


def read(path):
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return None


def test_env_record_against_the_system(tmp_path):
    path = tmp_path / "run.jsonl"
    mon = denet.ProcessMonitor(["sleep", "0.2"], output_file=str(path), write_env=True,
                               write_metadata=True, quiet=True)
    pid = mon.get_pid()
    cgroup_text = read(f"/proc/{pid}/cgroup")
    affinity = os.sched_getaffinity(pid)
    mon.run()
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [line["kind"] for line in lines[:2]] == ["env", "metadata"]
    env = lines[0]
    assert list(env)[1:] == ENV_KEYS
    assert {"kind": "env", **mon.get_env()} == env  # the same record both ways
    assert env["host"] == os.uname().nodename and env["kernel"] == os.uname().release
    assert abs(env["ts_ms"] - lines[1]["t0_ms"]) < 5000
    assert env["affinity_inherited"] == range_list(affinity)
    assert env["cgroup"] == cgroup_text
    lscpu = env["lscpu"]
    online = os.sysconf("SC_NPROCESSORS_ONLN")
    assert lscpu["sockets"] * lscpu["cores_per_socket"] * lscpu["threads_per_core"] == online
    packages = {read(p) for p in glob.glob("/sys/devices/system/cpu/cpu[0-9]*/topology/physical_package_id")}
    assert lscpu["sockets"] == len(packages)
    model = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo")
                  if line.startswith("model name")), None)
    if model:
        assert lscpu["model"] == model
    nodes = sorted(glob.glob("/sys/devices/system/node/node[0-9]*"), key=lambda p: int(p.rsplit("node", 1)[1]))
    numa = env["numa"]
    assert numa["nodes"] == len(nodes)
    assert numa["distances"] == [[int(x) for x in read(n + "/distance").split()] for n in nodes]
    assert numa["node_sizes_mb"] == [int(read(n + "/meminfo").split("MemTotal:")[1].split()[0]) // 1024
                                     for n in nodes]
    thp = read("/sys/kernel/mm/transparent_hugepage/enabled")
    assert env["thp_enabled"] == (thp.split("[")[1].split("]")[0] if thp else None)
    smt = read("/sys/devices/system/cpu/smt/active")
    assert env["smt_active"] == (None if smt is None else smt == "1")
    gov = read("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor")
    assert env["cpu_governor"] == gov
    assert (env["cpu_freq_khz"] is None) == (read("/sys/devices/system/cpu/cpu0/cpufreq/scaling_cur_freq") is None)
    assert set(env["cgroup_limits"]) == {"source", "memory_max_bytes", "cpu_quota_us", "cpu_period_us"}
    # readers take the env record for what it is: not a sample
    assert all(s.get("kind") != "env" for s in load_metrics(path))
    assert load_metrics(path, include_metadata=True)[0]["kind"] == "env"
    assert denet.generate_summary_from_file(path)["sample_count"] == len(mon.get_samples())


def test_affinity_is_the_one_the_command_inherited(tmp_path):
    code = ("import os, denet\n"
            "os.sched_setaffinity(0, {0})\n"
            "mon = denet.ProcessMonitor(['sleep', '0.1'], quiet=True)\n"
            "print(mon.get_env()['affinity_inherited'])\n"
            "mon.run()\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "0"


@pytest.mark.parametrize("fmt", ["json", "csv"])
def test_env_in_every_format_with_records(tmp_path, fmt):
    path = tmp_path / f"run.{fmt}"
    mon = denet.ProcessMonitor(["sleep", "0.1"], output_file=str(path), output_format=fmt,
                               write_env=True, write_metadata=True, quiet=True)
    mon.run()
    if fmt == "json":
        records = json.loads(path.read_text())
        assert [r["kind"] for r in records[:2]] == ["env", "metadata"]
    else:  # CSV rows are samples only, like the metadata
        assert "env" not in path.read_text().splitlines()[0]
    saved = tmp_path / "saved.jsonl"
    mon.save_samples(str(saved))
    assert [json.loads(l)["kind"] for l in saved.read_text().splitlines()[:2]] == ["env", "metadata"]


def test_without_write_env_no_record_is_written_but_get_env_works(tmp_path):
    path = tmp_path / "run.jsonl"
    mon = denet.ProcessMonitor(["sleep", "0.1"], output_file=str(path), write_metadata=True, quiet=True)
    mon.run()
    assert json.loads(path.read_text().splitlines()[0])["kind"] == "metadata"
    assert mon.get_env()["kernel"] == os.uname().release


def test_from_pid_and_execute_with_monitoring(tmp_path):
    p = subprocess.Popen(["sleep", "1"])
    try:
        path = tmp_path / "a.jsonl"
        mon = denet.ProcessMonitor.from_pid(p.pid, output_file=str(path), write_env=True, quiet=True)
        mon.stop()
        assert json.loads(path.read_text().splitlines()[0])["kind"] == "env"
    finally:
        p.kill()
        p.wait()
    path = tmp_path / "e.jsonl"
    code, mon = denet.execute_with_monitoring(["true"], output_file=str(path), write_env=True,
                                              write_metadata=True, quiet=True)
    assert code == 0
    kinds = [json.loads(l)["kind"] for l in path.read_text().splitlines()]
    assert kinds[:2] == ["env", "metadata"]
    assert mon.get_env()["host"] == os.uname().nodename


def test_cli_write_env(tmp_path):
    path = tmp_path / "cli.jsonl"
    r = subprocess.run([sys.executable, "-m", "denet", "--quiet", "--out", str(path), "--write-env",
                        "run", "--", "true"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    first = json.loads(path.read_text().splitlines()[0])
    assert first["kind"] == "env" and first["kernel"] == os.uname().release


def v1_controller(name):
    for line in open("/proc/self/mountinfo"):
        fields = line.split(" - ")
        if len(fields) == 2 and fields[1].split()[0] == "cgroup" and name in fields[1].split()[2].split(","):
            return line.split()[4]
    return None


def test_cgroup_limits_v1(tmp_path):
    """A process in v1 memory and cpu groups with a 256 MiB limit and half a CPU."""
    mem, cpu = v1_controller("memory"), v1_controller("cpu")
    if os.geteuid() != 0 or not mem or not cpu:
        pytest.skip("needs root and the v1 memory and cpu controllers (a cgroup v2-only host has "
                    "memory.max/cpu.max instead)")
    name = f"denet-test-{os.getpid()}"
    groups = [os.path.join(mem, name), os.path.join(cpu, name)]
    for g in groups:
        os.mkdir(g)
    p = subprocess.Popen(["sleep", "5"])
    try:
        with open(os.path.join(groups[0], "memory.limit_in_bytes"), "w") as f:
            f.write(str(256 << 20))
        with open(os.path.join(groups[1], "cpu.cfs_period_us"), "w") as f:
            f.write("100000")
        with open(os.path.join(groups[1], "cpu.cfs_quota_us"), "w") as f:
            f.write("50000")
        for g in groups:
            with open(os.path.join(g, "cgroup.procs"), "w") as f:
                f.write(str(p.pid))
        mon = denet.ProcessMonitor.from_pid(p.pid, quiet=True)
        limits = mon.get_env()["cgroup_limits"]
        mon.stop()
        assert limits == {"source": "v1", "memory_max_bytes": 256 << 20, "cpu_quota_us": 50000,
                          "cpu_period_us": 100000}
    finally:
        p.kill()
        p.wait()
        for g in groups:
            for _ in range(100):
                try:
                    os.rmdir(g)
                    break
                except OSError:
                    time.sleep(0.05)
