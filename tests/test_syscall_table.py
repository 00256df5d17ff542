"""The syscall table as seen from Python: real names for every number, and the category
fixes over the reference's number ranges (SPEC §3)."""
import re

import pytest

from denet import _denet

FIXED = {
    "futex": "ipc",
    "fcntl": "file_io",
    "flock": "file_io",
    "fsync": "file_io",
    "getdents64": "file_io",
    "chdir": "file_io",
    "uname": "system",
    "kill": "signal",
    "tgkill": "signal",
    "clone3": "process",
    "sendmsg": "network",
    "recvmsg": "network",
}


@pytest.mark.parametrize("name,category", sorted(FIXED.items()))
def test_fixed_categories_by_name(name, category):
    assert _denet.syscall_category(name) == category


@pytest.mark.parametrize("name,category", sorted(FIXED.items()))
def test_fixed_categories_by_number(name, category):
    nr = _denet.syscall_number(name)
    assert nr >= 0
    assert _denet.syscall_name(nr) == name
    assert _denet.syscall_category(nr) == category


@pytest.mark.parametrize("name,category", [
    ("read", "file_io"), ("openat", "file_io"), ("mmap", "memory"), ("brk", "memory"),
    ("execve", "process"), ("getppid", "process"), ("socket", "network"),
    ("clock_gettime", "time"), ("nanosleep", "time"), ("rt_sigaction", "signal"),
])
def test_common_categories(name, category):
    assert _denet.syscall_category(name) == category


def test_categories_are_the_ten_reference_names():
    assert _denet.SYSCALL_CATEGORIES == ("file_io", "memory", "process", "network", "time",
                                         "ipc", "security", "signal", "system", "other")


@pytest.mark.skipif(_denet.SYSCALL_ARCH != "x86_64", reason="x86_64 numbers")
def test_x86_64_numbers():
    assert _denet.syscall_number("getppid") == 110
    assert _denet.syscall_number("futex") == 202
    assert _denet.syscall_name(0) == "read"
    assert _denet.syscall_name(435) == "clone3"


def test_every_number_of_the_table_has_a_real_name_and_a_category():
    names = set()
    for nr in range(0, 512):
        name = _denet.syscall_name(nr)
        cat = _denet.syscall_category(nr)
        assert cat in _denet.SYSCALL_CATEGORIES
        if not name.startswith("syscall_"):
            assert re.fullmatch(r"[a-z_0-9]+", name), name
            assert _denet.syscall_number(name) == nr
            names.add(name)
        else:
            assert cat == "other"
    if _denet.SYSCALL_ARCH != "unknown":
        assert len(names) > 300


def test_unknown_numbers_and_names():
    assert _denet.syscall_name(100000) == "syscall_100000"
    assert _denet.syscall_category(100000) == "other"
    assert _denet.syscall_category(-1) == "other"
    assert _denet.syscall_number("no_such_call") == -1
    with pytest.raises(ValueError):
        _denet.syscall_category("no_such_call")
