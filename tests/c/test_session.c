/* Drives a sampling session with no Python at all: what csrc/core promises on its own.
 * Ground truth: `head -c N /dev/zero` into /dev/null writes exactly N bytes (wchar), read
 * from its zombie at exit whether the sampler thread or sample_once() takes the last
 * sample; a command that exits 3 reports 3. */
#include <fcntl.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/procfs.h"
#include "core/memchar.h"
#include "core/sample.h"
#include "core/session.h"
#include "ebpf/ebpf_sample.h"

#include "check.h"

static char **strv(const char *const *v)
{
    size_t n = 0;
    while (v[n])
        n++;
    char **out = calloc(n + 1, sizeof *out);
    for (size_t i = 0; i < n; i++)
        out[i] = strdup(v[i]);
    return out;
}

static int run(const char *const *argv, bool threaded, struct dn_summary *sum, int *code)
{
    struct dn_session_opts o = {.base_ms = 10, .max_ms = 10, .include_children = true,
                                .store_in_memory = true};
    struct dn_session s;
    dn_session_init(&s, &o);
    char exe[4096];
    int rc = dn_resolve_executable(argv[0], NULL, exe, sizeof exe);
    if (rc)
        return rc;
    int null_fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
    struct dn_spawn_opts so = {.path = exe, .argv = (char *const *)argv, .stdout_fd = null_fd,
                               .stderr_fd = -1};
    int child_errno;
    enum dn_spawn_stage stage;
    double t0 = dn_boottime_secs();
    rc = dn_session_spawn(&s, &so, &child_errno, &stage);
    close(null_fd);
    if (rc)
        return rc < 0 ? rc : -child_errno;
    s.md.cmd = strv(argv);
    if (dn_session_begin(&s, t0, 0) == -ESRCH)
        dn_session_mark_gone(&s);
    if (threaded) {
        dn_session_start(&s);
        while (!dn_session_wait_gone(&s, 100))
            ;
    } else {
        /* Until the root has exited; the last read is of its zombie, then it is reaped. */
        bool last = false;
        while (!last) {
            last = !dn_session_is_running(&s);
            struct dn_sample x;
            if (dn_session_sample_once(&s, &x) == 0)
                dn_sample_clear(&x);
            usleep(1000);
        }
        while (!dn_session_wait_gone(&s, 100))
            ;
    }
    rc = dn_session_stop(&s);
    struct dn_ebpf_sample *e;
    dn_session_summary(&s, sum, &e);
    dn_ebpf_sample_free(e);
    if (!dn_session_exit_code(&s, code))
        *code = -1000;
    dn_session_destroy(&s);
    return rc;
}

/* denet's verdict rules on counter totals (cycles, instructions, cache refs and misses,
 * backend stalls) and PSI: the same table as tests/test_memchar.py runs through the
 * Python port. */
static void test_memchar_rules(void)
{
    static const struct {
        uint64_t t[DN_PERF_NEVENTS];
        unsigned valid;
        double psi_sum;
        uint64_t psi_n;
        const char *verdict;
    } cases[] = {
        {{1000, 500, 100, 50, 600}, 0x1f, 0, 0, "memory-bound"}, /* stall .6, IPC .5 */
        {{1000, 2000, 100, 5, 100}, 0x1f, 0, 0, "cpu-bound"},    /* stall .1, IPC 2 */
        {{1000, 1200, 100, 5, 300}, 0x1f, 0, 0, "mixed"},        /* stall .3, IPC 1.2 */
        {{1000, 1200, 100, 5, 300}, 0x1f, 60.0, 1, "memory-bound"}, /* ... and PSI .6 */
        {{1000, 500, 100, 50, 500}, 0x1f, 0, 0, "mixed"},        /* stall exactly .5 */
        {{0}, 0, 0, 0, "insufficient-data"},                     /* no counters */
        {{0}, 0, 80.0, 1, "memory-bound"},                       /* PSI alone says so */
        {{1000, 500, 0, 0, 0}, 0x03, 0, 0, "insufficient-data"}, /* no stall counter */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct dn_memchar m;
        dn_memchar_compute(cases[i].t, cases[i].valid, cases[i].psi_sum, cases[i].psi_n, &m);
        CHECK(strcmp(m.verdict, cases[i].verdict) == 0, "memchar case %zu: %s, want %s", i,
              m.verdict, cases[i].verdict);
    }
    struct dn_memchar m;
    const uint64_t t[DN_PERF_NEVENTS] = {1000, 1500, 200, 50, 100};
    dn_memchar_compute(t, 0x1f, 30.0, 2, &m);
    CHECK(m.mean_ipc == 1.5 && m.llc_miss_rate == 0.25 && m.backend_stall_ratio == 0.1 &&
              m.psi_some_fraction == 0.15,
          "memchar ratios %f %f %f %f", m.mean_ipc, m.llc_miss_rate, m.backend_stall_ratio,
          m.psi_some_fraction);
}

