/* Starting the monitored command: fork, set up, exec, with a close-on-exec error pipe so
 * that a failed exec is reported to the caller as an errno, and an optional "go" pipe
 * that holds the child before exec while the caller registers it (e.g. with eBPF). */
#ifndef DENET_SPAWN_H
#define DENET_SPAWN_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct dn_spawn_opts {
    const char *path;        /* resolved executable (dn_resolve_executable) */
    char *const *argv;       /* NULL-terminated */
    char *const *envp;       /* NULL-terminated, or NULL to inherit */
    const char *cwd;         /* or NULL */
    int stdout_fd, stderr_fd; /* -1: inherit */
    bool new_session;
    bool hold_before_exec;
};

struct dn_spawned {
    pid_t pid;
    int go_fd;   /* write end of the go pipe while the child is held */
    int err_fd;  /* read end of the error pipe until the exec is confirmed */
};

/* Where the child failed, for the error message. */
enum dn_spawn_stage { DN_STAGE_NONE, DN_STAGE_SETUP, DN_STAGE_CHDIR, DN_STAGE_EXEC };

/* Frees a NULL-terminated vector of malloc'd strings (argv, envp); NULL is allowed. */
void dn_free_strv(char **v);

/* Finds name on PATH (taken from envp when given) like execvp. Writes the path into out
 * and returns 0, or -ENOENT / -EACCES. Names with a slash are used as they are. */
int dn_resolve_executable(const char *name, char *const *envp, char *out, size_t outlen);

/* Forks the child. Returns -errno when the pipes or fork failed. With hold_before_exec the
 * child waits for dn_spawn_release() and 0 is returned. Otherwise waits for the exec:
 * returns 0 when it happened, 1 with *child_errno and *stage when it failed. */
int dn_spawn(const struct dn_spawn_opts *o, struct dn_spawned *s, int *child_errno,
             enum dn_spawn_stage *stage);

/* Lets a held child go on to exec and waits until it did. Returns 0, or -1 with
 * *child_errno and *stage set when the child failed (it has then been reaped). */
int dn_spawn_release(struct dn_spawned *s, int *child_errno, enum dn_spawn_stage *stage);

/* Kills and reaps a held child that will not be released. */
void dn_spawn_abort(struct dn_spawned *s);

#endif
