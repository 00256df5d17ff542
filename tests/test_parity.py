"""Summary and CLI parity with denet HEAD: peak_page_faults_*, the summary's syscalls
rates and fractions, memory_characterization; -j, -m, -n, --no-polling, --debug,
"Unknown format: NAME"."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import denet
from denet import cli

REPO = Path(__file__).resolve().parent.parent

FAULTS = ("import os\nb = bytearray(8 << 20)\nfor i in range(0, len(b), 4096):\n    b[i] = 1\n"
          "c = os.fork()\nif c == 0:\n    os.read(os.open('/proc/self/stat', 0), 100)\n    os._exit(0)\n"
          "os.waitpid(c, 0)\n")


def run_cli(*args, timeout=60):
    e = dict(os.environ)
    e["PYTHONPATH"] = str(REPO) + (os.pathsep + e["PYTHONPATH"] if e.get("PYTHONPATH") else "")
    return subprocess.run([sys.executable, "-m", "denet", *args], capture_output=True, text=True,
                          timeout=timeout, env=e)


def test_peak_page_faults_are_the_largest_tree_totals():
    mon = denet.ProcessMonitor([sys.executable, "-S", "-c", FAULTS], base_interval_ms=20, quiet=True)
    mon.run()
    samples, summary = mon.get_samples(), mon.get_summary()
    for key in ("page_faults_cached", "page_faults_disk"):
        assert summary["peak_" + key] == max(s["aggregated"][key] for s in samples)
    assert summary["peak_page_faults_cached"] >= 2048  # the 8 MiB touched


def test_syscalls_summary_with_ebpf(require_ebpf):
    mon = denet.ProcessMonitor([sys.executable, "-S", "-c", FAULTS], enable_ebpf=True, quiet=True)
    mon.run()
    summary = mon.get_summary()
    sc, total, cats = summary["syscalls"], summary["total_syscalls"], summary["syscalls_by_category"]
    assert set(sc) == {"avg_syscall_rate_per_sec", "avg_io_syscall_fraction",
                       "avg_memory_syscall_fraction", "avg_cpu_syscall_fraction",
                       "avg_network_syscall_fraction"}
    assert sc["avg_syscall_rate_per_sec"] == pytest.approx(total / summary["total_time_secs"])
    assert sc["avg_io_syscall_fraction"] == pytest.approx(cats["file_io"] / total)
    assert sc["avg_memory_syscall_fraction"] == pytest.approx(cats["memory"] / total)
    assert sc["avg_cpu_syscall_fraction"] == pytest.approx(cats["process"] / total)
    assert sc["avg_network_syscall_fraction"] == pytest.approx(cats["network"] / total)


def test_no_syscalls_summary_without_ebpf():
    mon = denet.ProcessMonitor(["true"], quiet=True)
    mon.run()
    summary = mon.get_summary()
    assert "syscalls" not in summary and "total_syscalls" not in summary
    assert summary["memory_characterization"]["verdict"] in (
        "insufficient-data", "memory-bound", "cpu-bound", "mixed")


def test_file_summary_has_the_same_keys(tmp_path):
    path = tmp_path / "run.jsonl"
    mon = denet.ProcessMonitor([sys.executable, "-S", "-c", FAULTS], output_file=str(path),
                               quiet=True, base_interval_ms=20)
    mon.run()
    exact, from_file = mon.get_summary(), denet.generate_summary_from_file(path)
    for key in ("peak_page_faults_cached", "peak_page_faults_disk", "total_sock_rx_bytes",
                "total_sock_tx_bytes", "memory_characterization"):
        assert from_file[key] == exact[key], key


def test_short_options_are_the_long_ones():
    short = cli.parse_args(["-j", "-m", "500", "-n", "run", "--", "true"])
    long = cli.parse_args(["--json", "--max-interval", "500", "--exclude-children", "run", "--", "true"])
    for dest in ("json", "max_interval", "exclude_children"):
        assert getattr(short, dest) == getattr(long, dest)
    assert (short.json, short.max_interval, short.exclude_children) == (True, 500, True)


def test_unknown_format_wording():
    r = run_cli("--format", "xml", "--out", "x.xml", "run", "--", "true")
    assert r.returncode == 2
    assert "Unknown format: xml" in r.stderr
    with pytest.raises(ValueError, match="^Unknown format: xml; "):
        denet.ProcessMonitor(["true"], output_format="xml")
    with pytest.raises(ValueError, match="^Unknown format: xml; "):
        denet.execute_with_monitoring(["true"], output_format="xml")


def test_no_polling_takes_one_final_sample(tmp_path):
    path = tmp_path / "run.jsonl"
    code = "x = 0\nfor i in range(3_000_000):\n    x += i\n"
    r = run_cli("--quiet", "--no-polling", "--out", str(path), "run", "--", sys.executable, "-S", "-c", code)
    assert r.returncode == 0, r.stderr
    kinds = [json.loads(l)["kind"] for l in path.read_text().splitlines()]
    assert kinds == ["metadata", "tree", "summary"]  # no periodic samples: the final one only
    lines = [json.loads(l) for l in path.read_text().splitlines()]
    final, summary = lines[1], lines[2]
    # read from the exited command (its final counters), then reaped: exact CPU time
    assert final["parent"]["cpu_user_secs"] > 0.05
    assert summary["sample_count"] == 1
    assert summary["total_cpu_time_secs"] >= final["parent"]["cpu_user_secs"]


def test_no_polling_passes_the_exit_code():
    r = run_cli("--quiet", "--no-polling", "run", "--", "sh", "-c", "exit 7")
    assert r.returncode == 7, r.stderr


def test_debug_says_what_each_source_can_do():
    r = run_cli("--debug", "--quiet", "run", "--", "true")
    assert r.returncode == 0
    for name in ("ebpf", "sock", "psi", "perf_hw", "gpu", "delayacct"):
        assert f"denet: debug: {name}: " in r.stderr, r.stderr


def test_summary_table_rows():
    from denet import _cli_format
    base = {"total_time_secs": 1.0, "sample_count": 2}
    table = _cli_format.summary_table({**base, "total_sock_rx_bytes": 2048, "total_sock_tx_bytes": 1024,
                                       "total_sock_rx_bytes_remote": None, "total_sock_tx_bytes_remote": 0,
                                       "memory_characterization": {"verdict": "cpu-bound", "mean_ipc": 2.0}})
    assert "Sockets rx / tx (own, eBPF)" in table and "2.0 KiB / 1.0 KiB" in table
    assert "- / 0 B" in table  # the unknown remote part is shown as unknown
    assert "cpu-bound (IPC 2.00)" in table
    plain = _cli_format.summary_table({**base, "total_sock_rx_bytes": None, "total_sock_tx_bytes": None,
                                       "memory_characterization": {"verdict": "insufficient-data"}})
    assert "Sockets" not in plain and "Memory characterization" not in plain
