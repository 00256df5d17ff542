#include "core/extras.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/procfs.h"
#include "core/session.h"
#include "ebpf/tracked.h"

#define EBPF_HOWTO "pass enable_ebpf=True (CLI: --enable-ebpf); it needs root or CAP_BPF and CAP_PERFMON"

void dn_extras_init(struct dn_session *s)
{
    memset(&s->ex, 0, sizeof s->ex);
    s->ex.psi.fd = -1;
}

void dn_extras_destroy(struct dn_session *s)
{
    dn_sock_close(s->ex.sock);
    dn_perf_close(s->ex.perf);
    dn_psi_close(&s->ex.psi);
    free(s->ex.sock_error);
    dn_env_free(&s->ex.env);
    dn_extras_init(s);
}

static void set_sock_error(struct dn_session *s, const char *why)
{
    free(s->ex.sock_error);
    s->ex.sock_error = why ? strdup(why) : NULL;
}

void dn_extras_open_ebpf(struct dn_session *s)
{
    char err[512];
    if (!s->tracker)
        return;
    if (getenv("DENET_NO_SOCK")) { /* benchmarks: the other collectors without this one */
        set_sock_error(s, "the socket counter was turned off (DENET_NO_SOCK is set)");
        return;
    }
    if (dn_session_fds_short("the socket counter", err, sizeof err)) {
        set_sock_error(s, err);
        return;
    }
    if (dn_sock_open(&s->ex.sock, dn_tracker_map_fd(s->tracker),
                     dn_tracker_live_map_fd(s->tracker), err, sizeof err) != 0) {
        set_sock_error(s, err); /* monitoring and the other eBPF figures go on */
        return;
    }
    if (!s->o.include_children)
        dn_sock_only_tgid(s->ex.sock, 0); /* set to the root once it is known */
}

void dn_extras_ebpf_failed(struct dn_session *s)
{
    dn_sock_close(s->ex.sock);
    s->ex.sock = NULL;
    set_sock_error(s, NULL);
}

bool dn_extras_wants_hold(struct dn_session *s)
{
    (void)s;
    const char *v = getenv("DENET_PERF_SOFTWARE");
    return (v && v[0] && strcmp(v, "0") != 0) || dn_perf_probe(NULL);
}

void dn_extras_process(struct dn_session *s, pid_t pid, bool held)
{
    if (s->ex.sock && !s->o.include_children)
        dn_sock_only_tgid(s->ex.sock, pid);
    if (!s->ex.perf) {
        s->ex.perf = dn_perf_open(pid, held, &s->md.caps);
        s->ex.perf_software = s->ex.perf && s->ex.perf->software;
    }
}

bool dn_delayacct_on(void)
{
    FILE *f = fopen("/proc/sys/kernel/task_delayacct", "re");
    int v = 0;
    if (!f)
        return false;
    if (fscanf(f, "%d", &v) != 1)
        v = 0;
    fclose(f);
    return v == 1;
}

/* kernel.task_delayacct: 1 when block I/O delay is being accounted. */
static void delayacct_capability(struct dn_cap *c)
{
    FILE *f = fopen("/proc/sys/kernel/task_delayacct", "re");
    if (!f) {
        dn_cap_set(c, false,
                   "this kernel has no delay accounting switch (kernel.task_delayacct): it was "
                   "built without CONFIG_TASK_DELAY_ACCT, or predates 5.14");
        return;
    }
    int v = -1;
    if (fscanf(f, "%d", &v) != 1)
        v = -1;
    fclose(f);
    if (v == 1)
        dn_cap_set(c, true, NULL);
    else
        dn_cap_set(c, false,
                   "the kernel is not accounting block I/O delay (kernel.task_delayacct=%d): "
                   "enable it with sysctl kernel.task_delayacct=1 (root) or boot with delayacct",
                   v);
}

