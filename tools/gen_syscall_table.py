#!/usr/bin/env python3
"""Generate csrc/syscall_table.c: syscall number -> (name, category), as data.

Numbers and names come from the kernel UAPI headers installed on this machine
(linux-libc-dev), plus the numbers newer than those headers, listed below; the
category of each name is the CATEGORY table below, assigned by what the call does.

    python3 tools/gen_syscall_table.py > csrc/syscall_table.c

The generated file is committed; the build never runs this script.
"""

import re
import subprocess
import sys

X86_64_HEADER = "/usr/include/x86_64-linux-gnu/asm/unistd_64.h"
GENERIC_HEADER = "/usr/include/asm-generic/unistd.h"

# The __ARCH_WANT_* switches arm64's own asm/unistd.h sets before it includes
# asm-generic/unistd.h (kernel: arch/arm64, "syscall_abis_64 += renameat rlimit
# memfd_secret" plus the 64-bit new stat); with them the generic header yields
# exactly arm64's native table.
ARM64_WANT = ["RENAMEAT", "NEW_STAT", "SET_GET_RLIMIT", "TIME32_SYSCALLS",
              "SYS_CLONE3", "MEMFD_SECRET"]

# Since 424 every architecture uses the same numbers; these are newer than the
# installed headers (which stop at 450) and run through Linux 6.18.
NEWER = {
    451: "cachestat", 452: "fchmodat2", 453: "map_shadow_stack",
    454: "futex_wake", 455: "futex_wait", 456: "futex_requeue",
    457: "statmount", 458: "listmount", 459: "lsm_get_self_attr",
    460: "lsm_set_self_attr", 461: "lsm_list_modules", 462: "mseal",
    463: "setxattrat", 464: "getxattrat", 465: "listxattrat",
    466: "removexattrat", 467: "open_tree_attr", 468: "file_getattr",
    469: "file_setattr",
}

CATEGORIES = ["file_io", "memory", "process", "network", "time", "ipc",
              "security", "signal", "system", "other"]

