/* What writing one tree sample costs the sampler thread, per output format: the
 * core/writer.c writers alone, on made-up samples of a tree of N processes (no /proc, no
 * Python), so that the figure is the writer's and little else.
 *
 * Two kinds of sample: "idle" (what sleeping processes give: zero CPU, few counters) and
 * "active" (CPU figures with decimals, larger counters). Each is written to /dev/null (the
 * text alone) and to a file on DIR (text and write: /dev/shm by default, so that a disk's
 * writeback is not counted). Figures are the thread's CPU time per sample, the median of
 * 15 rounds of 50 samples, and per process in brackets.
 *
 *     make bench-writer        (or: build/bench_writer [N [DIR]])
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/writer.h"

#define ROUNDS 15
#define PER_ROUND 50

static double thread_us(void)
{
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return (double)t.tv_sec * 1e6 + (double)t.tv_nsec / 1e3;
}

static void fill(struct dn_metrics *m, int i, int active)
{
    memset(m, 0, sizeof *m);
    m->ts_ms = 1795689941650 + i;
    m->cpu_usage = active ? 12.345 + i * 0.001 : 0.0;
    m->mem_rss_kb = 1560 + i;
    m->mem_vms_kb = 2592 + 3 * i;
    m->disk_write_bytes = active ? 4096u * i : 0;
    m->syscall_read_bytes = 3980 + 17 * i;
    m->syscall_write_bytes = active ? 123456 + i : 0;
    m->page_faults_cached = 70 + i;
    m->sys_net_rx_bytes = 123456789;
    m->sys_net_tx_bytes = 98765432;
    m->thread_count = 1;
    m->uptime_secs = 12;
    m->cpu_core = i % 2;
    m->gpu_memory_bytes = m->gpu_sm_utilization = DN_U64_NONE;
    m->sock_rx_bytes = m->sock_tx_bytes = DN_U64_NONE;
    m->sock_rx_bytes_remote = m->sock_tx_bytes_remote = DN_U64_NONE;
    /* nanoseconds as seconds, as the collector gives them */
    m->cpu_user_secs = active ? (1234567.0 + 1000 * i) / 1e9 : 0.00123;
    m->cpu_system_secs = active ? (987654.0 + 777 * i) / 1e9 : 0.0;
    m->ctx_switches_voluntary = 2 + i;
    m->ctx_switches_involuntary = i % 3;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Median µs per sample written to path, or a negative number when it cannot be opened. */
static double time_writer(const struct dn_sample *s, enum dn_format fmt, const char *path)
{
    double t[ROUNDS];
    for (int r = 0; r < ROUNDS; r++) {
        struct dn_writer w;
        if (dn_writer_open(&w, path, fmt))
            return -1;
        dn_writer_sample(&w, s); /* buffers grown, keys escaped */
        double t0 = thread_us();
        for (int k = 0; k < PER_ROUND; k++)
            dn_writer_sample(&w, s);
        t[r] = (thread_us() - t0) / PER_ROUND;
        dn_writer_close(&w);
    }
    qsort(t, ROUNDS, sizeof t[0], cmp);
    return t[ROUNDS / 2];
}

int main(int argc, char **argv)
{
    int n = argc > 1 ? atoi(argv[1]) : 200;
    const char *dir = argc > 2 ? argv[2] : access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    if (n < 1)
        return 2;
    char path[4096];
    snprintf(path, sizeof path, "%s/denet-bench-writer-%d", dir, (int)getpid());
    struct dn_child *children = NULL; /* as the collector makes it (dn_sample_clear frees it) */
    size_t cap = 0;
    if (dn_children_grow(&children, &cap, (size_t)n, (size_t)n))
        return 1;
    memset(children, 0, (size_t)n * sizeof *children);
    printf("writing one tree sample of %d processes: µs per sample (µs per process), thread "
           "CPU time, median of %d rounds\n",
           n, ROUNDS);
    printf("%-6s %-7s %18s %18s\n", "format", "sample", "text (/dev/null)", "text + write");
    static const char *const names[] = {"jsonl", "json", "csv"};
    for (int active = 0; active < 2; active++) {
        struct dn_sample s;
        memset(&s, 0, sizeof s);
        s.tree = true;
        s.ts_ms = 1795689941650;
        s.has_parent = true;
        fill(&s.parent, 0, active);
        s.nchildren = (size_t)n - 1;
        s.children = children;
        for (int i = 0; i < n - 1; i++) {
            children[i].pid = 100000 + i;
            children[i].ppid = 99999;
            children[i].command = "sleep 600";
            fill(&children[i].metrics, i + 1, active);
        }
        s.has_aggregated = true;
        fill(&s.aggregated, 0, active);
        s.process_count = (uint64_t)n;
        for (size_t f = 0; f < sizeof names / sizeof names[0]; f++) {
            enum dn_format fmt;
            dn_format_parse(names[f], &fmt);
            double text = time_writer(&s, fmt, "/dev/null");
            double file = time_writer(&s, fmt, path);
            unlink(path);
            if (text < 0 || file < 0) {
                fprintf(stderr, "cannot write %s\n", text < 0 ? "/dev/null" : path);
                return 1;
            }
            char a[40], b[40];
            snprintf(a, sizeof a, "%.0f (%.2f)", text, text / n);
            snprintf(b, sizeof b, "%.0f (%.2f)", file, file / n);
            printf("%-6s %-7s %18s %18s\n", names[f], active ? "active" : "idle", a, b);
        }
    }
    printf("(the file in %s)\n", dir);
    dn_children_unref(children);
    return 0;
}