void dn_extras_begin_locked(struct dn_session *s)
{
    struct dn_capabilities *c = &s->md.caps;
    c->known = true;
    if (!s->o.enable_ebpf)
        dn_cap_set(&c->ebpf, false, "not requested: %s", EBPF_HOWTO);
    else if (!s->tracker || (!s->syscalls && !s->offcpu))
        dn_cap_set(&c->ebpf, false, "%s", s->ebpf_error ? s->ebpf_error : "eBPF did not load");
    else
        dn_cap_set(&c->ebpf, true, NULL);
    if (!s->o.enable_ebpf)
        dn_cap_set(&c->sock, false,
                   "per-process socket bytes need eBPF on Linux 6.5 or newer: %s", EBPF_HOWTO);
    else if (s->ex.sock)
        dn_cap_set(&c->sock, true, NULL);
    else if (s->ex.sock_error)
        dn_cap_set(&c->sock, false, "%s", s->ex.sock_error);
    else
        dn_cap_set(&c->sock, false, "eBPF is unavailable: %s",
                   s->ebpf_error ? s->ebpf_error : "it did not load");
    /* No perf counters were opened: say why (the probe's reason). */
    if (!s->ex.perf) {
        c->perf_hw.nevents = 0;
        if (!dn_perf_probe(NULL)) {
            dn_perf_probe(c); /* the probe's reason */
        } else if (c->perf_hw.available || !c->perf_hw.reason[0]) {
            c->perf_hw.available = false;
            snprintf(c->perf_hw.reason, sizeof c->perf_hw.reason,
                     "the counters could not be opened on the monitored process");
        }
    }
    if (s->gpu)
        dn_cap_set(&c->gpu, true, NULL);
    else if (s->o.gpu == DN_GPU_OFF)
        dn_cap_set(&c->gpu, false, "GPU monitoring was not asked for (gpu=False, --no-gpu)");
    else
        dn_cap_set(&c->gpu, false, "%s", s->gpu_error ? s->gpu_error : "NVML did not load");
    delayacct_capability(&c->delayacct);
    dn_psi_open(&s->ex.psi, s->pid, c);

    if (s->o.write_env) {
        dn_env_read(&s->ex.env, s->pid);
        s->ex.have_env = true;
        if (dn_writer_is_open(&s->writer))
            dn_writer_env(&s->writer, &s->ex.env);
    }
}

const struct dn_env *dn_session_env(struct dn_session *s)
{
    pthread_mutex_lock(&s->lock);
    if (!s->ex.have_env) {
        dn_env_read(&s->ex.env, s->pid);
        s->ex.have_env = true;
    }
    pthread_mutex_unlock(&s->lock);
    return &s->ex.env;
}

static void set_sock(struct dn_metrics *m, const struct dn_sock_counts *c)
{
    m->sock_rx_bytes = c->rx;
    m->sock_tx_bytes = c->tx;
    /* Datagrams whose peer could not be told make the remote part unknown, not a guess. */
    m->sock_rx_bytes_remote = c->rx_unknown ? DN_U64_NONE : c->rx - c->rx_lo;
    m->sock_tx_bytes_remote = c->tx - c->tx_lo;
}

static void fill_sock(struct dn_session *s, struct dn_sample *x)
{
    if (!s->ex.sock || dn_sock_snapshot(s->ex.sock) != 0)
        return; /* null, as the collector left them; the reason is in the capabilities */
    struct dn_sock_counts c, sum = {0};
    if (x->has_parent) {
        dn_sock_get(s->ex.sock, s->pid, &c);
        set_sock(&x->parent, &c);
        sum = c;
    }
    for (size_t i = 0; i < x->nchildren; i++) {
        dn_sock_get(s->ex.sock, x->children[i].pid, &c);
        set_sock(&x->children[i].metrics, &c);
        sum.rx += c.rx;
        sum.tx += c.tx;
        sum.rx_lo += c.rx_lo;
        sum.tx_lo += c.tx_lo;
        sum.rx_unknown += c.rx_unknown;
    }
    if (x->has_aggregated)
        set_sock(&x->aggregated, &sum);
}