static void fill(struct dn_child *c, size_t from, size_t to)
{
    for (size_t i = from; i < to; i++) {
        memset(&c[i], 0, sizeof c[i]);
        c[i].pid = (pid_t)(1000 + i);
        c[i].metrics.mem_rss_kb = 7 * i;
    }
}

static bool filled(const struct dn_child *c, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (c[i].pid != (pid_t)(1000 + i) || c[i].metrics.mem_rss_kb != 7 * i)
            return false;
    return true;
}

/* b[0..n) equal to a[0..n), byte for byte. */
static bool same_children(const struct dn_child *a, const struct dn_child *b, size_t n)
{
    return a && b && memcmp(a, b, n * sizeof *a) == 0;
}

/* A whole copy of s's children, as the sampler built them (kept to compare). */
static struct dn_child *dup_children(const struct dn_sample *s)
{
    struct dn_child *d = malloc(s->nchildren * sizeof *d);
    if (d)
        memcpy(d, s->children, s->nchildren * sizeof *d);
    return d;
}

/* The next sample of a tree: every child's timestamp, uptime and the system's network
 * counters move (as between two samples); what `change` says moves too. */
static void next_sample(struct dn_child *c, size_t n, int64_t ts)
{
    for (size_t i = 0; i < n; i++) {
        c[i].metrics.ts_ms = ts;
        c[i].metrics.uptime_secs = (uint64_t)ts / 1000;
        c[i].metrics.sys_net_rx_bytes = (uint64_t)ts * 3;
        c[i].metrics.sys_net_tx_bytes = (uint64_t)ts * 5;
    }
}

/* Children arrays (heap, reused) and the packed children of kept samples: a child as it
 * was in the sample before is kept as its place there, the others whole; each sample
 * made again against the one before is the sample as built. Run under ASan by `make
 * asan` (a wrong size or a double unmap shows there). */
