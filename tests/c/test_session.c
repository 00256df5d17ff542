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
#include "core/session.h"
#include "ebpf/ebpf_sample.h"

static int failures, checks;

#define CHECK(cond, ...)                                                                   \
    do {                                                                                   \
        checks++;                                                                          \
        if (!(cond)) {                                                                     \
            failures++;                                                                    \
            fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);                           \
            fprintf(stderr, __VA_ARGS__);                                                  \
            fputc('\n', stderr);                                                           \
        }                                                                                  \
    } while (0)

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

int main(void)
{
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
    }
    const char *const exit3[] = {"sh", "-c", "exit 3", NULL};
    CHECK(run(exit3, true, &sum, &code) == 0 && code == 3, "exit code %d, want 3", code);
    const char *const missing[] = {"/nonexistent/denet", NULL};
    CHECK(run(missing, false, &sum, &code) == -ENOENT, "a missing program is ENOENT");
    printf("%d passed, %d failed\n", checks - failures, failures);
    return failures != 0;
}
