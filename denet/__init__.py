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
from ._denet import perf_available, sock_available
from ._summary import generate_summary_from_file, generate_summary_from_metrics_json
from .analysis import (aggregate_metrics, convert_format, find_peaks, load_metrics,
                       process_tree_analysis, resource_utilization, save_metrics)
from .execute import execute_with_monitoring
from . import _monitor_extras

__version__ = "0.6.0"  # the one version: pyproject.toml reads it from here

# The sampler threads never touch Python objects; stopping them at exit flushes output
# files and writes their summary lines before the interpreter goes away.
_atexit.register(_denet._stop_all)
# A forked child has no sampler threads: its copies of running monitors become inert.
_os.register_at_fork(after_in_child=_denet._after_fork_child)

# ProcessMonitor._repr_html_ (the HTML report in Jupyter), .to_dataframe(), .plot()
_monitor_extras.install(ProcessMonitor)


def __getattr__(name):
    # denet.SummaryTable lives in denet.report, imported on first use
    if name == "SummaryTable":
        from .report import SummaryTable

        return SummaryTable
    raise AttributeError(f"module 'denet' has no attribute {name!r}")


def load_ipython_extension(ipython):
    """``%load_ext denet`` registers the ``%%denet`` cell magic (see denet.jupyter)."""
    from .jupyter import load_ipython_extension as load  # IPython only when asked for

    load(ipython)


__all__ = [
    "ProcessMonitor", "SCHEMA", "SYSCALL_CATEGORIES", "ebpf_available", "gpu_available",
    "sock_available", "perf_available",
    "execute_with_monitoring", "generate_summary_from_file",
    "generate_summary_from_metrics_json", "analysis", "aggregate_metrics", "convert_format",
    "find_peaks", "load_metrics", "process_tree_analysis", "resource_utilization",
    "save_metrics", "SummaryTable", "load_ipython_extension",
]
