"""A small workload that exercises everything denet measures: CPU, memory, disk, sleeps,
and child processes (some of which exit between samples)."""
import os
import subprocess
import sys
import tempfile
import time


def burn(secs):
    t = time.process_time()
    while time.process_time() - t < secs:
        pass


def main():
    print("workload: burning CPU for 1 s", flush=True)
    burn(1.0)

    print("workload: allocating and touching 200 MiB", flush=True)
    block = bytearray(200 << 20)
    for i in range(0, len(block), 4096):
        block[i] = 1
    time.sleep(0.5)
    del block

    print("workload: writing 64 MiB with fsync, then reading it back", flush=True)
    with tempfile.NamedTemporaryFile(dir=os.environ.get("DENET_DEMO_DIR", "/var/tmp")) as f:
        chunk = os.urandom(1 << 20)
        for _ in range(64):
            f.write(chunk)
        f.flush()
        os.fsync(f.fileno())
        f.seek(0)
        while f.read(1 << 20):
            pass

    print("workload: sleeping 1 s", flush=True)
    time.sleep(1.0)

    print("workload: 3 children burning CPU in parallel, then 10 short-lived ones", flush=True)
    code = "import time\nt = time.process_time()\nwhile time.process_time() - t < {}: pass"
    kids = [subprocess.Popen([sys.executable, "-S", "-c", code.format(1.0)]) for _ in range(3)]
    for k in kids:
        k.wait()
    for _ in range(10):
        subprocess.run([sys.executable, "-S", "-c", code.format(0.05)], check=True)
    print("workload: done", flush=True)


if __name__ == "__main__":
    main()
