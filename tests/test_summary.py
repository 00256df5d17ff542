"""Summaries computed from recorded samples (denet._summary), pure Python.

Every expected number below was worked out by hand from the synthetic samples.
"""

import json

import pytest

from denet._summary import (
    SUMMARY_KEYS,
    generate_summary_from_file,
    generate_summary_from_metrics_json,
)


def metrics(ts, cpu, rss, dr, dw, sr, sw, rx, tx, threads):
    return {
        "ts_ms": ts,
        "cpu_usage": cpu,
        "mem_rss_kb": rss,
        "mem_vms_kb": rss * 4,
        "disk_read_bytes": dr,
        "disk_write_bytes": dw,
        "syscall_read_bytes": sr,
        "syscall_write_bytes": sw,
        "page_faults_cached": 0,
        "page_faults_disk": 0,
        "sys_net_rx_bytes": rx,
        "sys_net_tx_bytes": tx,
        "thread_count": threads,
        "uptime_secs": 1,
        "cpu_core": 0,
    }


def tree(ts, parent, children, aggregated):
    return {
        "ts_ms": ts,
        "parent": parent,
        "children": [{"pid": pid, "command": f"child{pid}", "metrics": m} for pid, m in children],
        "aggregated": aggregated,
    }


def agg(ts, cpu, rss, dr, dw, sr, sw, rx, tx, threads, procs, ebpf=None):
    a = metrics(ts, cpu, rss, dr, dw, sr, sw, rx, tx, threads)
    a["process_count"] = procs
    if ebpf is not None:
        a["ebpf"] = ebpf
    return a


@pytest.fixture
def tree_samples():
    """Parent + child 11 (exits after the 2nd sample) + child 12 (appears at the 2nd)."""
    s1 = tree(
        1000,
        metrics(1000, 50.0, 1000, 100, 10, 1000, 100, 500, 50, 2),
        [(11, metrics(1000, 100.0, 2000, 200, 20, 2000, 200, 500, 50, 1))],
        agg(1000, 150.0, 3000, 300, 30, 3000, 300, 500, 50, 3, 2),
    )
    s2 = tree(
        2000,
        metrics(2000, 100.0, 1500, 400, 40, 4000, 400, 800, 80, 2),
        [
            (11, metrics(2000, 50.0, 2500, 500, 50, 5000, 500, 800, 80, 1)),
            (12, metrics(2000, 100.0, 1000, 1000, 100, 10000, 1000, 800, 80, 4)),
        ],
        agg(2000, 250.0, 5000, 1900, 190, 19000, 1900, 800, 80, 7, 3),
    )
    s3 = tree(
        3500,
        metrics(3500, 20.0, 1200, 450, 45, 4500, 450, 900, 90, 1),
        [(12, metrics(3500, 0.0, 900, 1000, 100, 10000, 1000, 900, 90, 4))],
        agg(3500, 20.0, 2100, 1450, 145, 14500, 1450, 900, 90, 5, 2),
    )
    return [s1, s2, s3]


EXPECTED_TREE = {
    "total_time_secs": 2.5,
    "sample_count": 3,
    "max_processes": 3,
    "max_threads": 7,
    # last value of each pid: parent 450 + child11 500 + child12 1000
    "total_disk_read_bytes": 1950,
    "total_disk_write_bytes": 195,
    "total_syscall_read_bytes": 19500,
    "total_syscall_write_bytes": 1950,
    "total_sys_net_rx_bytes": 900,
    "total_sys_net_tx_bytes": 90,
    "peak_mem_rss_kb": 5000,
    "avg_cpu_usage": 140.0,  # (150 + 250 + 20) / 3
}


def write_jsonl(path, records):
    with open(path, "w") as f:
        for r in records:
            f.write(json.dumps(r) + "\n")


