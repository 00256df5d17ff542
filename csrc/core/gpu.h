/* NVIDIA GPUs through NVML, loaded at run time: dlopen("libnvidia-ml.so.1") (or the path
 * in DENET_NVML_LIBRARY), never linked and never a subprocess. A machine without the
 * driver builds and runs unchanged; dn_gpu_open then says why there is no GPU.
 * C only: the sampler thread calls dn_gpu_read under the session's lock. */
#ifndef DENET_GPU_H
#define DENET_GPU_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "core/gpu_sample.h"

struct dn_gpu;

/* Loads NVML, initialises it and finds the devices. Returns 0, or -ENOENT (no library),
 * -ENOSYS (a function denet needs is missing), -EIO (nvmlInit or the device count
 * failed), -ENODEV (no device), -ENOMEM, with the reason in err (a sentence that says
 * what to do). */
int dn_gpu_open(struct dn_gpu **out, char *err, size_t errlen);

/* nvmlShutdown and free. NULL is fine. The library stays mapped (NVML is not meant to
 * be unloaded while the process runs). */
void dn_gpu_close(struct dn_gpu *g);

/* In the child of fork(): frees our memory without calling NVML (its state belongs to
 * the parent). */
void dn_gpu_abandon(struct dn_gpu *g);

uint32_t dn_gpu_device_count(const struct dn_gpu *g);

/* One reading of every device, and of the processes among pids[0..npids) that NVML
 * lists on them. *out is a new sample (caller frees) whose error says which call
 * failed, if one did. Returns 0 or -ENOMEM. */
int dn_gpu_read(struct dn_gpu *g, const pid_t *pids, size_t npids, struct dn_gpu_sample **out);

#endif
