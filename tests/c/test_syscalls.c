/* Unit tests for csrc/syscall_table.c and csrc/syscall_analysis.c.
 *
 * The x86_64 names are checked against the installed kernel header itself
 * (DN_UNISTD_64_H, or argv[1]), not against a copy of it. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ebpf/syscall_analysis.h"
#include "ebpf/syscall_table.h"

#ifndef DN_UNISTD_64_H
#define DN_UNISTD_64_H "/usr/include/x86_64-linux-gnu/asm/unistd_64.h"
#endif

static int passed, failed;

#define CHECK(cond, ...)                                              \
    do {                                                              \
        if (cond) {                                                   \
            passed++;                                                 \
        } else {                                                      \
            failed++;                                                 \
            fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);      \
            fprintf(stderr, __VA_ARGS__);                             \
            fputc('\n', stderr);                                      \
        }                                                             \
    } while (0)

#define CHECK_STR(got, want) \
    CHECK((got) && strcmp((got), (want)) == 0, "%s: got \"%s\", want \"%s\"", #got, \
          (got) ? (got) : "(null)", (want))

#define CHECK_NEAR(got, want) \
    CHECK(fabs((got) - (want)) < 1e-12, "%s: got %.17g, want %.17g", #got, (double)(got), \
          (double)(want))

/* ---------------------------------------------------------------- table ---- */

static int is_real_name(long nr)
{
    char buf[32];
    const char *n = dn_syscall_name(nr, buf, sizeof buf);
    return n != buf;   /* unknown numbers are written into buf */
}

static void check_category(const char *name, enum dn_syscall_category want)
{
    long nr = dn_syscall_number(name);
    CHECK(nr >= 0, "%s has no number", name);
    if (nr < 0)
        return;
    enum dn_syscall_category got = dn_syscall_category(nr);
    CHECK(got == want, "%s (%ld): category %s, want %s", name, nr, dn_category_name(got),
          dn_category_name(want));
}

static void test_category_names(void)
{
    static const char *const want[DN_CAT_COUNT] = {
        "file_io", "memory", "process", "network", "time",
        "ipc", "security", "signal", "system", "other",
    };
    for (int c = 0; c < DN_CAT_COUNT; c++)
        CHECK_STR(dn_category_name((enum dn_syscall_category)c), want[c]);
    CHECK_STR(dn_category_name(DN_CAT_COUNT), "other");
    CHECK_STR(dn_category_name((enum dn_syscall_category)-1), "other");
}

static void test_unknown_numbers(void)
{
    char buf[32];
    static const long unknown[] = {-1, -100000, DN_SYSCALL_MAX, DN_SYSCALL_MAX + 1, 100000,
                                   0x40000000L /* x32 bit */, 2147483647L};
    for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; i++) {
        char want[32];
        snprintf(want, sizeof want, "syscall_%ld", unknown[i]);
        memset(buf, 'x', sizeof buf);
        const char *n = dn_syscall_name(unknown[i], buf, sizeof buf);
        CHECK(n == buf, "unknown %ld must be written into buf", unknown[i]);
        CHECK_STR(n, want);
        CHECK(dn_syscall_category(unknown[i]) == DN_CAT_OTHER, "unknown %ld not other",
              unknown[i]);
    }
    /* Truncation and no buffer: still a string, never NULL. */
    char small[6];
    CHECK_STR(dn_syscall_name(1000, small, sizeof small), "sysca");
    CHECK_STR(dn_syscall_name(1000, NULL, 0), "syscall_unknown");
    CHECK_STR(dn_syscall_name(1000, small, 0), "syscall_unknown");
    /* A real name needs no buffer. */
    CHECK(dn_syscall_name(dn_syscall_number("read"), NULL, 0) != NULL, "read with NULL buf");
    CHECK_STR(dn_syscall_name(dn_syscall_number("read"), NULL, 0), "read");

    CHECK(dn_syscall_number("no_such_syscall") == -1, "unknown name");
    CHECK(dn_syscall_number("") == -1, "empty name");
    CHECK(dn_syscall_number(NULL) == -1, "NULL name");
    CHECK(dn_syscall_number("syscall_335") == -1, "synthetic name is not a syscall");
}

