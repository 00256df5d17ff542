#include "core/writer.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "core/env.h"
#include "core/memchar.h"
#include "ebpf/ebpf_sample.h"
#include "ebpf/syscall_table.h"

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

static int open_stream(struct dn_writer *w, int fd, enum dn_format fmt)
{
    memset(w, 0, sizeof *w);
    w->fmt = fmt;
    w->keys.csv = fmt == DN_FMT_CSV; /* a CSV file's only JSON is its children cells */
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

int dn_writer_open(struct dn_writer *w, const char *path, enum dn_format fmt)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return -errno;
    return open_stream(w, fd, fmt);
}

int dn_writer_open_fd(struct dn_writer *w, int fd, enum dn_format fmt)
{
    int dup_fd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
    if (dup_fd < 0)
        return -errno;
    return open_stream(w, dup_fd, fmt);
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
    dn_json_emitter(&e, &jw, &w->buf, &w->keys);
    dn_emit_metadata(&e, md, true);
    flush_record(w);
}

void dn_writer_env(struct dn_writer *w, const struct dn_env *env)
{
    if (!w->f || w->fmt == DN_FMT_CSV)
        return;
    struct dn_emitter e;
    struct dn_json_writer jw;
    dn_json_emitter(&e, &jw, &w->buf, &w->keys);
    dn_emit_env(&e, env, true);
    flush_record(w);
}