_GROUPS = {
    # Data and metadata of files and descriptors, fd readiness (poll/select/epoll),
    # async I/O (aio, io_uring), directory and path operations, file notifications.
    "file_io": """
        read write open close stat fstat lstat newfstatat statx poll ppoll select
        pselect6 lseek ioctl pread64 pwrite64 readv writev preadv pwritev preadv2
        pwritev2 access faccessat faccessat2 dup dup2 dup3 sendfile copy_file_range
        splice tee vmsplice fcntl flock fsync fdatasync sync syncfs sync_file_range
        truncate ftruncate fallocate fadvise64 readahead getdents getdents64 getcwd
        chdir fchdir chroot rename renameat renameat2 mkdir mkdirat rmdir creat
        link linkat unlink unlinkat symlink symlinkat readlink readlinkat mknod
        mknodat openat openat2 close_range name_to_handle_at open_by_handle_at
        utime utimes futimesat utimensat statfs fstatfs ustat
        setxattr lsetxattr fsetxattr getxattr lgetxattr fgetxattr listxattr
        llistxattr flistxattr removexattr lremovexattr fremovexattr setxattrat
        getxattrat listxattrat removexattrat file_getattr file_setattr
        epoll_create epoll_create1 epoll_ctl epoll_wait epoll_pwait epoll_pwait2
        epoll_ctl_old epoll_wait_old inotify_init inotify_init1 inotify_add_watch
        inotify_rm_watch fanotify_init fanotify_mark
        io_setup io_destroy io_getevents io_pgetevents io_submit io_cancel
        io_uring_setup io_uring_enter io_uring_register
    """,
    # Address space, protection, NUMA placement, page cache residency, swap.
    "memory": """
        mmap munmap mprotect brk mremap msync mincore madvise remap_file_pages
        mlock mlock2 munlock mlockall munlockall mbind set_mempolicy
        get_mempolicy set_mempolicy_home_node migrate_pages move_pages
        process_vm_readv process_vm_writev process_madvise process_mrelease
        memfd_create memfd_secret userfaultfd membarrier pkey_mprotect pkey_alloc
        pkey_free map_shadow_stack mseal cachestat swapon swapoff
    """,
    # Life cycle, identity, tree, resource limits and usage, per-thread setup,
    # namespaces of a process.
    "process": """
        clone clone3 fork vfork execve execveat exit exit_group wait4 waitid
        getpid getppid gettid set_tid_address getpgid setpgid getpgrp getsid
        setsid ptrace prctl arch_prctl personality uselib getrusage times
        getrlimit setrlimit prlimit64 set_thread_area get_thread_area modify_ldt
        unshare setns kcmp rseq pidfd_open pidfd_getfd
    """,
    "network": """
        socket socketpair connect accept accept4 bind listen shutdown sendto
        recvfrom sendmsg recvmsg sendmmsg recvmmsg getsockname getpeername
        setsockopt getsockopt
    """,
    # Clocks, timers, sleeping, and scheduling (policy, priority, affinity, yield).
    "time": """
        time gettimeofday settimeofday adjtimex clock_gettime clock_settime
        clock_getres clock_nanosleep clock_adjtime nanosleep alarm getitimer
        setitimer timer_create timer_settime timer_gettime timer_getoverrun
        timer_delete timerfd_create timerfd_settime timerfd_gettime
        sched_yield sched_setparam sched_getparam sched_setscheduler
        sched_getscheduler sched_get_priority_max sched_get_priority_min
        sched_rr_get_interval sched_setaffinity sched_getaffinity sched_setattr
        sched_getattr getpriority setpriority ioprio_set ioprio_get getcpu
    """,
    # Futexes (the primitive under every user-space lock), pipes, eventfd,
    # System V and POSIX message queues, semaphores, shared memory.
    "ipc": """
        futex futex_waitv futex_wake futex_wait futex_requeue set_robust_list
        get_robust_list pipe pipe2 eventfd eventfd2 shmget shmat shmctl shmdt
        semget semop semctl semtimedop msgget msgsnd msgrcv msgctl mq_open
        mq_unlink mq_timedsend mq_timedreceive mq_notify mq_getsetattr
    """,
    # Credentials, permissions and modes, capabilities, keys, sandboxing, LSMs.
    "security": """
        getuid getgid geteuid getegid setuid setgid setreuid setregid setresuid
        getresuid setresgid getresgid setfsuid setfsgid getgroups setgroups
        capget capset umask chmod fchmod fchmodat fchmodat2 chown fchown lchown
        fchownat add_key request_key keyctl seccomp landlock_create_ruleset
        landlock_add_rule landlock_restrict_self lsm_get_self_attr
        lsm_set_self_attr lsm_list_modules
    """,
    "signal": """
        kill tkill tgkill rt_sigaction rt_sigprocmask rt_sigreturn rt_sigpending
        rt_sigtimedwait rt_sigqueueinfo rt_tgsigqueueinfo rt_sigsuspend
        sigaltstack signalfd signalfd4 pause restart_syscall pidfd_send_signal
    """,
    # Whole-system configuration and information: host, mounts, modules, kexec,
    # accounting, quotas, hardware ports, tracing and BPF, kernel entropy.
    "system": """
        uname sysinfo syslog sysfs _sysctl vhangup reboot sethostname
        setdomainname acct iopl ioperm mount umount2 pivot_root open_tree
        open_tree_attr move_mount fsopen fsconfig fsmount fspick mount_setattr
        statmount listmount quotactl quotactl_fd create_module init_module
        finit_module delete_module get_kernel_syms query_module kexec_load
        kexec_file_load nfsservctl lookup_dcookie perf_event_open bpf getrandom
    """,
    # Reserved numbers that were never implemented (always ENOSYS).
    "other": """
        afs_syscall tuxcall security vserver getpmsg putpmsg
    """,
}

CATEGORY = {}
for _cat, _names in _GROUPS.items():
    for _n in _names.split():
        if _n in CATEGORY:
            sys.exit(f"{_n} is in both {CATEGORY[_n]} and {_cat}")
        CATEGORY[_n] = _cat


def x86_64_table():
    table = {}
    with open(X86_64_HEADER) as f:
        for line in f:
            m = re.match(r"#define __NR_(\w+)\s+(\d+)\s*$", line)
            if m:
                table[int(m.group(2))] = m.group(1)
    return table


def arm64_table():
    cmd = ["cpp", "-dM", "-D__BITS_PER_LONG=64"]
    cmd += ["-D__ARCH_WANT_" + w for w in ARM64_WANT]
    cmd.append(GENERIC_HEADER)
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    defs = {}
    for line in out.splitlines():
        m = re.match(r"#define (__NR\w+) (\S+)$", line)
        if m:
            defs[m.group(1)] = m.group(2)

    def value(tok):
        while tok in defs:        # __NR_fcntl -> __NR3264_fcntl -> 25
            tok = defs[tok]
        return int(tok)

    table = {}
    for macro in defs:
        if not macro.startswith("__NR_"):
            continue                      # __NR3264_* are the aliases' targets
        name = macro[len("__NR_"):]
        if name in ("syscalls", "arch_specific_syscall"):
            continue                      # markers, not system calls
        table[value(macro)] = name
    return table


def add_newer(table):
    for nr, name in NEWER.items():
        if nr in table and table[nr] != name:
            sys.exit(f"header has {table[nr]} at {nr}, expected {name}")
        table[nr] = name
    return table