/* Every named number round-trips, names are unique, categories are in range. */
static void test_round_trip_and_unique(int counts[DN_CAT_COUNT], int *named)
{
    const char *names[DN_SYSCALL_MAX] = {0};
    char buf[32];
    *named = 0;
    for (long nr = 0; nr < DN_SYSCALL_MAX; nr++) {
        const char *n = dn_syscall_name(nr, buf, sizeof buf);
        CHECK(n != NULL, "name of %ld is NULL", nr);
        if (!is_real_name(nr)) {
            CHECK(dn_syscall_category(nr) == DN_CAT_OTHER, "unnamed %ld not other", nr);
            continue;
        }
        names[nr] = n;
        (*named)++;
        CHECK(n[0] != '\0' && strncmp(n, "syscall_", 8) != 0, "bad name \"%s\" at %ld", n, nr);
        CHECK(dn_syscall_number(n) == nr, "%s: number %ld, want %ld", n, dn_syscall_number(n),
              nr);
        enum dn_syscall_category c = dn_syscall_category(nr);
        CHECK((int)c >= 0 && c < DN_CAT_COUNT, "%s: category %d out of range", n, (int)c);
        counts[c]++;
    }
    int dups = 0;
    for (long a = 0; a < DN_SYSCALL_MAX; a++)
        for (long b = a + 1; names[a] && b < DN_SYSCALL_MAX; b++)
            if (names[b] && strcmp(names[a], names[b]) == 0) {
                dups++;
                fprintf(stderr, "duplicate %s at %ld and %ld\n", names[a], a, b);
            }
    CHECK(dups == 0, "%d duplicate names", dups);
}

#if defined(__x86_64__)
/* Compare with the kernel's own header, line by line; then the numbers newer than
 * the header; then the gaps. */
static void test_x86_64_against_header(const char *path)
{
    CHECK_STR(dn_syscall_arch(), "x86_64");
    FILE *f = fopen(path, "r");
    CHECK(f != NULL, "cannot open %s", path);
    if (!f)
        return;
    char line[256], name[128], buf[32];
    long nr;
    int seen = 0, max_nr = -1;
    while (fgets(line, sizeof line, f)) {
        if (sscanf(line, "#define __NR_%127s %ld", name, &nr) != 2)
            continue;
        seen++;
        if (nr > max_nr)
            max_nr = (int)nr;
        const char *got = dn_syscall_name(nr, buf, sizeof buf);
        CHECK(strcmp(got, name) == 0, "nr %ld: table \"%s\", header \"%s\"", nr, got, name);
    }
    fclose(f);
    /* 0..334 and 424..max: all of them, so a truncated parse cannot pass. */
    CHECK(seen == 335 + (max_nr - 424 + 1) && max_nr >= 450,
          "header parse: %d entries up to %d", seen, max_nr);

    static const char *const newer[] = {
        "cachestat", "fchmodat2", "map_shadow_stack", "futex_wake", "futex_wait",
        "futex_requeue", "statmount", "listmount", "lsm_get_self_attr", "lsm_set_self_attr",
        "lsm_list_modules", "mseal", "setxattrat", "getxattrat", "listxattrat",
        "removexattrat", "open_tree_attr", "file_getattr", "file_setattr",
    };
    for (long i = 0; i < (long)(sizeof newer / sizeof newer[0]); i++)
        CHECK_STR(dn_syscall_name(451 + i, buf, sizeof buf), newer[i]);

    for (long n = 0; n < DN_SYSCALL_MAX; n++) {
        int want_named = (n <= 334) || (n >= 424 && n <= 469);
        CHECK(is_real_name(n) == want_named, "nr %ld named=%d, want %d", n, is_real_name(n),
              want_named);
        if (!want_named) {
            char want[32];
            snprintf(want, sizeof want, "syscall_%ld", n);
            CHECK_STR(dn_syscall_name(n, buf, sizeof buf), want);
        }
    }
    /* A few fixed points, independent of the header. */
    CHECK(dn_syscall_number("read") == 0, "read");
    CHECK(dn_syscall_number("futex") == 202, "futex");
    CHECK(dn_syscall_number("openat") == 257, "openat");
    CHECK(dn_syscall_number("rseq") == 334, "rseq");
    CHECK(dn_syscall_number("pidfd_send_signal") == 424, "pidfd_send_signal");
    CHECK(dn_syscall_number("file_setattr") == 469, "file_setattr");
}
#endif

