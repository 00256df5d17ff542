#include "ebpf_common.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <bpf/libbpf.h>

void dn_ebpf_explain(char *buf, size_t len, const char *what, int neg_errno)
{
    int e = neg_errno < 0 ? -neg_errno : neg_errno;
    const char *fix;
    if (e == EPERM || e == EACCES)
        fix = geteuid() == 0
                  ? "the kernel refused BPF to root (lockdown or a seccomp policy?); check "
                    "kernel.unprivileged_bpf_disabled and the container's capabilities"
                  : "run as root or grant CAP_BPF and CAP_PERFMON (for example: sudo setcap "
                    "cap_bpf,cap_perfmon+ep on the Python interpreter)";
    else if (e == ENOENT || e == ESRCH)
        fix = "the kernel lacks BTF or the tracepoint; a kernel with "
              "CONFIG_DEBUG_INFO_BTF=y (/sys/kernel/btf/vmlinux) is needed";
    else if (e == ENOTSUP || e == EOPNOTSUPP || e == EINVAL)
        fix = "the kernel does not support BTF tracepoints (tp_btf); Linux 5.5 or newer "
              "with CONFIG_DEBUG_INFO_BTF=y is needed";
    else if (e == ENOMEM || e == E2BIG)
        fix = "raise the locked-memory limit (ulimit -l) or free memory";
    else
        fix = "set DENET_DEBUG_BPF=1 to see libbpf's log";
    snprintf(buf, len, "%s failed: %s; %s", what, strerror(e), fix);
}

static int print_fn(enum libbpf_print_level level, const char *fmt, va_list args)
{
    static int enabled = -1;
    if (enabled < 0)
        enabled = getenv("DENET_DEBUG_BPF") != NULL;
    if (!enabled || level == LIBBPF_DEBUG)
        return 0;
    return vfprintf(stderr, fmt, args);
}

void dn_ebpf_init_logging(void)
{
    libbpf_set_print(print_fn);
}
