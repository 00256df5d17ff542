"""denet.analysis and denet._formats on synthetic samples (pure Python).

Expected numbers are computed by hand from the fixtures.
"""

import csv
import io
import json

import pytest

import denet
from denet import _formats
from denet.analysis import (
    aggregate_metrics,
    convert_format,
    find_peaks,
    load_metrics,
    process_tree_analysis,
    resource_utilization,
    save_metrics,
)


@pytest.fixture
def flat():
    """Five flat samples, legacy net keys as upstream's tests use them."""
    rows = [
        # ts,   cpu,  rss,  vms,   dr,    dw,    rx,   tx,  thr, up
        (1000, 5.0, 5000, 10000, 1024, 2048, 512, 256, 2, 10),
        (1100, 10.0, 6000, 12000, 2048, 4096, 1024, 512, 3, 11),
        (1200, 15.0, 7000, 14000, 4096, 8192, 2048, 1024, 4, 12),
        (1300, 10.0, 8000, 16000, 8192, 16384, 4096, 2048, 4, 13),
        (1400, 5.0, 6000, 12000, 16384, 32768, 8192, 4096, 3, 14),
    ]
    return [
        {"ts_ms": ts, "cpu_usage": cpu, "mem_rss_kb": rss, "mem_vms_kb": vms, "disk_read_bytes": dr,
         "disk_write_bytes": dw, "net_rx_bytes": rx, "net_tx_bytes": tx, "thread_count": thr, "uptime_secs": up}
        for ts, cpu, rss, vms, dr, dw, rx, tx, thr, up in rows
    ]


def m(ts, cpu, rss, threads, dr=0, dw=0):
    return {"ts_ms": ts, "cpu_usage": cpu, "mem_rss_kb": rss, "mem_vms_kb": 2 * rss, "disk_read_bytes": dr,
            "disk_write_bytes": dw, "syscall_read_bytes": 0, "syscall_write_bytes": 0, "page_faults_cached": 0,
            "page_faults_disk": 0, "sys_net_rx_bytes": 0, "sys_net_tx_bytes": 0, "thread_count": threads,
            "uptime_secs": 1, "cpu_core": None}


@pytest.fixture
def denet_tree():
    """denet tree samples: parent, child 201 (exits), child 202 (appears)."""
    return [
        {"ts_ms": 1000, "parent": m(1000, 10.0, 1024, 2, 100),
         "children": [{"pid": 201, "command": "worker a", "metrics": m(1000, 50.0, 2048, 1, 1000)}],
         "aggregated": dict(m(1000, 60.0, 3072, 3, 1100), process_count=2)},
        {"ts_ms": 2000, "parent": m(2000, 30.0, 2048, 2, 200),
         "children": [{"pid": 201, "command": "worker a", "metrics": m(2000, 100.0, 4096, 1, 3000)},
                      {"pid": 202, "command": "worker b", "metrics": m(2000, 20.0, 1024, 4, 500)}],
         "aggregated": dict(m(2000, 150.0, 7168, 7, 3700), process_count=3)},
        {"ts_ms": 4000, "parent": m(4000, 20.0, 1024, 2, 300),
         "children": [{"pid": 202, "command": "worker b", "metrics": m(4000, 40.0, 3072, 4, 900)}],
         "aggregated": dict(m(4000, 60.0, 4096, 6, 1200), process_count=2)},
    ]


# ---------------------------------------------------------------- aggregate