static void test_mandatory_categories(void)
{
    static const char *const ipc[] = {
        "futex", "futex_waitv", "futex_wake", "futex_wait", "futex_requeue", "pipe", "pipe2",
        "eventfd", "eventfd2", "msgget", "msgsnd", "msgrcv", "msgctl", "semget", "semop",
        "semctl", "semtimedop", "shmget", "shmat", "shmctl", "shmdt", "mq_open", "mq_unlink",
        "mq_timedsend", "mq_timedreceive", "mq_notify", "mq_getsetattr",
    };
    static const char *const file_io[] = {
        "fcntl", "flock", "fsync", "fdatasync", "getdents", "getdents64", "chdir", "fchdir",
        "read", "write", "open", "close", "openat", "lseek",
    };
    static const char *const signal[] = {
        "kill", "tgkill", "tkill", "rt_sigaction", "rt_sigprocmask", "rt_sigreturn",
        "rt_sigpending", "rt_sigtimedwait", "rt_sigqueueinfo", "rt_sigsuspend",
        "rt_tgsigqueueinfo", "sigaltstack",
    };
    static const char *const process[] = {
        "clone", "clone3", "fork", "vfork", "execve", "execveat", "exit", "exit_group",
        "wait4", "waitid",
    };
    static const char *const network[] = {
        "sendmsg", "recvmsg", "sendmmsg", "recvmmsg", "socket", "connect", "accept", "sendto",
        "recvfrom",
    };
    static const char *const memory[] = {
        "mmap", "munmap", "mprotect", "brk", "madvise", "mremap",
    };
    static const char *const time[] = {
        "clock_gettime", "clock_settime", "clock_getres", "clock_nanosleep", "clock_adjtime",
        "nanosleep", "timer_create", "timer_settime", "timer_gettime", "timer_getoverrun",
        "timer_delete", "timerfd_create", "timerfd_settime", "timerfd_gettime", "sched_yield",
        "gettimeofday", "time",
    };
#define EACH(arr, cat) \
    for (size_t i = 0; i < sizeof arr / sizeof arr[0]; i++) check_category(arr[i], cat)
    EACH(ipc, DN_CAT_IPC);
    EACH(file_io, DN_CAT_FILE_IO);
    EACH(signal, DN_CAT_SIGNAL);
    EACH(process, DN_CAT_PROCESS);
    EACH(network, DN_CAT_NETWORK);
    EACH(memory, DN_CAT_MEMORY);
    EACH(time, DN_CAT_TIME);
#undef EACH
    check_category("uname", DN_CAT_SYSTEM);
}

/* Only never-implemented reserved numbers stay 'other'. */
static void test_other_is_small(void)
{
    static const char *const allowed[] = {"afs_syscall", "tuxcall", "security", "vserver",
                                          "getpmsg", "putpmsg"};
    char buf[32];
    for (long nr = 0; nr < DN_SYSCALL_MAX; nr++) {
        if (!is_real_name(nr) || dn_syscall_category(nr) != DN_CAT_OTHER)
            continue;
        const char *n = dn_syscall_name(nr, buf, sizeof buf);
        int ok = 0;
        for (size_t i = 0; i < sizeof allowed / sizeof allowed[0]; i++)
            ok |= strcmp(n, allowed[i]) == 0;
        CHECK(ok, "%s (%ld) is 'other'", n, nr);
    }
}

/* ------------------------------------------------------------- analysis ---- */

struct counts {
    uint64_t c[DN_CAT_COUNT];
};

static struct dn_syscall_analysis run(uint64_t file_io, uint64_t memory, uint64_t network,
                                      uint64_t process, uint64_t total, double cpu,
                                      double elapsed)
{
    struct counts k = {{0}};
    k.c[DN_CAT_FILE_IO] = file_io;
    k.c[DN_CAT_MEMORY] = memory;
    k.c[DN_CAT_NETWORK] = network;
    k.c[DN_CAT_PROCESS] = process;
    struct dn_syscall_analysis a;
    memset(&a, 0xa5, sizeof a);   /* the engine must set every field */
    dn_syscall_analyze(k.c, total, cpu, elapsed, &a);
    return a;
}

static void check_list(const char *what, int line, const char *const *got, int n_got,
                       const char *const *want)
{
    int n_want = 0;
    while (want[n_want])
        n_want++;
    int ok = n_got == n_want;
    for (int i = 0; ok && i < n_want; i++)
        ok = got[i] && strcmp(got[i], want[i]) == 0;
    CHECK(ok, "line %d: %s: got %d entries (%s...), want %d (%s...)", line, what, n_got,
          n_got > 0 && got[0] ? got[0] : "-", n_want, n_want ? want[0] : "-");
}

