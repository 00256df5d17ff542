#include "symbolize/kallsyms.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/grow.h"

struct ksym {
    uint64_t addr;
    size_t name; /* offset into names */
};

/* Loaded once and kept for the life of the process: kernel text does not move, and
 * every monitor in the process shares it. */
static struct {
    pthread_mutex_t lock;
    bool loaded, prefetching;
    const char *error; /* why there is no table */
    struct ksym *v;
    size_t n, cap;
    char *names;
    size_t names_len, names_cap;
} K = {.lock = PTHREAD_MUTEX_INITIALIZER};

static int cmp_ksym(const void *a, const void *b)
{
    uint64_t x = ((const struct ksym *)a)->addr, y = ((const struct ksym *)b)->addr;
    return x < y ? -1 : x > y;
}

static void load_locked(void)
{
    K.loaded = true;
    FILE *f = fopen("/proc/kallsyms", "re");
    if (!f) {
        K.error = "/proc/kallsyms cannot be read, so kernel frames are not named";
        return;
    }
    /* Large reads: the kernel formats the table as it is read, page by page. */
    static char iobuf[1 << 18];
    setvbuf(f, iobuf, _IOFBF, sizeof iobuf);
    char line[512];
    bool any_addr = false;
    while (fgets(line, sizeof line, f)) {
        char *end;
        uint64_t addr = strtoull(line, &end, 16);
        if (end == line || end[0] != ' ' || !end[1] || end[2] != ' ')
            continue;
        char type = end[1];
        /* text symbols only: stacks hold code addresses */
        if (type != 't' && type != 'T' && type != 'w' && type != 'W')
            continue;
        char *name = end + 3;
        name[strcspn(name, " \t\n")] = '\0';
        size_t len = strlen(name) + 1;
        if (dn_grow(&K.v, &K.cap, K.n + 1, sizeof *K.v, 4096) ||
            dn_grow(&K.names, &K.names_cap, K.names_len + len, 1, 1 << 20)) {
            K.error = "out of memory reading /proc/kallsyms";
            break;
        }
        memcpy(K.names + K.names_len, name, len);
        K.v[K.n++] = (struct ksym){addr, K.names_len};
        K.names_len += len;
        any_addr |= addr != 0;
    }
    fclose(f);
    if (!K.error && !any_addr)
        K.error = "kernel addresses are hidden in /proc/kallsyms (kernel.kptr_restrict); "
                  "run as root or set kernel.kptr_restrict=0 to name kernel frames";
    if (K.error) {
        free(K.v);
        free(K.names);
        K.v = NULL;
        K.names = NULL;
        K.n = 0;
        return;
    }
    qsort(K.v, K.n, sizeof *K.v, cmp_ksym);
}

/* fork() while another thread holds the lock (a prefetch, a sampler naming frames)
 * would leave it locked for good in the child: fork waits for it instead. */
static void atfork_prepare(void)
{
    pthread_mutex_lock(&K.lock);
}

static void atfork_release(void)
{
    pthread_mutex_unlock(&K.lock);
}

static void register_atfork(void)
{
    pthread_atfork(atfork_prepare, atfork_release, atfork_release);
}

static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;

static void *prefetch_main(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&K.lock);
    if (!K.loaded)
        load_locked();
    K.prefetching = false;
    pthread_mutex_unlock(&K.lock);
    return NULL;
}

void dn_kallsyms_prefetch(void)
{
    pthread_once(&atfork_once, register_atfork);
    pthread_mutex_lock(&K.lock);
    bool start = !K.loaded && !K.prefetching;
    K.prefetching = start;
    pthread_mutex_unlock(&K.lock);
    if (!start)
        return;
    pthread_t t;
    pthread_attr_t a;
    pthread_attr_init(&a);
    pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old); /* signals are for the host's threads */
    if (pthread_create(&t, &a, prefetch_main, NULL) != 0) {
        pthread_mutex_lock(&K.lock);
        K.prefetching = false; /* read on first use instead */
        pthread_mutex_unlock(&K.lock);
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    pthread_attr_destroy(&a);
}

const char *dn_kallsyms_lookup(uint64_t addr, const char **why)
{
    pthread_once(&atfork_once, register_atfork);
    pthread_mutex_lock(&K.lock);
    if (!K.loaded)
        load_locked();
    const char *name = NULL, *err = K.error;
    size_t lo = 0, hi = K.n;
    while (lo < hi) { /* the last symbol at or below addr */
        size_t mid = lo + (hi - lo) / 2;
        if (K.v[mid].addr <= addr)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo > 0)
        name = K.names + K.v[lo - 1].name;
    else if (!err)
        err = "the address is below every kernel symbol";
    pthread_mutex_unlock(&K.lock);
    if (why)
        *why = name ? NULL : err;
    return name;
}
