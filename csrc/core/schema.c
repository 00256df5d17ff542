#include "core/schema.h"

#define F(name, unit, type, desc) {#name, unit, type, offsetof(struct dn_metrics, name), desc}

const struct dn_field dn_metrics_fields[] = {
    F(ts_ms, "ms", DN_FIELD_I64, "when this process was read (ms since the Unix epoch)"),
    F(cpu_usage, "%", DN_FIELD_F64,
      "CPU time of all threads over wall time since the previous read of this pid; 100 = one core busy"),
    F(mem_rss_kb, "KiB", DN_FIELD_U64, "resident set size"),
    F(mem_vms_kb, "KiB", DN_FIELD_U64, "virtual memory size"),
    F(disk_read_bytes, "bytes", DN_FIELD_OPT_U64,
      "bytes read from the block layer (/proc/PID/io read_bytes) (None when /proc/PID/io may not be read: another user's process; run as root or as its owner)"),
    F(disk_write_bytes, "bytes", DN_FIELD_OPT_U64,
      "bytes written to the block layer (/proc/PID/io write_bytes) (None when /proc/PID/io may not be read: another user's process; run as root or as its owner)"),
    F(syscall_read_bytes, "bytes", DN_FIELD_OPT_U64,
      "bytes through read-like calls, page-cache hits included (rchar) (None when /proc/PID/io may not be read: another user's process; run as root or as its owner)"),
    F(syscall_write_bytes, "bytes", DN_FIELD_OPT_U64,
      "bytes through write-like calls (wchar) (None when /proc/PID/io may not be read: another user's process; run as root or as its owner)"),
    F(page_faults_cached, "count", DN_FIELD_U64, "minor page faults"),
    F(page_faults_disk, "count", DN_FIELD_U64, "major page faults (needed I/O)"),
    F(sys_net_rx_bytes, "bytes", DN_FIELD_U64,
      "bytes received by the process's network namespace, lo excluded (not per process)"),
    F(sys_net_tx_bytes, "bytes", DN_FIELD_U64,
      "bytes sent by the process's network namespace, lo excluded (not per process)"),
    F(thread_count, "count", DN_FIELD_U64, "threads of the process"),
    F(uptime_secs, "s", DN_FIELD_U64, "seconds since the process started"),
    F(cpu_core, "index", DN_FIELD_OPT_I64, "CPU the process last ran on, or None"),
    F(gpu_memory_bytes, "bytes", DN_FIELD_OPT_U64,
      "NVIDIA GPU memory the process holds, summed over devices (NVML) (None without GPU monitoring: no driver, gpu=False, or the read failed)"),
    F(gpu_sm_utilization, "%", DN_FIELD_OPT_U64,
      "SM (kernel) time of the process over NVML's samples since the previous read, summed over devices; 100 = one GPU busy (None without GPU monitoring)"),
};

const size_t dn_metrics_nfields = sizeof(dn_metrics_fields) / sizeof(dn_metrics_fields[0]);