#define INDICATORS(a, ...)                                                              \
    do {                                                                                \
        static const char *const want_[] = {__VA_ARGS__};                               \
        check_list("indicators", __LINE__, (a).bottleneck_indicators,                   \
                   (a).n_bottleneck_indicators, want_);                                 \
    } while (0)

static const char *const hints_io[] = {"Consider I/O optimization strategies",
                                       "Use async I/O or batching",
                                       "Check for excessive file operations", NULL};
static const char *const hints_cpu[] = {"CPU optimization opportunities",
                                        "Consider parallel processing",
                                        "Profile for algorithmic improvements", NULL};
static const char *const hints_mem[] = {"Memory allocation optimization needed",
                                        "Consider memory pooling", "Check for memory leaks",
                                        NULL};
static const char *const hints_net[] = {"Network optimization opportunities",
                                        "Consider connection pooling",
                                        "Optimize network protocols", NULL};
static const char *const hints_mixed[] = {"Mixed workload - profile individual components",
                                          "Consider workload separation", NULL};
static const char *const hints_none[] = {NULL};

static void check_profile_at(int line, const struct dn_syscall_analysis *a, const char *cls,
                             const char *workload, double likelihood,
                             const char *const *hints)
{
    CHECK(a->behavior_classification && strcmp(a->behavior_classification, cls) == 0,
          "line %d: classification %s, want %s", line,
          a->behavior_classification ? a->behavior_classification : "(null)", cls);
    CHECK(a->workload_type && strcmp(a->workload_type, workload) == 0,
          "line %d: workload %s, want %s", line, a->workload_type ? a->workload_type : "(null)",
          workload);
    CHECK(a->bottleneck_likelihood == likelihood, "line %d: likelihood %g, want %g", line,
          a->bottleneck_likelihood, likelihood);
    check_list("hints", line, a->optimization_hints, a->n_optimization_hints, hints);
}
#define PROFILE(a, ...) check_profile_at(__LINE__, &(a), __VA_ARGS__)

static void test_insufficient_data(void)
{
    struct dn_syscall_analysis a;
    const double elapsed[] = {0.0, 0.09, 0.0999999, -5.0, NAN};
    for (size_t i = 0; i < sizeof elapsed / sizeof elapsed[0]; i++) {
        a = run(900, 50, 0, 10, 1000, 99.0, elapsed[i]);
        PROFILE(a, "unknown", "insufficient_data", 0.0, hints_none);
        CHECK(a.syscall_rate_per_sec == 0 && a.io_intensity == 0 && a.memory_intensity == 0 &&
                  a.cpu_intensity == 0 && a.network_intensity == 0,
              "insufficient data (elapsed %g): intensities must be zero", elapsed[i]);
        CHECK(a.n_bottleneck_indicators == 0, "insufficient data: no indicators");
    }
    a = run(0, 0, 0, 0, 0, 99.0, 10.0);   /* no syscalls at all */
    PROFILE(a, "unknown", "insufficient_data", 0.0, hints_none);
    CHECK(a.n_bottleneck_indicators == 0, "total 0: no indicators");

    /* 0.1 s is enough (the rule is elapsed < 0.1); so is 1 syscall. */
    a = run(0, 0, 0, 0, 1, 0.0, 0.1);
    PROFILE(a, "unknown", "unknown", 0.0, hints_none);
    CHECK_NEAR(a.syscall_rate_per_sec, 10.0);

    /* NULL by_category: counts read as zero, total still drives the rate. */
    dn_syscall_analyze(NULL, 10, 0.0, 1.0, &a);
    PROFILE(a, "unknown", "unknown", 0.0, hints_none);
    CHECK_NEAR(a.syscall_rate_per_sec, 10.0);
    CHECK(a.io_intensity == 0 && a.n_bottleneck_indicators == 0, "NULL by_category");
    dn_syscall_analyze(NULL, 10, 0.0, 1.0, NULL);   /* must not crash */
}