void dn_extras_sample_locked(struct dn_session *s, struct dn_sample *x)
{
    fill_sock(s, x);
    double some, full;
    if (s->ex.psi.fd >= 0 && dn_psi_read(&s->ex.psi, &some, &full) == 0) {
        x->has_psi = true;
        x->psi_some_avg10 = some;
        x->psi_full_avg10 = full;
        s->ex.psi_sum += some;
        s->ex.psi_n++;
    }
    if (s->ex.perf) {
        uint64_t now[DN_PERF_NEVENTS];
        unsigned valid;
        dn_perf_read(s->ex.perf, now, &valid);
        x->perf_valid = valid;
        for (int i = 0; i < DN_PERF_NEVENTS; i++) {
            if (!(valid & (1u << i)))
                continue;
            uint64_t last = (s->ex.perf_last_valid & (1u << i)) ? s->ex.perf_last[i] : 0;
            x->perf[i] = now[i] > last ? now[i] - last : 0;
            s->ex.perf_last[i] = now[i];
        }
        s->ex.perf_last_valid |= valid;
    }
}

void dn_extras_summary_locked(struct dn_session *s, struct dn_summary *sum)
{
    struct dn_summary_ext *x = &sum->ext;
    memset(x, 0, sizeof *x);
    if (s->ex.sock_final || (s->ex.sock && dn_sock_snapshot(s->ex.sock) == 0)) {
        struct dn_sock_counts c = s->ex.sock_totals;
        if (!s->ex.sock_final)
            dn_sock_totals(s->ex.sock, &c);
        x->sock = true;
        x->sock_rx = c.rx;
        x->sock_tx = c.tx;
        x->sock_rx_remote = c.rx_unknown ? DN_U64_NONE : c.rx - c.rx_lo;
        x->sock_tx_remote = c.tx - c.tx_lo;
    }
    /* Counter totals: a fresh read while counting, the last one after. */
    uint64_t totals[DN_PERF_NEVENTS];
    unsigned valid = s->ex.perf_last_valid;
    memcpy(totals, s->ex.perf_last, sizeof totals);
    if (s->ex.perf) {
        uint64_t now[DN_PERF_NEVENTS];
        unsigned v;
        dn_perf_read(s->ex.perf, now, &v);
        for (int i = 0; i < DN_PERF_NEVENTS; i++)
            if (v & (1u << i))
                totals[i] = now[i];
        valid |= v;
    }
    struct dn_memchar m;
    /* The test mode's software events are no measure of the memory system. */
    dn_memchar_compute(totals, s->ex.perf_software ? 0 : valid, s->ex.psi_sum, s->ex.psi_n, &m);
    x->have_memchar = true;
    x->mean_ipc = m.mean_ipc;
    x->llc_miss_rate = m.llc_miss_rate;
    x->backend_stall_ratio = m.backend_stall_ratio;
    x->psi_some_fraction = m.psi_some_fraction;
    x->verdict = m.verdict;
}

void dn_extras_after_fork_child(struct dn_session *s)
{
    dn_sock_close(s->ex.sock);
    s->ex.sock = NULL;
    dn_perf_close(s->ex.perf);
    s->ex.perf = NULL;
}

void dn_extras_finish_locked(struct dn_session *s)
{
    if (s->ex.sock) {
        if (dn_sock_snapshot(s->ex.sock) == 0) {
            dn_sock_totals(s->ex.sock, &s->ex.sock_totals);
            s->ex.sock_final = true;
        }
        dn_sock_close(s->ex.sock);
        s->ex.sock = NULL;
    }
    if (s->ex.perf) {
        uint64_t now[DN_PERF_NEVENTS];
        unsigned v;
        dn_perf_read(s->ex.perf, now, &v);
        for (int i = 0; i < DN_PERF_NEVENTS; i++)
            if (v & (1u << i))
                s->ex.perf_last[i] = now[i];
        s->ex.perf_last_valid |= v;
        dn_perf_close(s->ex.perf);
        s->ex.perf = NULL;
    }
}