def emit_table(out, table):
    names = list(table.values())
    dup = {n for n in names if names.count(n) > 1}
    if dup:
        sys.exit(f"duplicate names: {sorted(dup)}")
    missing = sorted(n for n in names if n not in CATEGORY)
    if missing:
        sys.exit(f"no category for: {missing}")
    for nr in sorted(table):
        if nr >= 512:
            sys.exit(f"{table[nr]} = {nr} does not fit DN_SYSCALL_MAX")
        name = table[nr]
        out.append(f'    [{nr}] = {{"{name}", DN_CAT_{CATEGORY[name].upper()}}},')


def main():
    x86 = add_newer(x86_64_table())
    arm = add_newer(arm64_table())
    used = set(x86.values()) | set(arm.values())
    unused = sorted(set(CATEGORY) - used)
    if unused:
        sys.exit(f"CATEGORY names no syscall: {unused}")

    out = [
        "/* Generated by tools/gen_syscall_table.py from the kernel UAPI headers plus",
        " * the numbers up to Linux 6.18. Edit the script, not this file. */",
        '#include "syscall_table.h"',
        "",
        "#include <stdio.h>",
        "#include <string.h>",
        "",
        "struct dn_syscall_entry {",
        "    const char *name;                  /* NULL: number unused on this arch */",
        "    enum dn_syscall_category category;",
        "};",
        "",
        "#if defined(__x86_64__)",
        '#define DN_SYSCALL_ARCH "x86_64"',
        "static const struct dn_syscall_entry dn_syscall_table[] = {",
    ]
    emit_table(out, x86)
    out += [
        "};",
        "#elif defined(__aarch64__)",
        '#define DN_SYSCALL_ARCH "arm64"',
        "static const struct dn_syscall_entry dn_syscall_table[] = {",
    ]
    emit_table(out, arm)
    out += [
        "};",
        "#else",
        "/* No table: every number reads as syscall_<nr> in category other. */",
        '#define DN_SYSCALL_ARCH "unknown"',
        "static const struct dn_syscall_entry dn_syscall_table[] = {",
        "    [0] = {NULL, DN_CAT_OTHER},",
        "};",
        "#endif",
        "",
        "#define DN_TABLE_LEN ((long)(sizeof dn_syscall_table / sizeof dn_syscall_table[0]))",
        "",
        "_Static_assert(DN_TABLE_LEN <= DN_SYSCALL_MAX, \"table exceeds DN_SYSCALL_MAX\");",
        "",
        "static const char *const dn_category_names[DN_CAT_COUNT] = {",
    ]
    out += [f'    [DN_CAT_{c.upper()}] = "{c}",' for c in CATEGORIES]
    out += [
        "};",
        "",
        "const char *dn_category_name(enum dn_syscall_category c)",
        "{",
        "    /* The enum may arrive from an int: never index out of bounds. */",
        "    if ((int)c < 0 || c >= DN_CAT_COUNT)",
        "        return dn_category_names[DN_CAT_OTHER];",
        "    return dn_category_names[c];",
        "}",
        "",
        "static const struct dn_syscall_entry *lookup(long nr)",
        "{",
        "    if (nr < 0 || nr >= DN_TABLE_LEN || dn_syscall_table[nr].name == NULL)",
        "        return NULL;",
        "    return &dn_syscall_table[nr];",
        "}",
        "",
        "enum dn_syscall_category dn_syscall_category(long nr)",
        "{",
        "    const struct dn_syscall_entry *e = lookup(nr);",
        "    return e ? e->category : DN_CAT_OTHER;",
        "}",
        "",
        "const char *dn_syscall_name(long nr, char *buf, size_t buflen)",
        "{",
        "    const struct dn_syscall_entry *e = lookup(nr);",
        "    if (e)",
        "        return e->name;",
        "    if (buf == NULL || buflen == 0)",
        '        return "syscall_unknown";    /* no room for the number */',
        '    snprintf(buf, buflen, "syscall_%ld", nr);',
        "    return buf;",
        "}",
        "",
        "long dn_syscall_number(const char *name)",
        "{",
        "    if (name == NULL)",
        "        return -1;",
        "    /* Linear scan: under 512 entries, called rarely (tests, filters). */",
        "    for (long nr = 0; nr < DN_TABLE_LEN; nr++)",
        "        if (dn_syscall_table[nr].name && strcmp(dn_syscall_table[nr].name, name) == 0)",
        "            return nr;",
        "    return -1;",
        "}",
        "",
        "const char *dn_syscall_arch(void)",
        "{",
        "    return DN_SYSCALL_ARCH;",
        "}",
    ]
    print("\n".join(out))


if __name__ == "__main__":
    main()