class TestAggregateMetrics:
    def test_mean_windows(self, flat):
        out = aggregate_metrics(flat, window_size=2, method="mean")
        assert len(out) == 3
        assert out[0]["cpu_usage"] == 7.5
        assert out[0]["mem_rss_kb"] == 5500
        assert out[0]["ts_ms"] == 1100  # the window's last timestamp
        assert out[0]["_window_size"] == 2
        assert out[0]["_aggregation_method"] == "mean"
        assert out[0]["_aggregated"] is True
        assert out[1]["cpu_usage"] == 12.5
        assert out[2]["cpu_usage"] == 5.0 and out[2]["_window_size"] == 1
        assert out[0]["net_rx_bytes"] == 768  # legacy keys are aggregated too

    def test_max_min(self, flat):
        assert [w["cpu_usage"] for w in aggregate_metrics(flat, 3, "max")] == [15.0, 10.0]
        assert [w["cpu_usage"] for w in aggregate_metrics(flat, 3, "min")] == [5.0, 5.0]
        assert [w["thread_count"] for w in aggregate_metrics(flat, 3, "max")] == [4, 4]

    def test_input_not_modified(self, flat):
        before = json.dumps(flat)
        aggregate_metrics(flat, 2)
        assert json.dumps(flat) == before

    def test_edge_cases(self, flat):
        assert aggregate_metrics([], window_size=2) == []
        assert aggregate_metrics(flat, window_size=1) == flat
        assert len(aggregate_metrics(flat, window_size=10)) == 1
        with pytest.raises(ValueError, match="median"):
            aggregate_metrics(flat, 2, method="median")

    def test_tree_samples(self, denet_tree):
        out = aggregate_metrics(denet_tree, window_size=2, method="max")
        assert len(out) == 2
        assert out[0]["aggregated"]["cpu_usage"] == 150.0
        assert out[0]["aggregated"]["process_count"] == 3
        assert out[0]["parent"]["mem_rss_kb"] == 2048
        assert out[0]["children"] == denet_tree[1]["children"]
        assert out[0]["ts_ms"] == 2000
        mean = aggregate_metrics(denet_tree, window_size=3, method="mean")
        assert mean[0]["aggregated"]["cpu_usage"] == 90.0  # (60 + 150 + 60) / 3

    def test_metadata_records_skipped(self, flat):
        meta = {"kind": "metadata", "pid": 1, "cmd": ["x"], "executable": "/x", "t0_ms": 1}
        assert aggregate_metrics([meta] + flat, 5)[0]["cpu_usage"] == 9.0


# ---------------------------------------------------------------- peaks


class TestFindPeaks:
    def test_single_peak(self, flat):
        peaks = find_peaks(flat, field="cpu_usage", threshold=0.7, window_size=1)
        assert len(peaks) == 1
        assert peaks[0]["cpu_usage"] == 15.0
        assert peaks[0]["_index"] == 2
        assert "_index" not in flat[2]

    def test_threshold_is_fraction_of_max(self):
        values = [0, 10, 0, 4, 0, 8, 0]
        data = [{"ts_ms": i, "cpu_usage": v} for i, v in enumerate(values)]
        assert [p["_index"] for p in find_peaks(data, threshold=0.5, window_size=1)] == [1, 5]
        assert [p["_index"] for p in find_peaks(data, threshold=0.3, window_size=1)] == [1, 3, 5]
        assert [p["_index"] for p in find_peaks(data, threshold=0.9, window_size=1)] == [1]

    def test_plateau_counts_once(self):
        values = [1, 5, 5, 5, 1, 2, 1]
        data = [{"cpu_usage": v} for v in values]
        assert [p["_index"] for p in find_peaks(data, threshold=0.0, window_size=1)] == [1, 5]

    def test_smoothing(self):
        # smoothed with window 3: [1.5, 2, 11/3, 11/3, 2, ...] -- the spike at 2 is absorbed
        values = [1, 2, 3, 6, 2, 1, 1]
        data = [{"cpu_usage": v} for v in values]
        assert [p["_index"] for p in find_peaks(data, threshold=0.0, window_size=3)] == [2]
        assert [p["_index"] for p in find_peaks(data, threshold=0.0, window_size=1)] == [3]

    def test_tree_field_lookup(self, denet_tree):
        # aggregated cpu: 60, 150, 60 -> peak at index 1
        assert [p["_index"] for p in find_peaks(denet_tree, window_size=1)] == [1]
        # dotted path into the parent: 1024, 2048, 1024
        assert [p["_index"] for p in find_peaks(denet_tree, "parent.mem_rss_kb", window_size=1)] == [1]

    def test_edge_cases(self, flat):
        assert find_peaks(flat, field="nonexistent") == []
        assert find_peaks([], field="cpu_usage") == []
        assert find_peaks(flat[:2], window_size=1) == []  # endpoints are never peaks
        assert find_peaks([{"cpu_usage": 0}] * 5, window_size=1) == []
        assert find_peaks([{"cpu_core": None}] * 3, field="cpu_core") == []