static void test_children_arrays(void)
{
    /* heap arrays: the last one freed is the next one's */
    struct dn_child *h = NULL, *k = NULL;
    size_t hcap = 0, kcap = 0;
    CHECK(dn_children_grow(&h, &hcap, 1, 32) == 0, "heap array");
    fill(h, 0, 32);
    struct dn_child *was = h;
    dn_children_unref(h);
    CHECK(dn_children_grow(&k, &kcap, 1, 16) == 0 && k == was && kcap == 32,
          "freed array reused (cap %zu)", kcap);
    CHECK(dn_children_grow(&k, &kcap, 40, 16) == 0 && kcap >= 40 && filled(k, 32),
          "reused array grows");
    dn_children_unref(k);
    dn_children_drop_spare();

    struct dn_sample_store st = {0};
    /* a: five children, packed against none: all whole */
    struct dn_sample a = {.nchildren = 5};
    size_t cap = 0;
    CHECK(dn_children_grow(&a.children, &cap, 5, 5) == 0, "array a");
    fill(a.children, 0, 5);
    next_sample(a.children, 5, 1000);
    struct dn_child *want_a = dup_children(&a);
    CHECK(dn_sample_pack(&st, &a, NULL) == 0 && a.packed, "a packed");
    size_t whole = dn_sample_packed_bytes(&a);
    CHECK(whole >= 5 * sizeof(struct dn_child), "a kept whole: %zu bytes", whole);
    /* b: one child changed, one gone, one new, the rest only a sample later */
    struct dn_sample b = {.nchildren = 5};
    cap = 0;
    CHECK(dn_children_grow(&b.children, &cap, 5, 5) == 0, "array b");
    memcpy(b.children, a.children, 5 * sizeof *b.children);
    memmove(&b.children[1], &b.children[2], 3 * sizeof *b.children); /* 1001 gone */
    b.children[4].pid = 2000; /* new */
    b.children[2].metrics.mem_rss_kb += 4; /* 1003 changed */
    next_sample(b.children, 5, 2500);
    struct dn_child *want_b = dup_children(&b);
    CHECK(dn_sample_pack(&st, &b, &a) == 0 && b.packed, "b packed");
    size_t packed_b = dn_sample_packed_bytes(&b);
    CHECK(packed_b < whole && packed_b >= 2 * sizeof(struct dn_child),
          "b keeps two children whole and three as places: %zu bytes (a: %zu)", packed_b, whole);
    /* c: the same processes in the opposite order, nothing changed */
    struct dn_sample c = {.nchildren = 5};
    cap = 0;
    CHECK(dn_children_grow(&c.children, &cap, 5, 5) == 0, "array c");
    for (size_t i = 0; i < 5; i++)
        c.children[i] = b.children[4 - i];
    next_sample(c.children, 5, 4000);
    struct dn_child *want_c = dup_children(&c);
    CHECK(dn_sample_pack(&st, &c, &b) == 0 && c.packed, "c packed");
    CHECK(dn_sample_packed_bytes(&c) < sizeof(struct dn_child),
          "c keeps only places: %zu bytes", dn_sample_packed_bytes(&c));
    /* kept: only the packed forms of a and b; made again in order */
    dn_children_unref(a.children);
    dn_children_unref(b.children);
    a.children = b.children = NULL;
    struct dn_sample b2;
    CHECK(dn_sample_copy(&b2, &b) == 0 && b2.packed == b.packed, "copies share the packed form");
    dn_sample_clear(&b); /* the copy keeps it */
    CHECK(dn_sample_unpack(&a, NULL, 0) == 0 && same_children(a.children, want_a, 5),
          "a made again");
    CHECK(dn_sample_unpack(&b2, a.children, a.nchildren) == 0 &&
          same_children(b2.children, want_b, 5), "b made again against a");
    dn_children_unref(c.children);
    c.children = NULL;
    CHECK(dn_sample_unpack(&c, b2.children, b2.nchildren) == 0 &&
          same_children(c.children, want_c, 5), "c made again against b");
    struct dn_sample c2;
    CHECK(dn_sample_copy(&c2, &c) == 0, "copy c");
    dn_children_unref(c2.children);
    c2.children = NULL;
    CHECK(dn_sample_unpack(&c2, NULL, 0) == -EINVAL && !c2.children,
          "a packed form cannot be made again without its base");
    dn_sample_clear(&c2);
    free(want_a);
    free(want_b);
    free(want_c);
    dn_sample_clear(&a);
    dn_sample_clear(&b2);
    dn_sample_clear(&c);
    dn_sample_store_close(&st);

    /* Many samples of an idle tree kept: a few bytes a child, each made again intact,
     * across chunks (a whole sample in each tenth one, 45 KB). */
    struct dn_sample_store big = {0};
    enum { KEPT = 600, N = 200 };
    struct dn_sample *kept = calloc(KEPT, sizeof *kept);
    struct dn_child *first = NULL;
    size_t bytes = 0;
    CHECK(kept != NULL, "calloc");
    for (int i = 0; kept && i < KEPT; i++) {
        size_t acap = 0;
        if (dn_children_grow(&kept[i].children, &acap, N, N) != 0) {
            CHECK(false, "array %d", i);
            break;
        }
        kept[i].nchildren = N;
        fill(kept[i].children, 0, N);
        next_sample(kept[i].children, N, 1000 * (i + 1));
        if (i % 10 == 0)
            kept[i].children[i % N].metrics.mem_rss_kb = 100000 + i;
        if (i == KEPT - 1)
            first = dup_children(&kept[i]);
        CHECK(dn_sample_pack(&big, &kept[i], i ? &kept[i - 1] : NULL) == 0, "pack %d", i);
        bytes += dn_sample_packed_bytes(&kept[i]);
        if (i) {
            dn_children_unref(kept[i - 1].children);
            kept[i - 1].children = NULL;
        }
    }
    CHECK(bytes < (size_t)KEPT * N * 16, "%d samples of %d idle children kept in %zu bytes",
          KEPT, N, bytes);
    dn_children_unref(kept[KEPT - 1].children); /* the latest too: all made again */
    kept[KEPT - 1].children = NULL;
    bool intact = true;
    for (int i = 0; kept && i < KEPT; i++) {
        const struct dn_sample *b0 = i ? &kept[i - 1] : NULL;
        if (dn_sample_unpack(&kept[i], b0 ? b0->children : NULL, b0 ? b0->nchildren : 0)) {
            intact = false;
            break;
        }
        const struct dn_child *x = kept[i].children;
        for (int j = 0; j < N; j++) {
            uint64_t rss = i % 10 == 0 && j == i % N ? (uint64_t)(100000 + i) : 7 * (uint64_t)j;
            intact = intact && x[j].pid == 1000 + j && x[j].metrics.mem_rss_kb == rss &&
                     x[j].metrics.ts_ms == 1000 * (i + 1) &&
                     x[j].metrics.uptime_secs == (uint64_t)(i + 1) &&
                     x[j].metrics.sys_net_tx_bytes == 5000 * (uint64_t)(i + 1);
        }
    }
    CHECK(intact, "every kept sample made again intact");
    CHECK(first && same_children(kept[KEPT - 1].children, first, N), "the last byte for byte");
    free(first);
    for (int i = 0; kept && i < KEPT; i++)
        dn_sample_clear(&kept[i]);
    free(kept);
    dn_sample_store_close(&big); /* the chunks go with their last packed forms */
}

int main(void)
{
    test_memchar_rules();
    test_children_arrays();
    struct dn_summary sum;
    int code;
    const char *const write_1mib[] = {"head", "-c", "1048576", "/dev/zero", NULL};
    for (int threaded = 0; threaded < 2; threaded++) {
        int rc = run(write_1mib, threaded, &sum, &code);
        CHECK(rc == 0, "run: %s", strerror(-rc));
        CHECK(code == 0, "exit code %d, want 0", code);
        CHECK(sum.total_syscall_write_bytes == 1048576, "wchar %llu, want 1048576 (threaded=%d)",
              (unsigned long long)sum.total_syscall_write_bytes, threaded);
        CHECK(sum.sample_count >= 1, "no sample");
        dn_summary_clear(&sum);
    }
    const char *const exit3[] = {"sh", "-c", "exit 3", NULL};
    CHECK(run(exit3, true, &sum, &code) == 0 && code == 3, "exit code %d, want 3", code);
    dn_summary_clear(&sum);
    const char *const missing[] = {"/nonexistent/denet", NULL};
    CHECK(run(missing, false, &sum, &code) == -ENOENT, "a missing program is ENOENT");
    printf("%d passed, %d failed\n", checks - failures, failures);
    return failures != 0;
}
