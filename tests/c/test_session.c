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

int main(void)
{
    test_memchar_rules();
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