# ---------------------------------------------------------------- utilization


class TestResourceUtilization:
    def test_flat(self, flat):
        st = resource_utilization(flat)
        assert st["avg_cpu"] == 9.0
        assert st["max_cpu"] == 15.0
        assert st["min_cpu"] == 5.0
        assert st["median_cpu"] == 10.0
        assert st["stdev_cpu"] == pytest.approx(4.1833001326703778, rel=1e-12)
        assert st["max_mem_mb"] == 7.8125
        assert st["avg_mem_mb"] == 6400 / 1024
        assert st["min_mem_mb"] == 5000 / 1024
        assert st["avg_threads"] == 3.2
        assert st["max_threads"] == 4 and st["min_threads"] == 2
        assert st["total_read_mb"] == 16384 / 1048576
        assert st["total_write_mb"] == 32768 / 1048576
        assert st["total_sys_net_rx_mb"] == 8192 / 1048576
        assert st["total_sys_net_tx_mb"] == 4096 / 1048576
        assert st["total_time_sec"] == 0.4
        assert "max_processes" not in st

    def test_tree(self, denet_tree):
        st = resource_utilization(denet_tree)
        assert st["avg_cpu"] == 90.0
        assert st["max_cpu"] == 150.0
        assert st["max_mem_mb"] == 7.0
        assert st["max_processes"] == 3
        assert st["avg_processes"] == pytest.approx(7 / 3, rel=1e-12)
        # parent 300 + child 201 3000 + child 202 900 (aggregated at the end: 1200)
        assert st["total_read_mb"] == 4200 / 1048576
        assert st["total_time_sec"] == 3.0

    def test_empty_partial_single(self):
        assert resource_utilization([]) == {}
        partial = resource_utilization([{"ts_ms": 1000, "cpu_usage": 5.0}, {"ts_ms": 1100, "mem_rss_kb": 6000}])
        assert "avg_cpu" not in partial and "avg_mem_mb" not in partial
        assert partial["total_time_sec"] == 0.1
        single = resource_utilization([{"ts_ms": 1000, "cpu_usage": 5.0, "mem_rss_kb": 5000}])
        assert single["avg_cpu"] == single["max_cpu"] == single["min_cpu"] == single["median_cpu"] == 5.0
        assert "stdev_cpu" not in single


# ---------------------------------------------------------------- tree analysis


