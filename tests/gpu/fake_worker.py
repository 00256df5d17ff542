"""A stand-in for bench/gpu_check.py's CUDA worker, for testing the check itself against
the fake NVML (tests/gpu/fake_nvml.c): `fake_worker.py MIB SECS` puts itself on device 0
of FAKE_NVML_CONFIG with MIB + 300 MiB (a CUDA context's worth) and 33 % SM, then
sleeps SECS."""
import fcntl
import os
import sys
import time

mib, secs = int(sys.argv[1]), float(sys.argv[2])
config = os.environ["FAKE_NVML_CONFIG"]
with open(config + ".lock", "w") as lock:
    fcntl.flock(lock, fcntl.LOCK_EX)  # the other worker appends too
    with open(config) as f:
        text = f.read()
    text += f"compute 0 {os.getpid()} {(mib + 300) << 20}\nutil 0 {os.getpid()} 33 5\n"
    with open(config + ".tmp", "w") as f:
        f.write(text)
    os.replace(config + ".tmp", config)  # the fake NVML never reads half a file
time.sleep(secs)
