#include "writer.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <string.h>
#include <unistd.h>

#include "ebpf_sample.h"

int dn_format_parse(const char *s, enum dn_format *out)
{
    if (!strcmp(s, "jsonl") || !strcmp(s, "ndjson"))
        *out = DN_FMT_JSONL;
    else if (!strcmp(s, "json"))
        *out = DN_FMT_JSON;
    else if (!strcmp(s, "csv"))
        *out = DN_FMT_CSV;
    else
        return -EINVAL;
    return 0;
}

int dn_writer_open(struct dn_writer *w, const char *path, enum dn_format fmt)
{
    memset(w, 0, sizeof *w);
    w->fmt = fmt;
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return -errno;
    w->f = fdopen(fd, "w");
    if (!w->f) {
        int e = errno;
        close(fd);
        return -e;
    }
    if (fmt == DN_FMT_JSON)
        fputs("[\n", w->f);
    return 0;
}

bool dn_writer_is_open(const struct dn_writer *w)
{
    return w->f != NULL;
}

static void flush_record(struct dn_writer *w)
{
    if (w->buf.oom && !w->err)
        w->err = -ENOMEM;
    if (!w->buf.oom) {
        if (w->fmt == DN_FMT_JSON && w->nrecords)
            fputs(",\n", w->f);
        fwrite(w->buf.data, 1, w->buf.len, w->f);
        if (w->fmt == DN_FMT_JSONL)
            fputc('\n', w->f);
        w->nrecords++;
    }
    w->buf.len = 0;
    w->buf.oom = false;
    /* Flushed per record so the file can be followed while the run goes on. */
    if (fflush(w->f) && !w->err)
        w->err = -errno;
}

void dn_writer_metadata(struct dn_writer *w, const struct dn_metadata *md)
{
    if (!w->f || w->fmt == DN_FMT_CSV)
        return;
    struct dn_emitter e;
    struct dn_json_writer jw;
    dn_json_emitter(&e, &jw, &w->buf);
    dn_emit_metadata(&e, md, true);
    flush_record(w);
}

static void csv_fields(struct dn_buf *b, const struct dn_metrics *m, bool *first)
{
    for (size_t i = 0; i < dn_metrics_nfields; i++) {
        const struct dn_field *f = &dn_metrics_fields[i];
        if (!*first)
            dn_buf_append(b, ",", 1);
        *first = false;
        switch (f->type) {
        case DN_FIELD_I64:
            dn_buf_printf(b, "%" PRId64, dn_field_i64(m, f));
            break;
        case DN_FIELD_U64:
            dn_buf_printf(b, "%" PRIu64, dn_field_u64(m, f));
            break;
        case DN_FIELD_F64:
            dn_buf_json_double(b, dn_field_f64(m, f));
            break;
        case DN_FIELD_OPT_I64:
            if (dn_field_i64(m, f) >= 0)
                dn_buf_printf(b, "%" PRId64, dn_field_i64(m, f));
            break;
        }
    }
}

static void csv_header(struct dn_buf *b, const char *prefix, bool *first)
{
    for (size_t i = 0; i < dn_metrics_nfields; i++) {
        if (!*first)
            dn_buf_append(b, ",", 1);
        *first = false;
        if (prefix)
            dn_buf_printf(b, "%s.%s", prefix, dn_metrics_fields[i].name);
        else
            dn_buf_puts(b, dn_metrics_fields[i].name);
    }
}

/* CSV: numbers only, so no field needs quoting. Tree samples become one row with
 * aggregated.* and parent.* columns; the per-child detail is in the JSON formats. */
static void csv_sample(struct dn_writer *w, const struct dn_sample *s)
{
    struct dn_buf *b = &w->buf;
    bool first = true;
    if (!w->csv_header_done) {
        if (s->tree) {
            dn_buf_puts(b, "ts_ms,process_count,aggregated.ebpf.syscalls.total");
            first = false;
            csv_header(b, "aggregated", &first);
            csv_header(b, "parent", &first);
        } else {
            csv_header(b, NULL, &first);
        }
        dn_buf_append(b, "\n", 1);
        w->csv_header_done = true;
        first = true;
    }
    if (s->tree) {
        dn_buf_printf(b, "%" PRId64 ",%" PRIu64 ",", s->ts_ms, s->process_count);
        if (s->ebpf && s->ebpf->has_syscalls)
            dn_buf_printf(b, "%" PRIu64, s->ebpf->total);
        first = false;
        static const struct dn_metrics zero = {.cpu_core = -1};
        csv_fields(b, s->has_aggregated ? &s->aggregated : &zero, &first);
        csv_fields(b, s->has_parent ? &s->parent : &zero, &first);
    } else {
        csv_fields(b, &s->parent, &first);
    }
    dn_buf_append(b, "\n", 1);
}

void dn_writer_sample(struct dn_writer *w, const struct dn_sample *s)
{
    if (!w->f)
        return;
    if (w->fmt == DN_FMT_CSV) {
        csv_sample(w, s);
    } else {
        struct dn_emitter e;
        struct dn_json_writer jw;
        dn_json_emitter(&e, &jw, &w->buf);
        dn_emit_sample(&e, s, true);
    }
    flush_record(w);
}

void dn_writer_summary(struct dn_writer *w, const struct dn_summary *s,
                       const struct dn_ebpf_sample *ebpf)
{
    if (!w->f || w->fmt == DN_FMT_CSV)
        return;
    struct dn_emitter e;
    struct dn_json_writer jw;
    dn_json_emitter(&e, &jw, &w->buf);
    dn_emit_summary(&e, s, ebpf, true);
    flush_record(w);
}

int dn_writer_close(struct dn_writer *w)
{
    if (!w->f)
        return w->err;
    if (w->fmt == DN_FMT_JSON)
        fputs("\n]\n", w->f);
    if (fclose(w->f) && !w->err)
        w->err = -errno;
    w->f = NULL;
    dn_buf_free(&w->buf);
    return w->err;
}