class TestProcessTreeAnalysis:
    def test_denet_tree_samples(self, denet_tree):
        a = process_tree_analysis(denet_tree)
        main = a["main_process"]
        assert main["avg_cpu"] == 20.0
        assert main["max_cpu"] == 30.0
        assert main["max_memory_mb"] == 2.0
        assert main["samples"] == 3
        assert main["disk_read_bytes"] == 300
        assert set(a["child_processes"]) == {201, 202}
        c201 = a["child_processes"][201]
        assert c201["avg_cpu"] == 75.0
        assert c201["max_memory_mb"] == 4.0
        assert c201["samples"] == 2
        assert c201["first_ts_ms"] == 1000 and c201["last_ts_ms"] == 2000
        assert c201["command"] == "worker a"
        assert c201["disk_read_bytes"] == 3000
        c202 = a["child_processes"][202]
        assert c202["avg_cpu"] == 30.0
        assert c202["avg_threads"] == 4
        total = a["total"]
        assert total["avg_cpu"] == 90.0
        assert total["max_cpu"] == 150.0
        assert total["max_memory_mb"] == 7.0
        assert total["max_threads"] == 7
        assert total["max_processes"] == 3
        assert total["unique_processes"] == 3

    def test_upstream_shape(self):
        data = [
            {"ts_ms": 1000, "pid": 1000, "cpu_usage": 5.0, "mem_rss_kb": 5000, "thread_count": 2,
             "children": [{"pid": 1001, "cpu_usage": 2.0, "mem_rss_kb": 2000, "thread_count": 1}]},
            {"ts_ms": 1100, "pid": 1000, "cpu_usage": 10.0, "mem_rss_kb": 6000, "thread_count": 2,
             "children": [{"pid": 1001, "cpu_usage": 5.0, "mem_rss_kb": 3000, "thread_count": 2}]},
        ]
        a = process_tree_analysis(data)
        assert a["main_process"]["avg_cpu"] == 7.5
        assert a["main_process"]["pid"] == 1000
        assert a["child_processes"][1001]["avg_cpu"] == 3.5
        assert a["total"]["avg_cpu"] == 11.0  # (7 + 15) / 2: sums per sample
        assert a["total"]["max_processes"] == 2

    def test_child_processes_key(self):
        data = [{"ts_ms": 1, "pid": 2000, "cpu_usage": 10.0, "mem_rss_kb": 8000, "thread_count": 3,
                 "child_processes": [{"pid": 2001, "cpu_usage": 4.0, "mem_rss_kb": 3000, "thread_count": 1}]}]
        assert process_tree_analysis(data)["child_processes"][2001]["avg_cpu"] == 4.0

    def test_not_a_tree(self, flat):
        assert process_tree_analysis(flat) == {}
        assert process_tree_analysis([]) == {}


# ---------------------------------------------------------------- formats


class TestConvertFormat:
    def test_csv_flat(self, flat):
        text = convert_format(flat, "csv")
        assert text.startswith("ts_ms,cpu_usage,mem_rss_kb,mem_vms_kb,disk_read_bytes,disk_write_bytes,")
        assert text.count("\n") == len(flat) + 1
        rows = list(csv.DictReader(io.StringIO(text)))
        assert rows[2]["cpu_usage"] == "15.0"
        assert rows[4]["net_rx_bytes"] == "8192"

    def test_csv_tree_dotted_columns(self, denet_tree):
        text = convert_format(denet_tree, "csv")
        reader = csv.DictReader(io.StringIO(text))
        cols = reader.fieldnames
        assert cols[0] == "ts_ms"
        assert cols[1:3] == ["aggregated.ts_ms", "aggregated.cpu_usage"]
        assert cols.index("aggregated.cpu_core") < cols.index("aggregated.process_count") < cols.index("parent.ts_ms")
        assert cols.index("parent.cpu_core") < cols.index("children")
        assert cols[-1] == "children"
        rows = list(reader)
        assert rows[1]["aggregated.cpu_usage"] == "150.0"
        assert rows[1]["parent.cpu_core"] == ""  # None -> empty cell
        children = json.loads(rows[1]["children"])  # list -> JSON text in one quoted cell
        assert [c["pid"] for c in children] == [201, 202]

    def test_csv_quoting(self):
        data = [{"ts_ms": 1, "cpu_usage": 1.0, "note": 'has, comma "and quotes"\nand newline'}]
        rows = list(csv.DictReader(io.StringIO(convert_format(data, "csv"))))
        assert rows[0]["note"] == 'has, comma "and quotes"\nand newline'

    def test_csv_union_of_columns(self):
        data = [{"ts_ms": 1, "cpu_usage": 1.0}, {"ts_ms": 2, "mem_rss_kb": 7, "extra": "x"}]
        rows = list(csv.DictReader(io.StringIO(convert_format(data, "csv"))))
        assert rows[0] == {"ts_ms": "1", "cpu_usage": "1.0", "mem_rss_kb": "", "extra": ""}
        assert rows[1]["mem_rss_kb"] == "7"

    def test_json_and_jsonl(self, flat):
        assert json.loads(convert_format(flat, "json")) == flat
        assert "  " in convert_format(flat, "json", indent=2)
        assert "  " not in convert_format(flat, "json")
        lines = convert_format(flat, "jsonl").split("\n")
        assert [json.loads(x) for x in lines] == flat

    def test_edge_cases(self, flat):
        assert convert_format([], "csv") == ""
        with pytest.raises(ValueError):
            convert_format(flat, "xml")

    def test_from_path(self, flat, tmp_path):
        p = tmp_path / "m.jsonl"
        save_metrics(flat, str(p))
        text = convert_format(str(p), "csv")
        assert text.startswith("ts_ms,cpu_usage,mem_rss_kb")
        assert text.count("\n") == len(flat) + 1  # the metadata line is not a row
        assert "sys_net_rx_bytes" in text.splitlines()[0]  # legacy keys renamed on load