class TestTreeSamples:
    def test_exact_values(self, tree_samples):
        s = generate_summary_from_metrics_json(tree_samples, 2.5)
        for key, value in EXPECTED_TREE.items():
            assert s[key] == value, key
        # 250 % over 1.0 s + 20 % over 1.5 s = 2.5 + 0.3 CPU seconds
        assert s["total_cpu_time_secs"] == pytest.approx(2.8, rel=1e-12)
        assert s["peak_process_rss_kb"] == 2500  # child 11 at the 2nd sample
        assert s["estimated"] == ["total_cpu_time_secs", "peak_process_rss_kb", "processes_seen"]
        assert s["processes_seen"] == 3  # parent, 11, 12
        assert "total_syscalls" not in s

    def test_key_order_and_types(self, tree_samples):
        s = generate_summary_from_metrics_json(tree_samples, 2.5)
        assert list(s)[: len(SUMMARY_KEYS)] == list(SUMMARY_KEYS)
        assert isinstance(s["total_disk_read_bytes"], int)
        assert isinstance(s["total_time_secs"], float)

    def test_json_strings_same_as_dicts(self, tree_samples):
        from_dicts = generate_summary_from_metrics_json(tree_samples, 2.5)
        from_strings = generate_summary_from_metrics_json([json.dumps(x) for x in tree_samples], 2.5)
        assert from_dicts == from_strings

    def test_elapsed_time_argument_wins(self, tree_samples):
        s = generate_summary_from_metrics_json(tree_samples, 7.25)
        assert s["total_time_secs"] == 7.25

    def test_exited_child_work_kept(self, tree_samples):
        # the last sample's aggregated disk read is 1450, the tree did 1950
        s = generate_summary_from_metrics_json(tree_samples, 2.5)
        assert s["total_disk_read_bytes"] == 1950 > tree_samples[-1]["aggregated"]["disk_read_bytes"]

    def test_summary_record_gives_exact_values(self, tree_samples):
        summary_line = {
            "kind": "summary",
            "total_time_secs": 2.6,
            "sample_count": 3,
            "total_cpu_time_secs": 3.25,
            "peak_process_rss_kb": 4096,
            "total_syscalls": 999,
            "syscalls_by_category": {"file_io": 900, "ipc": 99},
        }
        s = generate_summary_from_metrics_json(tree_samples + [summary_line], 2.5)
        assert s["total_cpu_time_secs"] == 3.25
        assert s["peak_process_rss_kb"] == 4096
        assert s["total_syscalls"] == 999
        assert s["syscalls_by_category"] == {"file_io": 900, "ipc": 99}
        assert "estimated" not in s
        assert s["sample_count"] == 3  # summary lines are not samples
        assert s["total_disk_read_bytes"] == 1950

    def test_ebpf_syscalls_from_last_sample(self, tree_samples):
        cats = {"file_io": 10, "network": 0, "memory": 5, "process": 1, "time": 0,
                "ipc": 3, "security": 0, "signal": 0, "system": 1, "other": 0}
        tree_samples[1]["aggregated"]["ebpf"] = {"syscalls": {"total": 7, "by_category": {"file_io": 7}}}
        tree_samples[2]["aggregated"]["ebpf"] = {"syscalls": {"total": 20, "by_category": cats}}
        s = generate_summary_from_metrics_json(tree_samples, 2.5)
        assert s["total_syscalls"] == 20
        assert s["syscalls_by_category"] == cats
        assert list(s).index("total_syscalls") == len(SUMMARY_KEYS)

    def test_process_count_without_field(self, tree_samples):
        for t in tree_samples:
            del t["aggregated"]["process_count"]
        s = generate_summary_from_metrics_json(tree_samples, 2.5)
        assert s["max_processes"] == 3  # parent + two children at the 2nd sample

    def test_tree_without_parent_or_children(self):
        # upstream-style tree sample with only `aggregated`, legacy net keys
        a = {"ts_ms": 2000, "cpu_usage": 25.0, "mem_rss_kb": 10000, "disk_read_bytes": 4096,
             "disk_write_bytes": 8192, "net_rx_bytes": 2048, "net_tx_bytes": 1024,
             "thread_count": 4, "process_count": 3}
        s = generate_summary_from_metrics_json([{"ts_ms": 2000, "aggregated": a}], 1.0)
        assert s["sample_count"] == 1
        assert s["max_processes"] == 3
        assert s["peak_mem_rss_kb"] == 10000
        assert s["total_disk_read_bytes"] == 4096
        assert s["total_disk_write_bytes"] == 8192
        assert s["total_sys_net_rx_bytes"] == 2048
        assert s["total_sys_net_tx_bytes"] == 1024


