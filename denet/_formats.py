"""denet's file formats: the records, writing CSV, and reading back every format
denet writes (JSONL, JSON array, CSV).

Pure Python.  The ``Metrics`` field names come from the extension's ``SCHEMA`` (the
one definition), imported on first use rather than at import time; there is no
built-in copy of the field list, so the functions that need field names
(:func:`classify`, :func:`csv_columns`, the readers) need the extension built.

Records
-------
A JSONL file written by denet carries one JSON object a line, tagged with
``"kind"``:

* ``"metadata"`` -- ``{"kind", "pid", "cmd", "executable", "t0_ms"}``
* ``"tree"``     -- a tree sample ``{"ts_ms", "parent", "children", "aggregated"}``
* ``"sample"``   -- a flat sample (one ``Metrics`` dict)
* ``"summary"``  -- the run's summary, written when monitoring stops

Untagged lines (older files, upstream denet) are classified by their keys, and
the legacy keys ``net_rx_bytes``/``net_tx_bytes`` are read as
``sys_net_rx_bytes``/``sys_net_tx_bytes``.

Files
-----
``"jsonl"`` is the records above, one a line.  ``"json"`` is a JSON array of the
same records (the C extension writes one record a line, ``[`` and ``]`` on lines
of their own, so a file cut short by a killed writer is still read line by line).
``"csv"`` has one sample a row: nested fields as dotted columns
(``aggregated.cpu_usage``), lists (``children``) as JSON text in one cell, ``None``
as an empty cell; it holds no metadata or summary.  :func:`read_file` tells the
three apart by their content, not by the file name (the name's extension only
chooses what the CLI writes), and returns every record it could read plus a
:class:`Problem` for every line it could not: not JSON, not an object, not a denet
record, a field of the wrong type, a number that is not finite.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import re
from typing import Any, Iterable, NamedTuple

#: Legacy key -> current key.
LEGACY_KEYS = {
    "net_rx_bytes": "sys_net_rx_bytes",
    "net_tx_bytes": "sys_net_tx_bytes",
}

SAMPLE_KINDS = ("tree", "sample")
#: Records that are not samples: the run's environment, metadata, summary.
NON_SAMPLE_KINDS = ("env", "metadata", "summary")
KNOWN_KINDS = ("env", "metadata", "tree", "sample", "summary")

_TREE_KEYS = ("aggregated", "children", "parent")
_METADATA_KEYS = ("cmd", "executable")
_SUMMARY_MARKERS = ("sample_count", "total_time_secs")
#: Bytes that were not UTF-8, as ``errors="surrogateescape"`` decodes them.
_SURROGATES = re.compile("[\udc80-\udcff]")

def schema_fields() -> tuple[str, ...]:
    """Names of the ``Metrics`` fields in canonical order, from ``denet._denet.SCHEMA``
    (the one definition that the C encoders and the docs also use)."""
    from . import _denet  # noqa: PLC0415 (lazy: importing _formats stays cheap)

    return tuple(entry["name"] for entry in _denet.SCHEMA)


# --------------------------------------------------------------------------
# classification and normalisation


def classify(obj: Any) -> str | None:
    """Return the kind of a parsed JSON record, or ``None`` if it is not a record.

    A ``"kind"`` tag wins.  Untagged objects are guessed: ``aggregated``,
    ``children`` or ``parent`` -> ``"tree"``; ``cmd``/``executable`` without
    metrics -> ``"metadata"``; summary keys without metrics -> ``"summary"``;
    an object with at least one ``Metrics`` field -> ``"sample"``; anything
    else (``{}``, unrelated JSON) -> ``None``.
    """
    if not isinstance(obj, dict):
        return None
    kind = obj.get("kind")
    if isinstance(kind, str) and kind:
        return kind
    if any(k in obj for k in _TREE_KEYS):
        return "tree"
    has_metrics = "cpu_usage" in obj or "mem_rss_kb" in obj
    if not has_metrics and any(k in obj for k in _METADATA_KEYS):
        return "metadata"
    if not has_metrics and all(k in obj for k in _SUMMARY_MARKERS):
        return "summary"
    if any(k in obj for k in schema_fields()) or any(k in obj for k in LEGACY_KEYS):
        return "sample"
    return None


def normalize_metrics(metrics: Any) -> Any:
    """Copy of one ``Metrics``/``Aggregated`` dict with legacy keys renamed.

    When both the legacy and the current key are present, the current one wins.
    Non-dicts (``None``) are returned unchanged.
    """
    if not isinstance(metrics, dict):
        return metrics
    if not any(k in metrics for k in LEGACY_KEYS):
        return dict(metrics)
    out = {}
    for key, value in metrics.items():
        new = LEGACY_KEYS.get(key)
        if new is not None:
            if new not in metrics:
                out[new] = value
        else:
            out[key] = value
    return out


def normalize_record(obj: dict, kind: str | None = None) -> dict:
    """Copy of a record with legacy keys renamed at every level that holds metrics."""
    kind = kind or classify(obj)
    if kind == "tree":
        out = normalize_metrics(obj)
        if isinstance(out.get("parent"), dict):
            out["parent"] = normalize_metrics(out["parent"])
        if isinstance(out.get("aggregated"), dict):
            out["aggregated"] = normalize_metrics(out["aggregated"])
        children = out.get("children")
        if isinstance(children, list):
            new_children = []
            for child in children:
                if isinstance(child, dict):
                    child = dict(child)
                    if isinstance(child.get("metrics"), dict):
                        child["metrics"] = normalize_metrics(child["metrics"])
                    else:
                        child = normalize_metrics(child)
                new_children.append(child)
            out["children"] = new_children
        return out
    if kind == "sample":
        return normalize_metrics(obj)
    return dict(obj)


def parse_line(line: str | bytes) -> tuple[str, dict] | None:
    """Parse one JSONL line into ``(kind, normalised record)``.

    Returns ``None`` for blank lines and for lines that are not valid denet records
    (see :func:`check_line` for the reason).
    """
    result = check_line(line)
    return None if result is None or isinstance(result, str) else result


def check_line(line: str | bytes) -> tuple[str, dict] | str | None:
    """``(kind, normalised record)`` for a JSONL line, ``None`` for a blank line, or
    the reason (a short sentence) why the line is not a valid denet record."""
    if isinstance(line, bytes):
        try:
            line = line.decode("utf-8")
        except UnicodeDecodeError:
            return "not UTF-8 text"
    if not line.strip():
        return None
    obj = _load_json(line)
    if isinstance(obj, _Bad):
        return obj.reason
    return check_record(obj)


def parse_item(item: Any) -> tuple[str, dict] | None:
    """Like :func:`parse_line` but also accepts an already parsed ``dict``."""
    result = check_item(item)
    return None if result is None or isinstance(result, str) else result


def check_item(item: Any) -> tuple[str, dict] | str | None:
    """Like :func:`check_line` but also accepts an already parsed ``dict``."""
    if isinstance(item, (str, bytes)):
        return check_line(item)
    return check_record(item)


def strip_kind(record: dict) -> dict:
    """Copy of a record without its ``"kind"`` tag."""
    if "kind" not in record:
        return record
    return {k: v for k, v in record.items() if k != "kind"}


def tag(record: dict, kind: str) -> dict:
    """Copy of a record with ``"kind"`` as its first key."""
    out = {"kind": kind}
    out.update((k, v) for k, v in record.items() if k != "kind")
    return out


def is_tree(sample: Any) -> bool:
    return isinstance(sample, dict) and classify(sample) == "tree"


def sample_kind(sample: dict) -> str:
    """``"tree"`` or ``"sample"`` for a sample dict (ignores other kinds)."""
    return "tree" if any(k in sample for k in _TREE_KEYS) else "sample"


# --------------------------------------------------------------------------
# checking records: what the summary and the readers rely on

#: The largest magnitude a number in a record may have: every counter denet writes
#: fits in 64 bits, and sums of such numbers stay finite floats.
MAX_MAGNITUDE = 2**64
_SUMMARY_NUMBER_PREFIXES = ("total_", "peak_", "max_", "avg_")
_SUMMARY_NUMBERS = ("sample_count", "processes_seen")


class _Bad:
    """A value that could not be parsed, with the reason."""

    __slots__ = ("reason",)

    def __init__(self, reason: str):
        self.reason = reason


def _load_json(text: str) -> Any:
    """``json.loads`` that returns :class:`_Bad` instead of raising."""
    if _SURROGATES.search(text):
        return _Bad("not UTF-8 text")
    try:
        return json.loads(text)
    except RecursionError:
        return _Bad("JSON nested too deeply")
    except ValueError as e:
        return _Bad(f"not valid JSON ({e.msg})" if isinstance(e, json.JSONDecodeError) else "not valid JSON")


def _short(value: Any) -> str:
    try:
        text = repr(value)
    except (RecursionError, ValueError):  # pragma: no cover (parsed JSON always has a repr)
        text = f"a {type(value).__name__}"
    return text if len(text) <= 40 else text[:37] + "..."


def _number_problem(value: Any, allow_none: bool = True) -> str | None:
    if value is None:
        return None if allow_none else "null, not a number"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return f"{_short(value)}, not a number"
    if isinstance(value, float) and not math.isfinite(value):
        return f"{_short(value)}, not a finite number"
    if abs(value) > MAX_MAGNITUDE:
        return f"{_short(value)}, out of range (more than 2**64)"
    return None


def _numeric_keys() -> tuple[str, ...]:
    return schema_fields() + tuple(LEGACY_KEYS) + ("process_count",)


def _counts_problem(counts: Any, where: str) -> str | None:
    if not isinstance(counts, dict):
        return f"{where} is {_short(counts)}, not an object"
    for key, value in counts.items():
        why = _number_problem(value, allow_none=False)
        if why:
            return f"{where}.{key} is {why}"
    return None


def _metrics_problem(metrics: Any, where: str, keys: tuple[str, ...]) -> str | None:
    """Why a Metrics/Aggregated dict is unusable (``where`` is its dotted prefix)."""
    if metrics is None:
        return None
    if not isinstance(metrics, dict):
        return f"{where.rstrip('.') or 'the sample'} is {_short(metrics)}, not an object"
    get = metrics.get
    for key in keys:
        value = get(key)
        kind = type(value)
        # the common case first (NaN fails the comparison too)
        if (kind is int or kind is float) and -MAX_MAGNITUDE <= value <= MAX_MAGNITUDE or value is None:
            continue
        why = _number_problem(value)
        if why:
            return f"{where}{key} is {why}"
    ebpf = metrics.get("ebpf")
    if ebpf is not None:
        if not isinstance(ebpf, dict):
            return f"{where}ebpf is {_short(ebpf)}, not an object"
        offcpu = ebpf.get("offcpu")
        if offcpu is not None:
            if not isinstance(offcpu, dict):
                return f"{where}ebpf.offcpu is {_short(offcpu)}, not an object"
            why = _number_problem(offcpu.get("total_time_ns"))
            if why:
                return f"{where}ebpf.offcpu.total_time_ns is {why}"
        syscalls = ebpf.get("syscalls")
        if syscalls is not None:
            if not isinstance(syscalls, dict):
                return f"{where}ebpf.syscalls is {_short(syscalls)}, not an object"
            why = _number_problem(syscalls.get("total"))
            if why:
                return f"{where}ebpf.syscalls.total is {why}"
            if syscalls.get("by_category") is not None:
                return _counts_problem(syscalls["by_category"], f"{where}ebpf.syscalls.by_category")
    gpu = metrics.get("gpu")
    if gpu is not None:
        if not isinstance(gpu, dict):
            return f"{where}gpu is {_short(gpu)}, not an object"
        for part in ("system_metrics", "process_data"):
            items = gpu.get(part)
            if items is None:
                continue
            if not isinstance(items, list):
                return f"{where}gpu.{part} is {_short(items)}, not a list"
            for i, item in enumerate(items):
                if not isinstance(item, dict):
                    return f"{where}gpu.{part}[{i}] is {_short(item)}, not an object"
                for key, value in item.items():
                    if key == "name":
                        continue
                    why = _number_problem(value)
                    if why:
                        return f"{where}gpu.{part}[{i}].{key} is {why}"
    return None


def record_problem(kind: str, record: dict) -> str | None:
    """Why a record of ``kind`` is unusable, or ``None``: numeric fields must be
    finite numbers of at most 2**64 in magnitude (``None`` allowed in samples),
    nested parts must have the right shape.  Other kinds are not checked."""
    if kind == "sample":
        return _metrics_problem(record, "", _numeric_keys())
    if kind == "tree":
        keys = _numeric_keys()
        why = _number_problem(record.get("ts_ms"))
        if why:
            return f"ts_ms is {why}"
        for part in ("parent", "aggregated"):
            why = _metrics_problem(record.get(part), part + ".", keys)
            if why:
                return why
        children = record.get("children")
        if children is None:
            return None
        if not isinstance(children, list):
            return f"children is {_short(children)}, not a list"
        for i, child in enumerate(children):
            where = f"children[{i}]"
            if not isinstance(child, dict):
                return f"{where} is {_short(child)}, not an object"
            pid = child.get("pid")
            if pid is not None and (isinstance(pid, bool) or not isinstance(pid, (int, str))):
                return f"{where}.pid is {_short(pid)}, not a process id"
            inner = child.get("metrics")
            if inner is not None and not isinstance(inner, dict):
                return f"{where}.metrics is {_short(inner)}, not an object"
            why = _metrics_problem(inner if inner is not None else child, f"{where}.metrics.", keys)
            if why:
                return why
        return None
    if kind == "summary":
        for key, value in record.items():
            if key.startswith(_SUMMARY_NUMBER_PREFIXES) or key in _SUMMARY_NUMBERS:
                # null: a total or peak that could not be known (written as such), not 0
                why = _number_problem(value, allow_none=key not in _SUMMARY_NUMBERS)
                if why:
                    return f"{key} is {why}"
        analysis = record.get("offcpu_analysis")
        if analysis is not None and not isinstance(analysis, dict):
            return f"offcpu_analysis is {_short(analysis)}, not an object"
        if "syscalls_by_category" in record:
            return _counts_problem(record["syscalls_by_category"], "syscalls_by_category")
        return None
    if kind == "metadata":
        for key in ("pid", "t0_ms"):
            why = _number_problem(record.get(key))
            if why:
                return f"{key} is {why}"
    return None


def check_record(obj: Any) -> tuple[str, dict] | str:
    """``(kind, record with legacy keys renamed)`` for a valid denet record, else the
    reason it is not one."""
    if not isinstance(obj, dict):
        return f"a JSON {_json_type(obj)}, not an object"
    kind = classify(obj)
    if kind is None:
        return "not a denet record (no \"kind\" tag and no known field)"
    why = record_problem(kind, obj)
    if why:
        return why
    return kind, normalize_record(obj, kind)


def _json_type(value: Any) -> str:
    if isinstance(value, list):
        return "array"
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    return "null" if value is None else type(value).__name__


# --------------------------------------------------------------------------
# JSON out


def json_safe(obj: Any) -> tuple[Any, int]:
    """A copy of ``obj`` with every NaN or infinite float replaced by ``None``, and the
    number of values replaced, for ``json.dumps(..., allow_nan=False)``: the text
    stays JSON that every reader accepts (``Infinity`` and ``NaN`` are not JSON)."""
    count = 0

    def walk(value):
        nonlocal count
        if isinstance(value, float) and not math.isfinite(value):
            count += 1
            return None
        if isinstance(value, dict):
            return {k: walk(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [walk(v) for v in value]
        return value

    return walk(obj), count


# --------------------------------------------------------------------------
# CSV


def flatten(obj: dict, prefix: str = "") -> dict[str, Any]:
    """Flatten nested dicts into dotted keys.

    ``{"parent": {"cpu_usage": 1}}`` -> ``{"parent.cpu_usage": 1}``.  Lists
    become JSON text (one cell), ``None`` an empty cell, everything else is
    kept as is.
    """
    out: dict[str, Any] = {}
    for key, value in obj.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            if value:
                out.update(flatten(value, name + "."))
            else:
                out[name] = "{}"
        elif isinstance(value, (list, tuple)):
            out[name] = json.dumps(value, separators=(",", ":"))
        elif value is None:
            out[name] = ""
        else:
            out[name] = value
    return out


def csv_columns(rows: Iterable[dict[str, Any]]) -> list[str]:
    """Column order for flattened rows.

    Top-level ``Metrics`` fields come first in schema order; then every other
    key, grouped by its first path component in order of first appearance and,
    within a group, ``Metrics`` fields in schema order before other keys in
    order of first appearance -- except that ``aggregated``, ``parent`` and
    ``children`` lead, in that order.  For tree samples this gives ``ts_ms``,
    ``aggregated.*`` (``process_count`` after the ``Metrics`` fields),
    ``parent.*``, ``children`` (JSON text).
    """
    schema = {name: i for i, name in enumerate(schema_fields())}
    first_seen: dict[str, int] = {}
    # tree samples: whole-tree numbers first, then the parent, then the children
    group_seen: dict[str, int] = {"aggregated": 0, "parent": 1, "children": 2}
    for row in rows:
        for key in row:
            if key not in first_seen:
                first_seen[key] = len(first_seen)
            head = key.split(".", 1)[0]
            if head not in group_seen:
                group_seen[head] = len(group_seen)

    def rank(key: str) -> tuple:
        if "." not in key and key in schema:
            return (0, 0, schema[key], 0)
        head = key.split(".", 1)[0]
        leaf = key.rsplit(".", 1)[-1]
        within = schema.get(leaf, len(schema) + first_seen[key]) if "." in key else len(schema) + first_seen[key]
        return (1, group_seen[head], within, first_seen[key])

    return sorted(first_seen, key=rank)


def _cell(value: Any) -> Any:
    if value is True:
        return "true"
    if value is False:
        return "false"
    return value


def write_csv(records: Iterable[dict], out) -> None:
    """Write records as CSV to a text file object (Python's ``csv`` module quoting).

    Nested fields become dotted columns (see :func:`flatten`), the header is the
    union of all columns (see :func:`csv_columns`), missing cells are empty.
    """
    rows = [flatten(r) for r in records if isinstance(r, dict)]
    columns = csv_columns(rows)
    writer = csv.DictWriter(out, fieldnames=columns, restval="", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _cell(v) for k, v in row.items()})


def to_csv(records: Iterable[dict]) -> str:
    """CSV text for records (see :func:`write_csv`)."""
    buf = io.StringIO()
    write_csv(records, buf)
    return buf.getvalue()


# --------------------------------------------------------------------------
# reading files back

#: The formats denet writes, and the file extensions that name them.
FILE_FORMATS = ("jsonl", "json", "csv")
_EXTENSIONS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json", ".csv": "csv"}
_BLANK = re.compile(r"\s*")
_JSON_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?")


def format_from_path(path: str | os.PathLike) -> str | None:
    """``"jsonl"``, ``"json"`` or ``"csv"`` from a file name's extension
    (``.jsonl``/``.ndjson``, ``.json``, ``.csv``; any case), else ``None``."""
    return _EXTENSIONS.get(os.path.splitext(os.fspath(path))[1].lower())


class Problem(NamedTuple):
    """A line (or JSON array item) that could not be read as a denet record."""

    line: int | None  # 1-based line where it starts; None for an item of a parsed array
    item: int | None  # 1-based position in a JSON array, else None
    reason: str

    def where(self) -> str:
        return f"line {self.line}" if self.line is not None else f"item {self.item}"

    def __str__(self) -> str:
        return f"{self.where()}: {self.reason}"


class FileRecords(NamedTuple):
    """What :func:`read_file` found in a file."""

    format: str  # "jsonl", "json" or "csv"
    records: list  # (kind, record) in file order, legacy keys renamed
    problems: list  # Problem for every line or item that was not read
    incomplete_last_line: bool  # the last line had no newline and did not parse

    def describe_problems(self, limit: int = 3) -> str:
        """``"2 lines that are not valid denet records (line 3: not valid JSON ...; line
        9: ...)"``, or ``""`` when there were no problems."""
        n = len(self.problems)
        if not n:
            return ""
        unit = "item" if self.problems[0].line is None else "line"
        shown = "; ".join(str(p) for p in self.problems[:limit])
        more = f"; {n - limit} more" if n > limit else ""
        what = f"{unit} that is not a valid denet record" if n == 1 else f"{unit}s that are not valid denet records"
        return f"{n} {what} ({shown}{more})"