class TestSaveLoad:
    def test_jsonl_round_trip_with_kind_tags(self, denet_tree, tmp_path):
        p = tmp_path / "t.jsonl"
        save_metrics(denet_tree, p, metadata={"pid": 7, "cmd": ["w"], "executable": "/w", "t0_ms": 999})
        lines = [json.loads(x) for x in p.read_text().splitlines()]
        assert [x["kind"] for x in lines] == ["metadata", "tree", "tree", "tree"]
        assert lines[0]["pid"] == 7
        assert load_metrics(p) == denet_tree
        with_meta = load_metrics(p, include_metadata=True)
        assert with_meta[0] == {"kind": "metadata", "pid": 7, "cmd": ["w"], "executable": "/w", "t0_ms": 999}
        assert with_meta[1:] == denet_tree

    def test_flat_tagged_sample(self, tmp_path):
        p = tmp_path / "f.jsonl"
        save_metrics([m(1, 1.0, 1, 1)], p, include_metadata=False)
        assert json.loads(p.read_text())["kind"] == "sample"

    def test_default_metadata(self, flat, tmp_path):
        p = tmp_path / "m.jsonl"
        save_metrics(flat, str(p), include_metadata=True)
        loaded = load_metrics(str(p), include_metadata=True)
        assert {"pid", "cmd", "executable", "t0_ms"} <= set(loaded[0])
        assert loaded[0]["t0_ms"] == 1000
        assert len(loaded) == len(flat) + 1
        assert len(load_metrics(str(p))) == len(flat)

    def test_kind_tags_beat_guessing(self, tmp_path):
        # a tagged sample whose first line looks like metadata to a text search
        p = tmp_path / "k.jsonl"
        first = {"kind": "sample", "ts_ms": 1, "cpu_usage": 2.0, "pid_note": "\"pid\": \"cmd\":"}
        p.write_text(json.dumps(first) + "\n" + json.dumps({"kind": "summary", "sample_count": 1,
                                                             "total_time_secs": 0.0}) + "\n")
        assert load_metrics(p) == [{"ts_ms": 1, "cpu_usage": 2.0, "pid_note": "\"pid\": \"cmd\":"}]
        both = load_metrics(p, include_metadata=True)
        assert both == [{"ts_ms": 1, "cpu_usage": 2.0, "pid_note": "\"pid\": \"cmd\":"},
                        {"kind": "summary", "sample_count": 1, "total_time_secs": 0.0}]

    def test_untagged_file(self, tmp_path):
        p = tmp_path / "u.jsonl"
        p.write_text(
            json.dumps({"pid": 3, "cmd": ["a"], "executable": "/a", "t0_ms": 5}) + "\n"
            + json.dumps({"ts_ms": 5, "cpu_usage": 1.0, "net_rx_bytes": 10}) + "\n"
            + json.dumps({"ts_ms": 6, "aggregated": {"cpu_usage": 2.0}, "children": [], "parent": None}) + "\n"
        )
        assert load_metrics(p) == [
            {"ts_ms": 5, "cpu_usage": 1.0, "sys_net_rx_bytes": 10},
            {"ts_ms": 6, "aggregated": {"cpu_usage": 2.0}, "children": [], "parent": None},
        ]
        assert load_metrics(p, include_metadata=True)[0]["kind"] == "metadata"

    def test_json_format(self, flat, tmp_path):
        p = tmp_path / "m.json"
        save_metrics(flat, str(p), format="json")
        assert len(load_metrics(str(p))) == len(flat)

    def test_csv_format(self, flat, tmp_path):
        p = tmp_path / "m.csv"
        save_metrics(flat, str(p), format="csv")
        rows = list(csv.DictReader(open(p, newline="")))
        assert len(rows) == 5 and rows[0]["ts_ms"] == "1000"

    def test_invalid_format_leaves_no_file(self, flat, tmp_path):
        p = tmp_path / "m.txt"
        with pytest.raises(ValueError):
            save_metrics(flat, str(p), format="invalid")
        assert not p.exists()

    def test_empty_and_truncated_files(self, tmp_path):
        empty = tmp_path / "e.jsonl"
        empty.touch()
        assert load_metrics(str(empty)) == []
        trunc = tmp_path / "t.jsonl"
        trunc.write_text(json.dumps({"ts_ms": 1, "cpu_usage": 1.0}) + '\n{"ts_ms": 2, "cpu_')
        assert load_metrics(trunc) == [{"ts_ms": 1, "cpu_usage": 1.0}]
        bad = tmp_path / "b.jsonl"
        bad.write_text('not json\n{"ts_ms": 1}\n')
        with pytest.raises(ValueError, match=":1:"):
            load_metrics(bad)
        with pytest.raises(FileNotFoundError):
            load_metrics(tmp_path / "missing.jsonl")


