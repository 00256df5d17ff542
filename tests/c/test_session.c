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

/* Children arrays: built in the store (a kept sample), moved out when the tree outgrew
 * the room reserved, trimmed to what they hold when kept; heap arrays reused. Run under
 * ASan by `make asan` (a wrong size or a double unmap shows there). */
static void test_children_arrays(void)
{
    struct dn_sample_store st = {0};
    struct dn_child *a = NULL, *b = NULL, *c = NULL;
    size_t acap = 0, bcap = 0, ccap = 0;
    CHECK(dn_children_grow(&a, &acap, 1, 4, &st) == 0 && acap == 4, "array in the store");
    fill(a, 0, 4);
    CHECK(dn_children_grow(&a, &acap, 5, 4, &st) == 0 && acap >= 5 && filled(a, 4),
          "outgrown array keeps its children");
    fill(a, 4, 5);
    struct dn_sample x = {.nchildren = 5, .children = a};
    dn_sample_store_keep(&st, &x); /* a heap array: copied into the store */
    CHECK(x.children != a && filled(x.children, 5), "kept array copied");

    CHECK(dn_children_grow(&b, &bcap, 1, 64, &st) == 0 && bcap == 64, "second array");
    fill(b, 0, 3);
    struct dn_sample y = {.nchildren = 3, .children = b};
    dn_sample_store_keep(&st, &y); /* built there: trimmed to 3 */
    CHECK(y.children == b && filled(b, 3), "array built in the store stays");
    CHECK(dn_children_grow(&c, &ccap, 1, 8, &st) == 0, "third array");
    CHECK((char *)c > (char *)b && (size_t)((char *)c - (char *)b) < 4 * sizeof *b + 128,
          "the room the kept array did not use is given back (%td bytes apart)",
          (char *)c - (char *)b);
    fill(c, 0, 8);
    CHECK(filled(b, 3) && filled(x.children, 5), "neighbours untouched");
    dn_children_unref(c);

    struct dn_sample z;
    CHECK(dn_sample_copy(&z, &y) == 0 && z.children == y.children, "copies share children");
    dn_sample_clear(&y);
    CHECK(filled(z.children, 3), "shared array outlives one owner");
    dn_sample_clear(&z);
    dn_sample_clear(&x);
    dn_sample_store_close(&st); /* the chunk goes with its last array */

    /* heap arrays: the last one freed is the next one's */
    struct dn_child *h = NULL, *k = NULL;
    size_t hcap = 0, kcap = 0;
    CHECK(dn_children_grow(&h, &hcap, 1, 32, NULL) == 0, "heap array");
    fill(h, 0, 32);
    struct dn_child *was = h;
    dn_children_unref(h);
    CHECK(dn_children_grow(&k, &kcap, 1, 16, NULL) == 0 && k == was && kcap == 32,
          "freed array reused (cap %zu)", kcap);
    CHECK(dn_children_grow(&k, &kcap, 40, 16, NULL) == 0 && kcap >= 40 && filled(k, 32),
          "reused array grows");
    dn_children_unref(k);
    dn_children_drop_spare();

    /* A store that keeps many samples (5 MB of children, ten chunks): every kept array
     * keeps its children, whichever chunk holds it. */
    struct dn_sample_store big = {0};
    enum { KEPT = 120, N = 200 };
    struct dn_sample *kept = calloc(KEPT, sizeof *kept);
    CHECK(kept != NULL, "calloc");
    for (int i = 0; kept && i < KEPT; i++) {
        struct dn_child *arr = NULL;
        size_t cap = 0;
        if (dn_children_grow(&arr, &cap, N, N, &big) != 0) {
            CHECK(false, "array %d", i);
            break;
        }
        fill(arr, 0, N);
        arr[0].metrics.ts_ms = i; /* tells the samples apart */
        kept[i] = (struct dn_sample){.nchildren = N, .children = arr};
        dn_sample_store_keep(&big, &kept[i]);
    }
    bool intact = true;
    for (int i = 0; kept && i < KEPT; i++) {
        int64_t ts = kept[i].children[0].metrics.ts_ms;
        kept[i].children[0].metrics.ts_ms = 0;
        intact = intact && ts == i && filled(kept[i].children, N);
        dn_sample_clear(&kept[i]);
    }
    CHECK(intact, "every kept array intact");
    free(kept);
    dn_sample_store_close(&big); /* the chunks go with their last arrays */
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
