"""denet: a Linux process monitor with a native sampler and eBPF collectors.

    import denet
    mon = denet.ProcessMonitor(["python3", "train.py"])
    exit_code = mon.run()
    print(mon.get_summary())
"""
import atexit as _atexit
import os as _os

from . import _denet, analysis
from ._denet import SCHEMA, SYSCALL_CATEGORIES, ProcessMonitor, ebpf_available, gpu_available
from ._summary import generate_summary_from_file, generate_summary_from_metrics_json
from .analysis import (aggregate_metrics, convert_format, find_peaks, load_metrics,
                       process_tree_analysis, resource_utilization, save_metrics)
from .execute import execute_with_monitoring

__version__ = "0.6.0"  # the one version: pyproject.toml reads it from here

# The sampler threads never touch Python objects; stopping them at exit flushes output
# files and writes their summary lines before the interpreter goes away.
_atexit.register(_denet._stop_all)
# A forked child has no sampler threads: its copies of running monitors become inert.
_os.register_at_fork(after_in_child=_denet._after_fork_child)

__all__ = [
    "ProcessMonitor", "SCHEMA", "SYSCALL_CATEGORIES", "ebpf_available", "gpu_available",
    "execute_with_monitoring", "generate_summary_from_file",
    "generate_summary_from_metrics_json", "analysis", "aggregate_metrics", "convert_format",
    "find_peaks", "load_metrics", "process_tree_analysis", "resource_utilization",
    "save_metrics",
]