# ---------------------------------------------------------------- _formats


class TestFormatsHelpers:
    def test_classify(self):
        assert _formats.classify({"kind": "tree"}) == "tree"
        assert _formats.classify({"ts_ms": 1, "aggregated": {}}) == "tree"
        assert _formats.classify({"ts_ms": 1, "parent": None, "children": []}) == "tree"
        assert _formats.classify({"pid": 1, "cmd": ["x"], "executable": "/x", "t0_ms": 1}) == "metadata"
        assert _formats.classify({"ts_ms": 1, "cpu_usage": 0.0}) == "sample"
        assert _formats.classify({"net_rx_bytes": 1}) == "sample"
        assert _formats.classify({"sample_count": 1, "total_time_secs": 0.0}) == "summary"
        assert _formats.classify({"unrelated": 1}) is None
        assert _formats.classify([1]) is None

    def test_parse_line_normalizes_legacy_keys_everywhere(self):
        line = json.dumps({"ts_ms": 1, "parent": {"net_rx_bytes": 1},
                           "children": [{"pid": 2, "metrics": {"net_tx_bytes": 3}}],
                           "aggregated": {"net_rx_bytes": 4, "sys_net_rx_bytes": 5}})
        kind, rec = _formats.parse_line(line)
        assert kind == "tree"
        assert rec["parent"] == {"sys_net_rx_bytes": 1}
        assert rec["children"][0]["metrics"] == {"sys_net_tx_bytes": 3}
        assert rec["aggregated"] == {"sys_net_rx_bytes": 5}  # the current key wins
        assert _formats.parse_line("  ") is None
        assert _formats.parse_line("{bad") is None
        assert _formats.parse_line(b'{"ts_ms": 1}') == ("sample", {"ts_ms": 1})

    def test_flatten(self):
        assert _formats.flatten({"a": {"b": {"c": 1}, "d": [1, {"e": 2}]}, "n": None, "z": {}}) == {
            "a.b.c": 1, "a.d": '[1,{"e":2}]', "n": "", "z": "{}"}

    def test_csv_columns_schema_order_first(self):
        cols = _formats.csv_columns([{"zzz": 1, "mem_rss_kb": 1, "ts_ms": 1, "cpu_usage": 1}])
        assert cols == ["ts_ms", "cpu_usage", "mem_rss_kb", "zzz"]

    def test_schema_fields(self):
        fields = _formats.schema_fields()
        assert fields[:3] == ("ts_ms", "cpu_usage", "mem_rss_kb")
        assert fields == tuple(f["name"] for f in denet.SCHEMA)

    def test_booleans_in_csv(self):
        text = _formats.to_csv([{"ts_ms": 1, "flag": True, "other": False}])
        assert text.splitlines()[1] == "1,true,false"
