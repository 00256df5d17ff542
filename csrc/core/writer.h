/* Sample files: JSON lines (each tagged with "kind"), one JSON array, or CSV whose
 * columns are the schema's fields (dotted for tree samples). */
#ifndef DENET_WRITER_H
#define DENET_WRITER_H

#include <stdbool.h>
#include <stdio.h>

#include "core/emit.h"
#include "core/jsonbuf.h"

enum dn_format { DN_FMT_JSONL, DN_FMT_JSON, DN_FMT_CSV };

/* "jsonl", "json" or "csv"; returns -EINVAL for anything else. */
int dn_format_parse(const char *s, enum dn_format *out);

struct dn_writer {
    FILE *f;
    enum dn_format fmt;
    size_t nrecords;
    bool csv_header_done;
    bool csv_ebpf;   /* the CSV has eBPF syscall columns */
    bool csv_psi;    /* ... psi_mem columns */
    bool csv_perf;   /* ... perf counter columns */
    int err;         /* first write error (-errno), sticky */
    struct dn_buf buf;
    struct dn_json_keys keys;  /* the JSON keys, escaped once for the whole file */
};

int dn_writer_open(struct dn_writer *w, const char *path, enum dn_format fmt); /* 0/-errno */
/* Writes to a duplicate of an open file descriptor (a pipe, stdout). 0 or -errno. */
int dn_writer_open_fd(struct dn_writer *w, int fd, enum dn_format fmt);
void dn_writer_metadata(struct dn_writer *w, const struct dn_metadata *md);
struct dn_env;
void dn_writer_env(struct dn_writer *w, const struct dn_env *env); /* the env record */
void dn_writer_sample(struct dn_writer *w, const struct dn_sample *s);
void dn_writer_summary(struct dn_writer *w, const struct dn_summary *s,
                       const struct dn_ebpf_sample *ebpf);
int dn_writer_close(struct dn_writer *w); /* 0 or the first error */
/* Closes without writing anything more (the JSON trailer included): for a forked child,
 * whose file offset is shared with the parent that goes on writing. */
void dn_writer_abandon(struct dn_writer *w);
bool dn_writer_is_open(const struct dn_writer *w);

#endif