def read_file(path: str | os.PathLike, format: str | None = None) -> FileRecords:
    """Read every record of a file denet wrote, in any of its formats.

    ``format`` (``"jsonl"``, ``"json"``, ``"csv"``) forces one; by default the
    content decides: ``[`` starts a JSON array, ``{`` JSON lines, a header line
    with denet's column names CSV, anything else is read as JSON lines (and every
    line of it is a problem).  Never raises for what the file holds.

    Raises:
        OSError: the file cannot be read.
        ValueError: unknown ``format``.
    """
    if format is not None and format not in FILE_FORMATS:
        raise ValueError(f"Unknown format: {format}; unknown format {format!r}; use one of {', '.join(FILE_FORMATS)}")
    with open(os.fspath(path), "rb") as f:
        data = f.read()
    return read_bytes(data, format)


def read_bytes(data: bytes, format: str | None = None) -> FileRecords:
    """:func:`read_file` on the bytes of a file."""
    text = data.decode("utf-8", errors="surrogateescape")
    if text.startswith("\ufeff"):
        text = text[1:]
    start = _BLANK.match(text).end()
    head = text[start:start + 65536].split("\n", 1)[0]  # the first line: enough to tell
    if format is None:
        if head.startswith("{") and isinstance(_load_json(head), _Bad):
            # a first line that is not a whole record: one JSON object over many lines?
            items = _document_items(_load_json(text))
            if items is not None:
                return _read_items(items)
        if head.startswith("["):
            format = "json"
        elif head.startswith("{") or not head:
            format = "jsonl"
        elif _csv_header(head) is not None:
            format = "csv"
        else:
            format = "jsonl"
    if format == "json":
        return _read_json(text)
    if format == "csv":
        return _read_csv(text)
    return _read_jsonl(text)


