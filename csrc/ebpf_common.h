/* Helpers shared by the eBPF loaders. */
#ifndef DENET_EBPF_COMMON_H
#define DENET_EBPF_COMMON_H

#include <stddef.h>

/* Writes "<what> failed: <strerror>; <how to fix>" into buf, the fix chosen from the
 * errno (privilege, missing BTF, kernel support). */
void dn_ebpf_explain(char *buf, size_t len, const char *what, int neg_errno);

/* Routes libbpf's own log to stderr only when DENET_DEBUG_BPF is set. */
void dn_ebpf_init_logging(void);

#endif
