/* The run's environment: the machine and the box the monitored process ran in (the "env"
 * record, denet's field names, plus cgroup_limits). Read from /proc and /sys. */
#ifndef DENET_ENV_H
#define DENET_ENV_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

struct dn_emitter;

struct dn_env {
    int64_t ts_ms;
    char host[256];
    char kernel[256];
    int64_t sockets, cores_per_socket, threads_per_core; /* -1: unknown */
    char model[256];                                      /* "": unknown */
    int nnodes;                                           /* NUMA nodes, 0: unknown */
    int64_t *distances;                                   /* nnodes * nnodes */
    int64_t *node_size_mb;                                /* nnodes; -1: unknown */
    char affinity[1024];                                  /* "0-3,7"; "": unknown */
    char governor[64];                                    /* "": unreadable */
    int64_t freq_khz;                                     /* -1: unreadable */
    char thp[32];                                         /* "": unreadable */
    int smt_active;                                       /* -1: unreadable */
    char *cgroup;                                         /* raw /proc/PID/cgroup, or NULL */
    /* cgroup_limits: the tightest over the process's cgroup and its ancestors */
    const char *limits_source;                            /* "v1", "v2" or NULL */
    int64_t memory_max_bytes;                             /* -1: no limit */
    int64_t cpu_quota_us, cpu_period_us;                  /* -1: no quota */
};

/* Reads the environment of pid (its affinity and cgroup; the rest is the machine's).
 * Never fails: what cannot be read is left unknown. */
void dn_env_read(struct dn_env *env, pid_t pid);
void dn_env_free(struct dn_env *env);

/* The env record: {"kind": "env" (when tag), "ts_ms", "host", "kernel", "lscpu", "numa",
 * "affinity_inherited", "cpu_governor", "cpu_freq_khz", "thp_enabled", "smt_active",
 * "cgroup", "cgroup_limits"}. */
void dn_emit_env(const struct dn_emitter *e, const struct dn_env *env, bool tag);

/* "0-3,7" for the CPUs set in mask (n bits). */
void dn_env_range_list(const unsigned char *mask, int n, char *out, size_t len);

#endif