class _Collector:
    def __init__(self):
        self.records: list[tuple[str, dict]] = []
        self.problems: list[Problem] = []

    def add(self, obj: Any, line: int | None = None, item: int | None = None) -> None:
        result = obj.reason if isinstance(obj, _Bad) else check_record(obj)
        if isinstance(result, str):
            self.problems.append(Problem(line, item, result))
        else:
            self.records.append(result)


def _read_jsonl(text: str, fmt: str = "jsonl") -> FileRecords:
    out = _Collector()
    lines = text.split("\n")
    incomplete = False
    for lineno, line in enumerate(lines, 1):
        stripped = line.strip()
        if not stripped:
            continue
        if fmt == "json":  # the extension's array layout: one record a line
            if stripped in ("[", "]", "[]"):
                continue
            if stripped.endswith(","):
                stripped = stripped[:-1]
        obj = _load_json(stripped)
        if isinstance(obj, _Bad) and lineno == len(lines):
            incomplete = True  # no newline after it: a writer stopped half way
            obj = _Bad(obj.reason + "; the last line is incomplete (was the writer killed?)")
        out.add(obj, line=lineno)
    return FileRecords(fmt, out.records, out.problems, incomplete)


def _document_items(doc: Any) -> list | None:
    """The records of a parsed JSON document: an array of records, or an object
    ``{"metadata": {...}, "samples": [...], "summary": {...}}``; else ``None``."""
    if isinstance(doc, dict) and isinstance(doc.get("samples"), list):
        items: list[Any] = []
        if isinstance(doc.get("metadata"), dict):
            items.append(tag(doc["metadata"], "metadata"))
        items.extend(doc["samples"])
        if isinstance(doc.get("summary"), dict):
            items.append(tag(doc["summary"], "summary"))
        return items
    return doc if isinstance(doc, list) else None


