#include "core/capabilities.h"

#include <stdarg.h>
#include <stdio.h>

#include "core/emit.h"

#define OPS (e->ops)
#define CTX (e->ctx)

void dn_cap_set(struct dn_cap *c, bool available, const char *fmt, ...)
{
    c->available = available;
    c->reason[0] = '\0';
    if (!fmt)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->reason, sizeof c->reason, fmt, ap);
    va_end(ap);
}

static void reason(const struct dn_emitter *e, const char *r)
{
    if (r[0])
        OPS->str(CTX, "reason", r);
    else
        OPS->null(CTX, "reason");
}

static void cap(const struct dn_emitter *e, const char *key, const struct dn_cap *c)
{
    OPS->begin_object(CTX, key);
    OPS->boolean(CTX, "available", c->available);
    reason(e, c->reason);
    OPS->end_object(CTX);
}

void dn_emit_capabilities(const struct dn_emitter *e, const char *key,
                          const struct dn_capabilities *c)
{
    OPS->begin_object(CTX, key);
    cap(e, "ebpf", &c->ebpf);
    cap(e, "sock", &c->sock);
    OPS->begin_object(CTX, "psi");
    OPS->boolean(CTX, "system", c->psi.system);
    OPS->boolean(CTX, "per_process", c->psi.per_process);
    if (c->psi.source[0])
        OPS->str(CTX, "source", c->psi.source);
    else
        OPS->null(CTX, "source");
    reason(e, c->psi.reason);
    OPS->end_object(CTX);
    OPS->begin_object(CTX, "perf_hw");
    OPS->boolean(CTX, "available", c->perf_hw.available);
    OPS->begin_list(CTX, "events");
    for (int i = 0; i < c->perf_hw.nevents; i++)
        OPS->str(CTX, NULL, c->perf_hw.events[i]);
    OPS->end_list(CTX);
    reason(e, c->perf_hw.reason);
    OPS->end_object(CTX);
    cap(e, "gpu", &c->gpu);
    cap(e, "delayacct", &c->delayacct);
    OPS->end_object(CTX);
}