class TestFlatSamples:
    @pytest.fixture
    def flat(self):
        return [
            metrics(1000, 10.0, 5000, 1024, 2048, 100, 200, 512, 256, 2),
            metrics(2000, 20.0, 8000, 2048, 4096, 300, 400, 1024, 512, 3),
            metrics(3000, 15.0, 6000, 3072, 6144, 500, 600, 1536, 768, 2),
        ]

    def test_exact_values(self, flat):
        s = generate_summary_from_metrics_json(flat, 2.0)
        assert s["total_time_secs"] == 2.0
        assert s["sample_count"] == 3
        assert s["max_processes"] == 1
        assert s["max_threads"] == 3
        assert s["total_disk_read_bytes"] == 3072  # last cumulative value
        assert s["total_disk_write_bytes"] == 6144
        assert s["total_syscall_read_bytes"] == 500
        assert s["total_syscall_write_bytes"] == 600
        assert s["total_sys_net_rx_bytes"] == 1536
        assert s["total_sys_net_tx_bytes"] == 768
        assert s["peak_mem_rss_kb"] == 8000
        assert s["avg_cpu_usage"] == 15.0
        # 20 % for 1 s + 15 % for 1 s
        assert s["total_cpu_time_secs"] == pytest.approx(0.35, rel=1e-12)
        assert s["peak_process_rss_kb"] == 8000

    def test_legacy_net_keys(self):
        old = {"ts_ms": 1000, "cpu_usage": 1.0, "mem_rss_kb": 10, "net_rx_bytes": 4096, "net_tx_bytes": 1024}
        s = generate_summary_from_metrics_json([json.dumps(old)], 0.0)
        assert s["total_sys_net_rx_bytes"] == 4096
        assert s["total_sys_net_tx_bytes"] == 1024

    def test_invalid_json_skipped(self, flat):
        s = generate_summary_from_metrics_json([json.dumps(flat[0]), "not json", "[1, 2]", json.dumps(flat[1])], 1.0)
        assert s["sample_count"] == 2
        assert s["peak_mem_rss_kb"] == 8000

    def test_metadata_skipped(self, flat):
        meta = {"pid": 1, "cmd": ["x"], "executable": "/bin/x", "t0_ms": 1000}
        s = generate_summary_from_metrics_json([meta] + flat, 2.0)
        assert s["sample_count"] == 3

    def test_empty(self):
        s = generate_summary_from_metrics_json([], 0.0)
        assert s["sample_count"] == 0
        assert s["total_time_secs"] == 0.0
        assert s["avg_cpu_usage"] == 0.0
        assert s["max_processes"] == 0
        assert s["total_cpu_time_secs"] == 0.0
        for key in SUMMARY_KEYS:
            assert key in s

    def test_bad_arguments(self):
        with pytest.raises(TypeError):
            generate_summary_from_metrics_json("[]", 1.0)
        with pytest.raises(TypeError):
            generate_summary_from_metrics_json([], "1.0")
        with pytest.raises(ValueError):
            generate_summary_from_metrics_json([], -1.0)


