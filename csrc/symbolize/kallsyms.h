/* Kernel frames: /proc/kallsyms read once per process (about 120k text symbols), kept
 * sorted for binary search. Thread-safe. */
#ifndef DENET_SYMBOLIZE_KALLSYMS_H
#define DENET_SYMBOLIZE_KALLSYMS_H

#include <stddef.h>
#include <stdint.h>

/* Starts reading the table in a background thread (a tenth of a second, most of it
 * the kernel formatting the text), so the first sample with kernel stacks does not
 * wait for it. Does nothing once read or while being read. */
void dn_kallsyms_prefetch(void);

/* The function that contains addr, or NULL. On NULL, *why (if given) is a sentence:
 * the table could not be read, its addresses are hidden (kptr_restrict), or the
 * address is outside every known function. */
const char *dn_kallsyms_lookup(uint64_t addr, const char **why);

#endif
