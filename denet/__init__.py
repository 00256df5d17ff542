"""denet: a Linux process monitor with a native sampler and eBPF collectors.

    import denet
    mon = denet.ProcessMonitor(["python3", "train.py"])
    exit_code = mon.run()
    print(mon.get_summary())
"""
import atexit as _atexit

from . import _denet
from ._denet import SCHEMA, SYSCALL_CATEGORIES, ProcessMonitor, ebpf_available

__version__ = "0.6.0"

# The sampler threads never touch Python objects; stopping them at exit flushes output
# files and writes their summary lines before the interpreter goes away.
_atexit.register(_denet._stop_all)

__all__ = ["ProcessMonitor", "SCHEMA", "SYSCALL_CATEGORIES", "ebpf_available"]