class TestFromFile:
    def test_tagged_file(self, tmp_path, tree_samples):
        path = tmp_path / "run.jsonl"
        meta = {"kind": "metadata", "pid": 42, "cmd": ["x"], "executable": "/bin/x", "t0_ms": 1000}
        write_jsonl(path, [meta] + [dict(s, kind="tree") for s in tree_samples])
        s = generate_summary_from_file(str(path))
        for key, value in EXPECTED_TREE.items():
            assert s[key] == value, key
        assert s["total_cpu_time_secs"] == pytest.approx(2.8, rel=1e-12)
        assert "estimated" in s

    def test_file_with_summary_line(self, tmp_path, tree_samples):
        path = tmp_path / "run.jsonl"
        summary = {"kind": "summary", "total_time_secs": 2.5, "sample_count": 3,
                   "total_cpu_time_secs": 4.5, "peak_process_rss_kb": 3333}
        write_jsonl(path, [dict(s, kind="tree") for s in tree_samples] + [summary])
        s = generate_summary_from_file(path)  # PathLike accepted too
        assert s["total_cpu_time_secs"] == 4.5
        assert s["peak_process_rss_kb"] == 3333
        assert "estimated" not in s
        assert s["total_time_secs"] == 2.5

    def test_untagged_mixed_content(self, tmp_path):
        path = tmp_path / "mixed.jsonl"
        with open(path, "w") as f:
            f.write(json.dumps(metrics(1000, 10.0, 100, 0, 0, 0, 0, 0, 0, 1)) + "\n")
            f.write(json.dumps({"pid": 1, "cmd": ["t"], "executable": "/t", "t0_ms": 1}) + "\n")
            f.write(json.dumps(metrics(1500, 30.0, 300, 0, 0, 0, 0, 0, 0, 1)) + "\n")
            f.write("invalid json line\n")
            f.write('{"half": ')  # truncated last line
        s = generate_summary_from_file(str(path))
        assert s["sample_count"] == 2
        assert s["avg_cpu_usage"] == 20.0
        assert s["total_time_secs"] == 0.5

    def test_json_array_file(self, tmp_path, tree_samples):
        path = tmp_path / "run.json"
        path.write_text(json.dumps(tree_samples, indent=2))
        s = generate_summary_from_file(str(path))
        assert s["total_disk_read_bytes"] == 1950
        assert s["sample_count"] == 3

    def test_missing_file(self, tmp_path):
        with pytest.raises(FileNotFoundError):
            generate_summary_from_file(str(tmp_path / "nope.jsonl"))

    def test_empty_file(self, tmp_path):
        path = tmp_path / "empty.jsonl"
        path.touch()
        with pytest.raises(OSError):
            generate_summary_from_file(str(path))
        path.write_text("\n  \n")
        with pytest.raises(OSError):
            generate_summary_from_file(str(path))

    def test_garbage_file(self, tmp_path):
        path = tmp_path / "garbage.jsonl"
        path.write_text("hello\nworld\n{\"unrelated\": 1}\n[1, 2, 3]\n")
        with pytest.raises(OSError, match="no denet samples"):
            generate_summary_from_file(str(path))

    def test_binary_garbage(self, tmp_path):
        path = tmp_path / "bin.jsonl"
        path.write_bytes(bytes(range(256)) * 4)
        with pytest.raises(OSError):
            generate_summary_from_file(str(path))

    def test_metadata_only(self, tmp_path):
        path = tmp_path / "meta.jsonl"
        write_jsonl(path, [{"kind": "metadata", "pid": 1, "cmd": ["x"], "executable": "/x", "t0_ms": 1}])
        with pytest.raises(OSError):
            generate_summary_from_file(str(path))