static void test_classify(void)
{
    struct dn_syscall_analysis a;

    /* io_bound: 700/1000 = 0.7 > 0.6, rate 1000/1 = 1000 > 100. */
    a = run(700, 0, 0, 0, 1000, 10.0, 1.0);
    PROFILE(a, "io_bound", "file_io_intensive", 0.8, hints_io);
    CHECK_NEAR(a.io_intensity, 0.7);
    CHECK_NEAR(a.syscall_rate_per_sec, 1000.0);
    INDICATORS(a, "high_file_io", NULL);   /* 700 > 500; rate 1000 is not > 1000 */

    /* io exactly 0.6 is not > 0.6: falls through every rule to unknown. */
    a = run(600, 0, 0, 0, 1000, 10.0, 1.0);
    CHECK(a.io_intensity == 0.6, "600/1000 == 0.6");
    PROFILE(a, "unknown", "unknown", 0.0, hints_none);
    INDICATORS(a, "high_file_io", NULL);

    /* rate exactly 100 is not > 100: io 0.7 but not io_bound; with memory 0.2 -> mixed. */
    a = run(70, 0, 0, 0, 100, 0.0, 1.0);
    CHECK(a.syscall_rate_per_sec == 100.0, "rate 100");
    PROFILE(a, "unknown", "unknown", 0.0, hints_none);
    a = run(70, 20, 0, 0, 100, 0.0, 1.0);
    PROFILE(a, "mixed", "mixed_workload", 0.5, hints_mixed);
    INDICATORS(a, NULL);

    /* rate 100.5 > 100, io 121/201 > 0.6 -> io_bound. */
    a = run(121, 0, 0, 0, 201, 0.0, 2.0);
    CHECK_NEAR(a.syscall_rate_per_sec, 100.5);
    PROFILE(a, "io_bound", "file_io_intensive", 0.8, hints_io);

    /* network_bound: 410/1000 = 0.41 > 0.4; rate 2000. */
    a = run(0, 0, 410, 0, 1000, 0.0, 0.5);
    PROFILE(a, "network_bound", "network_intensive", 0.8, hints_net);
    CHECK_NEAR(a.network_intensity, 0.41);
    INDICATORS(a, "very_high_syscall_rate", "high_network_activity", NULL);

    /* network exactly 0.4 is not > 0.4. */
    a = run(0, 0, 400, 0, 1000, 0.0, 10.0);
    CHECK(a.network_intensity == 0.4, "400/1000 == 0.4");
    PROFILE(a, "unknown", "unknown", 0.0, hints_none);
    INDICATORS(a, "high_network_activity", NULL);

    /* Rule order: io before network. Consistent counts cannot pass both rules, so
     * these overlap on purpose (700 + 500 > 1000) to test the order alone. */
    a = run(700, 0, 500, 0, 1000, 0.0, 1.0);
    CHECK_STR(a.behavior_classification, "io_bound");
    /* network before memory. */
    a = run(0, 350, 410, 0, 1000, 0.0, 1.0);
    CHECK_STR(a.behavior_classification, "network_bound");
    /* io fails on rate, network wins over memory. */
    a = run(700, 350, 410, 0, 1000, 0.0, 100.0);
    CHECK_STR(a.behavior_classification, "network_bound");

    /* memory_bound: 31/100 = 0.31 > 0.3; memory before cpu (rate 10, cpu 90). */
    a = run(0, 31, 0, 0, 100, 90.0, 10.0);
    PROFILE(a, "memory_bound", "memory_intensive", 0.75, hints_mem);
    CHECK_NEAR(a.memory_intensity, 0.31);
    INDICATORS(a, "cpu_intensive", NULL);   /* cpu 90 > 80, rate 10 < 100 */

    /* memory exactly 0.3 is not > 0.3 -> cpu_bound next (rate 10 < 50, cpu 60 > 50). */
    a = run(0, 30, 0, 0, 100, 60.0, 10.0);
    CHECK(a.memory_intensity == 0.3, "30/100 == 0.3");
    PROFILE(a, "cpu_bound", "cpu_intensive", 0.7, hints_cpu);
    INDICATORS(a, NULL);   /* cpu 60 is not > 80 */

    /* cpu_bound boundaries: cpu exactly 50 no, 50.1 yes; rate exactly 50 no. */
    a = run(0, 0, 0, 0, 100, 50.0, 10.0);
    PROFILE(a, "unknown", "unknown", 0.0, hints_none);
    a = run(0, 0, 0, 0, 100, 50.1, 10.0);
    PROFILE(a, "cpu_bound", "cpu_intensive", 0.7, hints_cpu);
    a = run(0, 0, 0, 0, 500, 90.0, 10.0);
    CHECK(a.syscall_rate_per_sec == 50.0, "rate 50");
    PROFILE(a, "unknown", "unknown", 0.0, hints_none);
    INDICATORS(a, "cpu_intensive", NULL);
    a = run(0, 0, 0, 0, 499, 90.0, 10.0);
    PROFILE(a, "cpu_bound", "cpu_intensive", 0.7, hints_cpu);

    /* cpu before mixed: io 0.3, memory 0.15 would be mixed. */
    a = run(30, 15, 0, 0, 100, 90.0, 10.0);
    PROFILE(a, "cpu_bound", "cpu_intensive", 0.7, hints_cpu);

    /* mixed: io 0.25 > 0.2 and memory 0.15 > 0.1; boundaries 0.2 and 0.1 are not. */
    a = run(25, 15, 0, 0, 100, 0.0, 10.0);
    PROFILE(a, "mixed", "mixed_workload", 0.5, hints_mixed);
    a = run(20, 15, 0, 0, 100, 0.0, 10.0);
    PROFILE(a, "unknown", "unknown", 0.0, hints_none);
    a = run(25, 10, 0, 0, 100, 0.0, 10.0);
    PROFILE(a, "unknown", "unknown", 0.0, hints_none);

    /* cpu_intensity is the process-category share, not CPU usage. */
    a = run(10, 20, 30, 40, 200, 75.0, 4.0);
    CHECK_NEAR(a.cpu_intensity, 0.2);
    CHECK_NEAR(a.io_intensity, 0.05);
    CHECK_NEAR(a.memory_intensity, 0.1);
    CHECK_NEAR(a.network_intensity, 0.15);
    CHECK_NEAR(a.syscall_rate_per_sec, 50.0);
}

