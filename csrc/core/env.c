#include "core/env.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "core/emit.h"
#include "core/procfs.h"

#define OPS (e->ops)
#define CTX (e->ctx)

/* The whole of a small file, NUL-terminated, trailing newline dropped. -errno or length. */
static ssize_t slurp(const char *path, char *buf, size_t len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    size_t got = 0;
    while (got < len - 1) {
        ssize_t n = read(fd, buf + got, len - 1 - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    close(fd);
    buf[got] = '\0';
    while (got > 0 && buf[got - 1] == '\n')
        buf[--got] = '\0';
    return (ssize_t)got;
}

static int64_t slurp_i64(const char *path, int64_t dflt)
{
    char buf[64];
    if (slurp(path, buf, sizeof buf) <= 0)
        return dflt;
    char *end;
    long long v = strtoll(buf, &end, 10);
    return end == buf ? dflt : (int64_t)v;
}

void dn_env_range_list(const unsigned char *mask, int n, char *out, size_t len)
{
    size_t at = 0;
    out[0] = '\0';
    for (int i = 0; i < n;) {
        if (!mask[i]) {
            i++;
            continue;
        }
        int j = i;
        while (j + 1 < n && mask[j + 1])
            j++;
        int w = j > i ? snprintf(out + at, len - at, "%s%d-%d", at ? "," : "", i, j)
                      : snprintf(out + at, len - at, "%s%d", at ? "," : "", i);
        if (w < 0 || (size_t)w >= len - at)
            break;
        at += (size_t)w;
        i = j + 1;
    }
}

/* ---- CPU topology ------------------------------------------------------------------- */

static bool is_cpu_dir(const char *name)
{
    if (strncmp(name, "cpu", 3) != 0 || !name[3])
        return false;
    for (const char *p = name + 3; *p; p++)
        if (!isdigit((unsigned char)*p))
            return false;
    return true;
}

static void read_topology(struct dn_env *env)
{
    DIR *d = opendir("/sys/devices/system/cpu");
    if (!d)
        return;
    struct { int64_t pkg, core; } *seen = NULL;
    size_t nseen = 0, cap = 0, ncpus = 0;
    int64_t pkgs[256];
    size_t npkgs = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (!is_cpu_dir(de->d_name))
            continue;
        char path[320];
        snprintf(path, sizeof path, "/sys/devices/system/cpu/%s/online", de->d_name);
        if (slurp_i64(path, 1) == 0)
            continue; /* offline */
        snprintf(path, sizeof path, "/sys/devices/system/cpu/%s/topology/physical_package_id",
                 de->d_name);
        int64_t pkg = slurp_i64(path, -2);
        snprintf(path, sizeof path, "/sys/devices/system/cpu/%s/topology/core_id", de->d_name);
        int64_t core = slurp_i64(path, -2);
        if (pkg == -2 || core == -2)
            continue;
        ncpus++;
        bool have_pkg = false;
        for (size_t i = 0; i < npkgs; i++)
            have_pkg |= pkgs[i] == pkg;
        if (!have_pkg && npkgs < sizeof pkgs / sizeof pkgs[0])
            pkgs[npkgs++] = pkg;
        bool have_core = false;
        for (size_t i = 0; i < nseen; i++)
            have_core |= seen[i].pkg == pkg && seen[i].core == core;
        if (!have_core) {
            if (nseen == cap) {
                size_t ncap = cap ? cap * 2 : 64;
                void *n = realloc(seen, ncap * sizeof *seen);
                if (!n)
                    break;
                seen = n;
                cap = ncap;
            }
            seen[nseen].pkg = pkg;
            seen[nseen].core = core;
            nseen++;
        }
    }
    closedir(d);
    free(seen);
    if (ncpus && npkgs && nseen) {
        env->sockets = (int64_t)npkgs;
        env->cores_per_socket = (int64_t)(nseen / npkgs);
        env->threads_per_core = (int64_t)(ncpus / nseen);
    }
}

static void read_model(struct dn_env *env)
{
    FILE *f = fopen("/proc/cpuinfo", "re");
    if (!f)
        return;
    char line[512];
    while (fgets(line, sizeof line, f)) {
        /* x86: "model name"; arm64 and others may have "Model" or nothing */
        if (strncmp(line, "model name", 10) != 0 && strncmp(line, "Model", 5) != 0)
            continue;
        char *colon = strchr(line, ':');
        if (!colon)
            continue;
        colon++;
        while (*colon == ' ' || *colon == '\t')
            colon++;
        colon[strcspn(colon, "\n")] = '\0';
        snprintf(env->model, sizeof env->model, "%s", colon);
        break;
    }
    fclose(f);
}

/* ---- NUMA ---------------------------------------------------------------------------- */

static void read_numa(struct dn_env *env)
{
    int ids[1024], n = 0;
    DIR *d = opendir("/sys/devices/system/node");
    if (!d)
        return;
    struct dirent *de;
    while ((de = readdir(d)) && n < 1024) {
        if (strncmp(de->d_name, "node", 4) != 0 || !isdigit((unsigned char)de->d_name[4]))
            continue;
        ids[n++] = atoi(de->d_name + 4);
    }
    closedir(d);
    if (!n)
        return;
    for (int i = 1; i < n; i++) /* insertion sort: node order */
        for (int j = i; j > 0 && ids[j - 1] > ids[j]; j--) {
            int t = ids[j];
            ids[j] = ids[j - 1];
            ids[j - 1] = t;
        }
    env->distances = calloc((size_t)n * (size_t)n, sizeof *env->distances);
    env->node_size_mb = calloc((size_t)n, sizeof *env->node_size_mb);
    if (!env->distances || !env->node_size_mb) {
        free(env->distances);
        free(env->node_size_mb);
        env->distances = env->node_size_mb = NULL;
        return;
    }
    env->nnodes = n;
    char path[128], buf[4096];
    for (int i = 0; i < n; i++) {
        snprintf(path, sizeof path, "/sys/devices/system/node/node%d/distance", ids[i]);
        const char *p = buf;
        if (slurp(path, buf, sizeof buf) <= 0)
            buf[0] = '\0';
        for (int j = 0; j < n; j++) {
            char *end;
            long v = strtol(p, &end, 10);
            env->distances[i * n + j] = end == p ? -1 : v;
            p = end;
        }
        env->node_size_mb[i] = -1;
        snprintf(path, sizeof path, "/sys/devices/system/node/node%d/meminfo", ids[i]);
        if (slurp(path, buf, sizeof buf) > 0) {
            const char *m = strstr(buf, "MemTotal:");
            if (m)
                env->node_size_mb[i] = strtoll(m + 9, NULL, 10) / 1024;
        }
    }
}

/* ---- cgroup limits -------------------------------------------------------------------- */

/* Mount point and mount root of the cgroup hierarchy: v2 (controller NULL) or the v1
 * one that has controller. 0 or -ENOENT. */
static int cgroup_mount(const char *controller, char *mnt, size_t mlen, char *root, size_t rlen)
{
    FILE *f = fopen("/proc/self/mountinfo", "re");
    if (!f)
        return -errno;
    char line[1024];
    int rc = -ENOENT;
    while (rc && fgets(line, sizeof line, f)) {
        char *sep = strstr(line, " - ");
        if (!sep)
            continue;
        char fstype[32], source[256], opts[512] = "";
        if (sscanf(sep + 3, "%31s %255s %511s", fstype, source, opts) < 2)
            continue;
        if (controller) {
            if (strcmp(fstype, "cgroup") != 0)
                continue;
            bool has = false;
            for (char *tok = strtok(opts, ","); tok; tok = strtok(NULL, ","))
                has |= strcmp(tok, controller) == 0;
            if (!has)
                continue;
        } else if (strcmp(fstype, "cgroup2") != 0) {
            continue;
        }
        char r[256], m[256];
        if (sscanf(line, "%*s %*s %*s %255s %255s", r, m) != 2)
            continue;
        snprintf(mnt, mlen, "%s", m);
        snprintf(root, rlen, "%s", r);
        rc = 0;
    }
    fclose(f);
    return rc;
}

/* The process's path in the hierarchy whose /proc/PID/cgroup line matches (v1: the
 * controller list holds controller; v2: "0::"). */
static int cgroup_path_of(const char *cgroup_text, const char *controller, char *out, size_t len)
{
    const char *line = cgroup_text;
    while (line && *line) {
        const char *eol = strchr(line, '\n');
        size_t n = eol ? (size_t)(eol - line) : strlen(line);
        char buf[600];
        if (n < sizeof buf) {
            memcpy(buf, line, n);
            buf[n] = '\0';
            char *c1 = strchr(buf, ':');
            char *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
            if (c1 && c2) {
                *c2 = '\0';
                bool match = false;
                if (!controller) {
                    match = strcmp(buf, "0") == 0 && c2 == c1 + 1;
                } else {
                    for (char *tok = strtok(c1 + 1, ","); tok; tok = strtok(NULL, ","))
                        match |= strcmp(tok, controller) == 0;
                }
                if (match) {
                    snprintf(out, len, "%s", c2 + 1);
                    return 0;
                }
            }
        }
        line = eol ? eol + 1 : NULL;
    }
    return -ENOENT;
}

/* Directory of path in a hierarchy mounted at mnt with root `root`. */
static void cgroup_dir(const char *mnt, const char *root, const char *path, char *out, size_t len)
{
    size_t rl = strlen(root);
    if (strcmp(root, "/") != 0 && strncmp(path, root, rl) == 0)
        path += rl;
    snprintf(out, len, "%s%s", mnt, strcmp(path, "/") == 0 ? "" : path);
}

/* Walks from dir up to mnt, calling fn on each level. */
static void walk_up(const char *dir, const char *mnt, void (*fn)(const char *, void *), void *arg)
{
    char d[800];
    snprintf(d, sizeof d, "%s", dir);
    size_t ml = strlen(mnt);
    for (;;) {
        fn(d, arg);
        if (strlen(d) <= ml)
            break;
        char *slash = strrchr(d, '/');
        if (!slash || (size_t)(slash - d) < ml)
            break;
        *slash = '\0';
    }
}

static void v2_memory(const char *dir, void *arg)
{
    struct dn_env *env = arg;
    char path[840], buf[64];
    snprintf(path, sizeof path, "%s/memory.max", dir);
    if (slurp(path, buf, sizeof buf) <= 0 || strcmp(buf, "max") == 0)
        return;
    int64_t v = strtoll(buf, NULL, 10);
    if (v >= 0 && (env->memory_max_bytes < 0 || v < env->memory_max_bytes))
        env->memory_max_bytes = v;
}

static void take_cpu(struct dn_env *env, int64_t quota, int64_t period)
{
    if (quota <= 0 || period <= 0)
        return;
    /* the tightest share of a CPU wins */
    if (env->cpu_quota_us < 0 ||
        (double)quota / (double)period < (double)env->cpu_quota_us / (double)env->cpu_period_us) {
        env->cpu_quota_us = quota;
        env->cpu_period_us = period;
    }
}

static void v2_cpu(const char *dir, void *arg)
{
    char path[840], buf[64];
    snprintf(path, sizeof path, "%s/cpu.max", dir);
    if (slurp(path, buf, sizeof buf) <= 0 || strncmp(buf, "max", 3) == 0)
        return;
    long long q, p;
    if (sscanf(buf, "%lld %lld", &q, &p) == 2)
        take_cpu(arg, q, p);
}

static void v1_memory(const char *dir, void *arg)
{
    struct dn_env *env = arg;
    char path[840];
    snprintf(path, sizeof path, "%s/memory.limit_in_bytes", dir);
    int64_t v = slurp_i64(path, -1);
    /* "unlimited" is PAGE_COUNTER_MAX pages: a number near 2^63 */
    if (v >= 0 && v < (INT64_C(1) << 60) && (env->memory_max_bytes < 0 || v < env->memory_max_bytes))
        env->memory_max_bytes = v;
}

static void v1_cpu(const char *dir, void *arg)
{
    char path[840];
    snprintf(path, sizeof path, "%s/cpu.cfs_quota_us", dir);
    int64_t q = slurp_i64(path, -1);
    snprintf(path, sizeof path, "%s/cpu.cfs_period_us", dir);
    int64_t p = slurp_i64(path, -1);
    take_cpu(arg, q, p);
}

static void read_cgroup_limits(struct dn_env *env)
{
    char mnt[256], root[256], path[512], dir[800];
    env->memory_max_bytes = env->cpu_quota_us = env->cpu_period_us = -1;
    if (!env->cgroup)
        return;
    /* v1 controllers, where mounted, govern; else the v2 hierarchy. */
    bool v1 = false, v2 = false;
    if (cgroup_path_of(env->cgroup, "memory", path, sizeof path) == 0 &&
        cgroup_mount("memory", mnt, sizeof mnt, root, sizeof root) == 0) {
        cgroup_dir(mnt, root, path, dir, sizeof dir);
        walk_up(dir, mnt, v1_memory, env);
        v1 = true;
    } else if (cgroup_path_of(env->cgroup, NULL, path, sizeof path) == 0 &&
               cgroup_mount(NULL, mnt, sizeof mnt, root, sizeof root) == 0) {
        cgroup_dir(mnt, root, path, dir, sizeof dir);
        walk_up(dir, mnt, v2_memory, env);
        v2 = true;
    }
    if (cgroup_path_of(env->cgroup, "cpu", path, sizeof path) == 0 &&
        cgroup_mount("cpu", mnt, sizeof mnt, root, sizeof root) == 0) {
        cgroup_dir(mnt, root, path, dir, sizeof dir);
        walk_up(dir, mnt, v1_cpu, env);
        v1 = true;
    } else if (cgroup_path_of(env->cgroup, NULL, path, sizeof path) == 0 &&
               cgroup_mount(NULL, mnt, sizeof mnt, root, sizeof root) == 0) {
        cgroup_dir(mnt, root, path, dir, sizeof dir);
        walk_up(dir, mnt, v2_cpu, env);
        v2 = true;
    }
    env->limits_source = v1 && v2 ? "v1+v2" : v1 ? "v1" : v2 ? "v2" : NULL;
}

/* ---- the record ------------------------------------------------------------------------ */

void dn_env_read(struct dn_env *env, pid_t pid)
{
    memset(env, 0, sizeof *env);
    env->ts_ms = dn_now_ms();
    env->sockets = env->cores_per_socket = env->threads_per_core = -1;
    env->freq_khz = -1;
    env->smt_active = -1;
    struct utsname u;
    if (uname(&u) == 0) {
        snprintf(env->host, sizeof env->host, "%s", u.nodename);
        snprintf(env->kernel, sizeof env->kernel, "%s", u.release);
    }
    read_topology(env);
    read_model(env);
    read_numa(env);

    cpu_set_t set;
    CPU_ZERO(&set);
    if (sched_getaffinity(pid, sizeof set, &set) == 0) {
        unsigned char mask[CPU_SETSIZE];
        for (int i = 0; i < CPU_SETSIZE; i++)
            mask[i] = CPU_ISSET(i, &set) != 0;
        dn_env_range_list(mask, CPU_SETSIZE, env->affinity, sizeof env->affinity);
    }
    slurp("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor", env->governor,
          sizeof env->governor);
    env->freq_khz = slurp_i64("/sys/devices/system/cpu/cpu0/cpufreq/scaling_cur_freq", -1);
    char buf[128];
    if (slurp("/sys/kernel/mm/transparent_hugepage/enabled", buf, sizeof buf) > 0) {
        char *open = strchr(buf, '['), *close_ = open ? strchr(open, ']') : NULL;
        if (open && close_) {
            *close_ = '\0';
            snprintf(env->thp, sizeof env->thp, "%s", open + 1);
        }
    }
    env->smt_active = (int)slurp_i64("/sys/devices/system/cpu/smt/active", -1);
    char path[64], text[8192];
    snprintf(path, sizeof path, "/proc/%d/cgroup", (int)pid);
    if (slurp(path, text, sizeof text) >= 0)
        env->cgroup = strdup(text);
    read_cgroup_limits(env);
}

void dn_env_free(struct dn_env *env)
{
    free(env->distances);
    free(env->node_size_mb);
    free(env->cgroup);
    memset(env, 0, sizeof *env);
}

static void str_or_null(const struct dn_emitter *e, const char *key, const char *v)
{
    if (v && v[0])
        OPS->str(CTX, key, v);
    else
        OPS->null(CTX, key);
}

static void i64_or_null(const struct dn_emitter *e, const char *key, int64_t v)
{
    if (v >= 0)
        OPS->i64(CTX, key, v);
    else
        OPS->null(CTX, key);
}

void dn_emit_env(const struct dn_emitter *e, const struct dn_env *env, bool tag)
{
    OPS->begin_object(CTX, NULL);
    if (tag)
        OPS->str(CTX, "kind", "env");
    OPS->i64(CTX, "ts_ms", env->ts_ms);
    str_or_null(e, "host", env->host);
    str_or_null(e, "kernel", env->kernel);
    OPS->begin_object(CTX, "lscpu");
    i64_or_null(e, "sockets", env->sockets);
    i64_or_null(e, "cores_per_socket", env->cores_per_socket);
    i64_or_null(e, "threads_per_core", env->threads_per_core);
    str_or_null(e, "model", env->model);
    OPS->end_object(CTX);
    OPS->begin_object(CTX, "numa");
    OPS->i64(CTX, "nodes", env->nnodes);
    OPS->begin_list(CTX, "distances");
    for (int i = 0; i < env->nnodes; i++) {
        OPS->begin_list(CTX, NULL);
        for (int j = 0; j < env->nnodes; j++)
            i64_or_null(e, NULL, env->distances[i * env->nnodes + j]);
        OPS->end_list(CTX);
    }
    OPS->end_list(CTX);
    OPS->begin_list(CTX, "node_sizes_mb");
    for (int i = 0; i < env->nnodes; i++)
        i64_or_null(e, NULL, env->node_size_mb[i]);
    OPS->end_list(CTX);
    OPS->end_object(CTX);
    str_or_null(e, "affinity_inherited", env->affinity);
    str_or_null(e, "cpu_governor", env->governor);
    i64_or_null(e, "cpu_freq_khz", env->freq_khz);
    str_or_null(e, "thp_enabled", env->thp);
    if (env->smt_active >= 0)
        OPS->boolean(CTX, "smt_active", env->smt_active != 0);
    else
        OPS->null(CTX, "smt_active");
    if (env->cgroup)
        OPS->str(CTX, "cgroup", env->cgroup);
    else
        OPS->null(CTX, "cgroup");
    OPS->begin_object(CTX, "cgroup_limits");
    str_or_null(e, "source", env->limits_source);
    i64_or_null(e, "memory_max_bytes", env->memory_max_bytes);
    i64_or_null(e, "cpu_quota_us", env->cpu_quota_us);
    i64_or_null(e, "cpu_period_us", env->cpu_period_us);
    OPS->end_object(CTX);
    OPS->end_object(CTX);
}