class TestBadLines:
    """Lines that are JSON but not usable numbers are skipped and counted, never folded
    in, never a crash (RecursionError, OverflowError) and never non-JSON output."""

    @pytest.fixture
    def run_file(self, tmp_path, tree_samples):
        def make(*bad_lines):
            path = tmp_path / "run.jsonl"
            lines = [json.dumps(dict(s, kind="tree")) for s in tree_samples]
            path.write_text("\n".join(lines[:1] + list(bad_lines) + lines[1:]) + "\n")
            return path
        return make

    def expect_clean(self, s, skipped):
        for key, value in EXPECTED_TREE.items():
            if key != "total_time_secs":
                assert s[key] == value, key
        assert s["skipped_records"] == skipped

    def test_deeply_nested_line(self, run_file):
        s = generate_summary_from_file(run_file("[" * 100_000, '{"a":' * 50_000))
        self.expect_clean(s, 2)

    @pytest.mark.parametrize("value", ["1e400", "-1e400", "NaN", "Infinity", "1" * 400, "true", '"12"'])
    def test_number_that_is_not_a_finite_number(self, run_file, value):
        line = '{"kind": "tree", "ts_ms": 1500, "parent": null, "children": [], "aggregated": {"cpu_usage": %s}}'
        s = generate_summary_from_file(run_file(line % value))
        self.expect_clean(s, 1)
        json.dumps(s, allow_nan=False)

    def test_summary_line_with_a_string_for_a_number(self, run_file):
        s = generate_summary_from_file(run_file(json.dumps(
            {"kind": "summary", "total_time_secs": 2.5, "sample_count": 3, "total_cpu_time_secs": "lots",
             "peak_process_rss_kb": 1})))
        # the bad summary is not used: the estimates from the samples are
        assert s["total_cpu_time_secs"] == pytest.approx(2.8, rel=1e-12)
        assert "estimated" in s
        self.expect_clean(s, 1)

    @pytest.mark.parametrize("bad", [
        {"kind": "tree", "ts_ms": 1, "children": [{"pid": [1], "metrics": {}}]},
        {"kind": "tree", "ts_ms": 1, "children": "none"},
        {"kind": "tree", "ts_ms": 1, "parent": [1, 2]},
        {"kind": "tree", "ts_ms": 1, "aggregated": {"ebpf": {"syscalls": {"by_category": {"io": "x"}}}}},
        {"kind": "summary", "total_time_secs": 1, "sample_count": 1, "syscalls_by_category": [1]},
    ])
    def test_wrong_shapes(self, run_file, bad):
        s = generate_summary_from_file(run_file(json.dumps(bad)))
        self.expect_clean(s, 1)

    def test_load_metrics_names_the_line(self, run_file):
        from denet.analysis import load_metrics

        with pytest.raises(ValueError, match=r"run\.jsonl:2: JSON nested too deeply"):
            load_metrics(run_file("[" * 100_000))
        with pytest.raises(ValueError, match=r"run\.jsonl:2: aggregated\.cpu_usage is inf, not a finite number"):
            load_metrics(run_file('{"kind": "tree", "ts_ms": 1, "aggregated": {"cpu_usage": 1e400}}'))

    def test_all_lines_bad_says_why(self, tmp_path):
        path = tmp_path / "bad.jsonl"
        path.write_text('{"kind": "sample", "cpu_usage": 1e400}\n' + "[" * 5000 + "\n")
        with pytest.raises(OSError, match=r"no denet samples.*2 lines.*line 1: cpu_usage is inf"):
            generate_summary_from_file(path)

    def test_metrics_json_counts_skipped_items(self, tree_samples):
        bad = dict(tree_samples[0], aggregated={"cpu_usage": float("inf")})
        s = generate_summary_from_metrics_json(tree_samples + [bad, "[" * 100_000, "nope"], 2.5)
        self.expect_clean(s, 3)
        with pytest.raises(ValueError):
            generate_summary_from_metrics_json(tree_samples, float("nan"))

    def test_json_safe(self):
        from denet import _formats

        safe, n = _formats.json_safe({"a": float("inf"), "b": [1.5, float("nan")], "c": "x"})
        assert (safe, n) == ({"a": None, "b": [1.5, None], "c": "x"}, 2)
        json.dumps(safe, allow_nan=False)
