"""Shared helpers for denet's record formats (JSONL lines, CSV columns).

Pure Python, no dependency on the C extension (the extension's ``SCHEMA`` is
read lazily, with a built-in fallback), so the analysis and summary modules
import and work without it.

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
"""

from __future__ import annotations

import csv
import io
import json
from typing import Any, Iterable, Iterator

#: Legacy key -> current key.
LEGACY_KEYS = {
    "net_rx_bytes": "sys_net_rx_bytes",
    "net_tx_bytes": "sys_net_tx_bytes",
}

SAMPLE_KINDS = ("tree", "sample")
KNOWN_KINDS = ("metadata", "tree", "sample", "summary")

_TREE_KEYS = ("aggregated", "children", "parent")
_METADATA_KEYS = ("cmd", "executable")
_SUMMARY_MARKERS = ("sample_count", "total_time_secs")

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

    Returns ``None`` for blank lines, invalid JSON and JSON that is not an object.
    """
    if isinstance(line, bytes):
        try:
            line = line.decode("utf-8")
        except UnicodeDecodeError:
            return None
    line = line.strip()
    if not line:
        return None
    try:
        obj = json.loads(line)
    except ValueError:
        return None
    kind = classify(obj)
    if kind is None:
        return None
    return kind, normalize_record(obj, kind)


def parse_item(item: Any) -> tuple[str, dict] | None:
    """Like :func:`parse_line` but also accepts an already parsed ``dict``."""
    if isinstance(item, dict):
        kind = classify(item)
        if kind is None:
            return None
        return kind, normalize_record(item, kind)
    if isinstance(item, (str, bytes)):
        return parse_line(item)
    return None


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


def iter_text_records(text: str) -> Iterator[tuple[str, dict]]:
    """Yield ``(kind, record)`` for every parseable line of JSONL text."""
    for line in text.splitlines():
        parsed = parse_line(line)
        if parsed is not None:
            yield parsed


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