static void csv_fields(struct dn_buf *b, const struct dn_metrics *m, bool *first)
{
    for (size_t i = 0; i < dn_metrics_nfields; i++) {
        const struct dn_field *f = &dn_metrics_fields[i];
        if (!*first)
            dn_buf_append(b, ",", 1);
        *first = false;
        union dn_value v;
        switch (dn_field_value(m, f, &v)) {
        case DN_VALUE_NULL:
            break;
        case DN_VALUE_I64:
            dn_buf_i64(b, v.i);
            break;
        case DN_VALUE_U64:
            dn_buf_u64(b, v.u);
            break;
        case DN_VALUE_F64:
            dn_buf_json_double(b, v.f);
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

/* psi_mem and perf columns (after the eBPF ones, as denet._formats.csv_columns orders
 * them), header or cells. */
static void csv_memchar_header(struct dn_writer *w, const char *prefix)
{
    if (w->csv_psi)
        dn_buf_printf(&w->buf, ",%spsi_mem.some_avg10,%spsi_mem.full_avg10", prefix, prefix);
    if (w->csv_perf)
        for (int i = 0; i < DN_PERF_NEVENTS; i++)
            dn_buf_printf(&w->buf, ",%sperf.%s", prefix, dn_perf_names[i]);
}

static void csv_memchar_cells(struct dn_writer *w, const struct dn_sample *s)
{
    struct dn_buf *b = &w->buf;
    if (w->csv_psi) {
        dn_buf_append(b, ",", 1);
        if (s->has_psi)
            dn_buf_json_double(b, s->psi_some_avg10);
        dn_buf_append(b, ",", 1);
        if (s->has_psi && s->psi_full_avg10 == s->psi_full_avg10)
            dn_buf_json_double(b, s->psi_full_avg10);
    }
    if (w->csv_perf)
        for (int i = 0; i < DN_PERF_NEVENTS; i++) {
            dn_buf_append(b, ",", 1);
            if (s->perf_valid & (1u << i))
                dn_buf_u64(b, s->perf[i]);
        }
}

/* CSV columns use the dotted names of denet._formats.flatten: ts_ms, aggregated.*,
 * aggregated.process_count, the eBPF syscall counts when present, psi_mem and perf
 * when present, parent.*, and the children as JSON text. The header follows the first
 * sample. */
static void csv_sample(struct dn_writer *w, const struct dn_sample *s)
{
    struct dn_buf *b = &w->buf;
    bool first = true;
    if (!w->csv_header_done) {
        w->csv_ebpf = s->ebpf && s->ebpf->has_syscalls;
        w->csv_psi = s->has_psi;
        w->csv_perf = s->perf_valid != 0;
        if (s->tree) {
            dn_buf_puts(b, "ts_ms");
            first = false;
            csv_header(b, "aggregated", &first);
            dn_buf_puts(b, ",aggregated.process_count");
            if (w->csv_ebpf) {
                dn_buf_puts(b, ",aggregated.ebpf.syscalls.total");
                for (int c = 0; c < DN_CAT_COUNT; c++)
                    dn_buf_printf(b, ",aggregated.ebpf.syscalls.by_category.%s",
                                  dn_category_name((enum dn_syscall_category)c));
            }
            csv_memchar_header(w, "aggregated.");
            csv_header(b, "parent", &first);
            dn_buf_puts(b, ",children");
        } else {
            csv_header(b, NULL, &first);
            if (w->csv_ebpf) {
                dn_buf_puts(b, ",ebpf.syscalls.total");
                for (int c = 0; c < DN_CAT_COUNT; c++)
                    dn_buf_printf(b, ",ebpf.syscalls.by_category.%s",
                                  dn_category_name((enum dn_syscall_category)c));
            }
            csv_memchar_header(w, "");
        }
        dn_buf_append(b, "\n", 1);
        w->csv_header_done = true;
        first = true;
    }
    static const struct dn_metrics zero = {.cpu_core = -1, .gpu_memory_bytes = DN_U64_NONE,
                                           .gpu_sm_utilization = DN_U64_NONE};
    if (s->tree) {
        dn_buf_i64(b, s->ts_ms);
        first = false;
        csv_fields(b, s->has_aggregated ? &s->aggregated : &zero, &first);
        dn_buf_append(b, ",", 1);
        dn_buf_u64(b, s->process_count);
    } else {
        csv_fields(b, &s->parent, &first);
    }
    if (w->csv_ebpf) {
        bool have = s->ebpf && s->ebpf->has_syscalls;
        dn_buf_append(b, ",", 1);
        if (have)
            dn_buf_u64(b, s->ebpf->total);
        for (int c = 0; c < DN_CAT_COUNT; c++) {
            dn_buf_append(b, ",", 1);
            if (have)
                dn_buf_u64(b, s->ebpf->by_category[c]);
        }
    }
    csv_memchar_cells(w, s);
    if (s->tree) {
        csv_fields(b, s->has_parent ? &s->parent : &zero, &first);
        /* The children as one JSON cell, like denet._formats.flatten does with lists. A
         * list with items holds quotes (its keys), so the cell is quoted and they are
         * doubled; an empty list is [] as it is. */
        if (s->nchildren) {
            struct dn_emitter e;
            struct dn_json_writer jw;
            dn_json_emitter(&e, &jw, b, &w->keys); /* keys.csv: quotes doubled */
            dn_buf_append(b, ",\"", 2);
            dn_emit_children(&e, s);
            dn_buf_append(b, "\"", 1);
        } else {
            dn_buf_append(b, ",[]", 3);
        }
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
        dn_json_emitter(&e, &jw, &w->buf, &w->keys);
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
    dn_json_emitter(&e, &jw, &w->buf, &w->keys);
    dn_emit_summary(&e, s, ebpf, true);
    flush_record(w);
}

static void free_buffers(struct dn_writer *w)
{
    dn_buf_free(&w->buf);
    dn_json_keys_free(&w->keys);
}

void dn_writer_abandon(struct dn_writer *w)
{
    if (!w->f)
        return;
    /* Records are flushed one by one, but a record the parent's sampler was writing when
     * the fork happened may sit in the buffer: closing the descriptor first drops it. */
    close(fileno(w->f));
    fclose(w->f);
    w->f = NULL;
    free_buffers(w);
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
    free_buffers(w);
    return w->err;
}
