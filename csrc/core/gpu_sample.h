/* The GPU part of a sample and of the summary, as C data (README's GPU section): what
 * csrc/core/gpu.c read from NVML for one sample, and the running GPU summary. Field
 * names follow denet 0.5.0 (btraven00/denet src/gpu/mod.rs). Unknown values are
 * DN_U64_NONE (null in every output). */
#ifndef DENET_GPU_SAMPLE_H
#define DENET_GPU_SAMPLE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#define DN_GPU_NAME_LEN 96 /* NVML_DEVICE_NAME_V2_BUFFER_SIZE */

/* `system_metrics` entry: one device, the whole device (every process on it). */
struct dn_gpu_device {
    uint32_t index;
    char name[DN_GPU_NAME_LEN];
    uint64_t util_gpu;     /* %: time a kernel ran over NVML's last sample period */
    uint64_t util_memory;  /* %: time device memory was read or written */
    uint64_t memory_total; /* bytes */
    uint64_t memory_used;  /* bytes */
    uint64_t memory_free;  /* bytes */
    uint64_t temperature;  /* degrees C */
    uint64_t power_mw;     /* milliwatts, as NVML reports it */
};

/* `process_data` entry: one process of the monitored tree on one device. */
struct dn_gpu_proc {
    int32_t pid;
    uint32_t device_index;
    uint64_t gpu_util;    /* %: SM utilization since the previous read */
    uint64_t memory;      /* bytes of device memory it holds */
    uint64_t memory_util; /* %: memory (frame buffer) utilization since the previous read */
};

struct dn_gpu_sample {
    char *error;            /* malloc'd sentence: a call that failed in this read, or NULL */
    bool enabled;           /* false: GPU monitoring was asked for but is off (error says why) */
    bool memory_known;      /* per-process memory was read on every device */
    bool util_known;        /* per-process utilization was read on every device */
    uint32_t ndevices;
    struct dn_gpu_device *devices;
    uint32_t nprocs;
    struct dn_gpu_proc *procs; /* sorted by device, then pid */
};

struct dn_gpu_sample *dn_gpu_sample_new_error(const char *error); /* enabled = false */
struct dn_gpu_sample *dn_gpu_sample_dup(const struct dn_gpu_sample *s);
void dn_gpu_sample_free(struct dn_gpu_sample *s);

/* The figures of one process over every device: its GPU memory (bytes) and its SM
 * utilization (%, summed over devices). 0 for a process NVML does not list; DN_U64_NONE
 * when they could not be read. */
void dn_gpu_sample_process(const struct dn_gpu_sample *s, pid_t pid, uint64_t *memory,
                           uint64_t *sm_util);

/* The summary's `gpu` object, kept up to date sample by sample. */
struct dn_gpu_summary {
    bool present;              /* GPU monitoring was asked for (on, or on when NVML loads) */
    bool enabled;              /* NVML loaded and found devices */
    uint32_t device_count;
    uint64_t samples;          /* samples with a GPU reading */
    uint64_t total_memory;     /* bytes: sum of the devices' memory_total */
    uint64_t peak_used_memory; /* bytes: largest sum of the devices' memory_used at one sample */
    uint64_t max_system_util;  /* %: largest device utilization */
    uint64_t max_process_util; /* %: largest utilization of one process of the tree, or NONE */
    uint64_t peak_tree_memory; /* bytes: largest GPU memory of the tree at one sample */
    const char *error;         /* why it is off (owned by the session), or NULL */
};

/* Folds one sample in; tree_memory is the tree's GPU memory in it (DN_U64_NONE: unknown). */
void dn_gpu_summary_add(struct dn_gpu_summary *sum, const struct dn_gpu_sample *s,
                        uint64_t tree_memory);

#endif
