#include "core/spawn.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

void dn_free_strv(char **v)
{
    if (!v)
        return;
    for (char **p = v; *p; p++)
        free(*p);
    free(v);
}

int dn_resolve_executable(const char *name, char *const *envp, char *out, size_t outlen)
{
    if (!*name)
        return -ENOENT;
    if (strchr(name, '/')) {
        if (strlen(name) >= outlen)
            return -ENAMETOOLONG;
        strcpy(out, name);
        return 0;
    }
    const char *path = NULL;
    for (char *const *e = envp ? envp : environ; e && *e; e++)
        if (!strncmp(*e, "PATH=", 5)) {
            path = *e + 5;
            break;
        }
    if (!path)
        path = "/usr/local/bin:/usr/bin:/bin";
    int err = -ENOENT;
    const char *p = path;
    for (;;) {
        const char *end = strchrnul(p, ':');
        size_t dlen = (size_t)(end - p);
        char cand[PATH_MAX];
        if (dlen == 0)
            snprintf(cand, sizeof cand, "./%s", name);
        else
            snprintf(cand, sizeof cand, "%.*s/%s", (int)dlen, p, name);
        struct stat st;
        if (stat(cand, &st) == 0 && S_ISREG(st.st_mode)) {
            if (access(cand, X_OK) == 0) {
                if (strlen(cand) >= outlen)
                    return -ENAMETOOLONG;
                strcpy(out, cand);
                return 0;
            }
            err = -EACCES;
        }
        if (!*end)
            break;
        p = end + 1;
    }
    return err;
}

struct child_report {
    int stage;
    int err;
};

/* Only async-signal-safe calls from here to exec: the parent may have other threads. */
static void __attribute__((noreturn)) child_main(const struct dn_spawn_opts *o, int go_rd,
                                                 int err_wr)
{
    struct child_report rep = {DN_STAGE_SETUP, 0};
    sigset_t all;
    sigemptyset(&all);
    sigprocmask(SIG_SETMASK, &all, NULL);
    /* Python ignores these; an exec'd program must get the defaults back. */
    signal(SIGPIPE, SIG_DFL);
    signal(SIGXFSZ, SIG_DFL);

    if (go_rd >= 0) {
        char c;
        ssize_t n;
        do {
            n = read(go_rd, &c, 1);
        } while (n < 0 && errno == EINTR);
        if (n != 1)
            _exit(127); /* the parent gave up on us */
        close(go_rd);
    }
    if (o->new_session && setsid() < 0)
        goto fail;
    if (o->stdout_fd >= 0 && o->stdout_fd != 1 && dup2(o->stdout_fd, 1) < 0)
        goto fail;
    if (o->stderr_fd >= 0 && o->stderr_fd != 2 && dup2(o->stderr_fd, 2) < 0)
        goto fail;
    if (o->stdout_fd == 1)
        fcntl(1, F_SETFD, 0);
    if (o->stderr_fd == 2)
        fcntl(2, F_SETFD, 0);
    if (o->cwd && chdir(o->cwd) < 0) {
        rep.stage = DN_STAGE_CHDIR;
        goto fail;
    }
    /* Do not leak the interpreter's descriptors into the command. */
    syscall(SYS_close_range, 3U, ~0U, 4U /* CLOSE_RANGE_CLOEXEC */);
    rep.stage = DN_STAGE_EXEC;
    execve(o->path, o->argv, o->envp ? o->envp : environ);
fail:
    rep.err = errno;
    ssize_t w = write(err_wr, &rep, sizeof rep);
    (void)w;
    _exit(127);
}

int dn_spawn(const struct dn_spawn_opts *o, struct dn_spawned *s, int *child_errno,
             enum dn_spawn_stage *stage)
{
    int errp[2], gop[2] = {-1, -1};
    s->pid = -1;
    s->go_fd = s->err_fd = -1;
    if (pipe2(errp, O_CLOEXEC) < 0)
        return -errno;
    if (o->hold_before_exec && pipe2(gop, O_CLOEXEC) < 0) {
        int e = errno;
        close(errp[0]);
        close(errp[1]);
        return -e;
    }
    pid_t pid = fork();
    if (pid < 0) {
        int e = errno;
        close(errp[0]);
        close(errp[1]);
        if (gop[0] >= 0) {
            close(gop[0]);
            close(gop[1]);
        }
        return -e;
    }
    if (pid == 0)
        child_main(o, gop[0], errp[1]);
    close(errp[1]);
    if (gop[0] >= 0)
        close(gop[0]);
    s->pid = pid;
    s->go_fd = gop[1];
    s->err_fd = errp[0];
    if (o->hold_before_exec)
        return 0;
    return dn_spawn_release(s, child_errno, stage) == 0 ? 0 : 1;
}

int dn_spawn_release(struct dn_spawned *s, int *child_errno, enum dn_spawn_stage *stage)
{
    *child_errno = 0;
    *stage = DN_STAGE_NONE;
    if (s->go_fd >= 0) {
        char c = 1;
        ssize_t w;
        do {
            w = write(s->go_fd, &c, 1);
        } while (w < 0 && errno == EINTR);
        close(s->go_fd);
        s->go_fd = -1;
    }
    struct child_report rep;
    ssize_t n;
    do {
        n = read(s->err_fd, &rep, sizeof rep);
    } while (n < 0 && errno == EINTR);
    close(s->err_fd);
    s->err_fd = -1;
    if (n == (ssize_t)sizeof rep) {
        /* The child failed before exec and exits: reap it so no zombie is left. */
        int st;
        while (waitpid(s->pid, &st, 0) < 0 && errno == EINTR)
            ;
        *child_errno = rep.err;
        *stage = (enum dn_spawn_stage)rep.stage;
        s->pid = -1;
        return -1;
    }
    return 0; /* EOF: the exec closed the pipe */
}

void dn_spawn_abort(struct dn_spawned *s)
{
    if (s->pid > 0) {
        kill(s->pid, SIGKILL);
        int st;
        while (waitpid(s->pid, &st, 0) < 0 && errno == EINTR)
            ;
    }
    if (s->go_fd >= 0)
        close(s->go_fd);
    if (s->err_fd >= 0)
        close(s->err_fd);
    s->go_fd = s->err_fd = -1;
    s->pid = -1;
}