def _read_items(items: list) -> FileRecords:
    out = _Collector()
    for index, item in enumerate(items, 1):
        out.add(item, item=index)
    return FileRecords("json", out.records, out.problems, False)


def _read_json(text: str) -> FileRecords:
    items = _document_items(_load_json(text))
    if items is None:
        # Not one valid array: an array cut short, or a bad record in it.  The
        # extension writes a record a line, so read it line by line.
        return _read_jsonl(text, "json")
    return _read_items(items)


def _nullable_fields() -> frozenset[str]:
    from . import _denet  # noqa: PLC0415

    return frozenset(e["name"] for e in _denet.SCHEMA if "None" in str(e.get("type", "")))


def _is_denet_header(header: list[str]) -> bool:
    """Whether a CSV header row names at least one column denet writes."""
    fields = set(schema_fields()) | set(LEGACY_KEYS)
    for column in header:
        parts = column.split(".")
        if parts[0] in _TREE_KEYS or parts[-1] in fields:
            return True
    return False


def _csv_header(text: str) -> list[str] | None:
    """The header of denet CSV text, or ``None`` when the first line is not one."""
    try:
        header = next(csv.reader(io.StringIO(text, newline="")))
    except (csv.Error, StopIteration):
        return None
    return header if _is_denet_header(header) else None