static void test_indicators(void)
{
    struct dn_syscall_analysis a;

    /* Each single threshold exactly (file_io 500, rate 1000, memory 100, network 200,
     * cpu 80): none fires; only the combined rule does (500 > 300 and 100 > 50). */
    a = run(500, 100, 200, 0, 1000, 80.0, 1.0);
    INDICATORS(a, "io_memory_contention", NULL);
    /* cpu 80.5 with rate exactly 100: not cpu_intensive (needs rate < 100). */
    a = run(0, 0, 0, 0, 100, 80.5, 1.0);
    INDICATORS(a, NULL);
    a = run(0, 0, 0, 0, 99, 80.5, 1.0);
    INDICATORS(a, "cpu_intensive", NULL);

    /* One over each threshold, in the reference's order; rate 1000.5. */
    a = run(501, 101, 201, 0, 2001, 0.0, 2.0);
    INDICATORS(a, "high_file_io", "very_high_syscall_rate", "frequent_memory_management",
               "high_network_activity", "io_memory_contention", NULL);

    /* io_memory_contention: > 300 and > 50, both strict. */
    a = run(301, 51, 0, 0, 10000, 0.0, 100.0);
    INDICATORS(a, "io_memory_contention", NULL);
    a = run(300, 51, 0, 0, 10000, 0.0, 100.0);
    INDICATORS(a, NULL);
    a = run(301, 50, 0, 0, 10000, 0.0, 100.0);
    INDICATORS(a, NULL);

    /* Low rate, busy CPU, lots of everything: cpu_intensive instead of the rate. */
    a = run(600, 150, 250, 0, 2000, 90.0, 100.0);
    INDICATORS(a, "high_file_io", "frequent_memory_management", "high_network_activity",
               "cpu_intensive", "io_memory_contention", NULL);
    PROFILE(a, "cpu_bound", "cpu_intensive", 0.7, hints_cpu);   /* rate 20, io 0.3 */
}

int main(int argc, char **argv)
{
    int counts[DN_CAT_COUNT] = {0}, named = 0;

    test_category_names();
    test_unknown_numbers();
    test_round_trip_and_unique(counts, &named);
#if defined(__x86_64__)
    test_x86_64_against_header(argc > 1 ? argv[1] : DN_UNISTD_64_H);
    CHECK(named == 381, "x86_64: %d named syscalls, want 381", named);
#else
    (void)argc;
    (void)argv;
#endif
    test_mandatory_categories();
    test_other_is_small();
    test_insufficient_data();
    test_classify();
    test_indicators();

    printf("%s: %d named syscalls:", dn_syscall_arch(), named);
    for (int c = 0; c < DN_CAT_COUNT; c++)
        printf(" %s=%d", dn_category_name((enum dn_syscall_category)c), counts[c]);
    printf("\n%d passed, %d failed\n", passed, failed);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