def _csv_value(cell: str) -> Any:
    """A CSV cell back to what :func:`flatten` (or the extension) wrote."""
    if cell == "true":
        return True
    if cell == "false":
        return False
    m = _JSON_NUMBER.fullmatch(cell)
    if m:
        return float(cell) if (m.group(1) or m.group(2)) else int(cell)
    if cell[:1] in "[{":
        value = _load_json(cell)
        if not isinstance(value, _Bad):
            return value
    return cell


def _read_csv(text: str) -> FileRecords:
    out = _Collector()
    reader = csv.reader(io.StringIO(text, newline=""))
    header: list[str] | None = None
    start = 1
    nullable = _nullable_fields()
    tree = False
    try:
        for row in reader:
            first_line, start = start, reader.line_num + 1
            if header is None:
                if not row:
                    continue
                header = row
                if not _is_denet_header(header):
                    out.problems.append(Problem(first_line, None, "not a denet CSV header (no known column)"))
                    break
                tree = any(c.split(".", 1)[0] in _TREE_KEYS for c in header)
                continue
            if not any(row):
                continue
            if len(row) != len(header):
                out.problems.append(Problem(first_line, None, f"{len(row)} cells, the header has {len(header)}"))
                continue
            record = _csv_record(header, row, nullable, tree)
            out.add(record, line=first_line)
    except csv.Error as e:
        out.problems.append(Problem(reader.line_num, None, f"not valid CSV ({e})"))
    return FileRecords("csv", out.records, out.problems, False)


def _csv_record(header: list[str], row: list[str], nullable: frozenset[str], tree: bool) -> Any:
    if _SURROGATES.search("".join(row)):
        return _Bad("not UTF-8 text")
    record: dict[str, Any] = {}
    empty = []
    for column, cell in zip(header, row):
        if cell == "":
            empty.append(column)
            continue
        node = record
        *parents, leaf = column.split(".")
        for part in parents:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                return _Bad(f"column {column} clashes with column {part}")
            node = child
        if leaf in node:
            return _Bad(f"column {column} appears twice")
        node[leaf] = _csv_value(cell)
    # Empty cells: None for the fields that may be None (cpu_core) of the metrics
    # dicts this row has; otherwise the value was missing (the header is the union
    # of the columns of every row).
    for column in empty:
        *parents, leaf = column.split(".")
        if leaf not in nullable or len(parents) > 1 or (parents and parents[0] not in ("parent", "aggregated")):
            continue
        node = record.get(parents[0]) if parents else record
        if isinstance(node, dict) and leaf not in node:
            node[leaf] = None
    if tree:
        record.setdefault("parent", None)
        record.setdefault("aggregated", None)
        record.setdefault("children", [])
    return record
