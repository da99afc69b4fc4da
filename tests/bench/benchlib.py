"""benchlib.py - helpers shared by the benchmark scripts of tests/bench/."""

import os
import subprocess
import time


def run(cmd, **kw):
    """subprocess.run with text output captured; raises on failure."""
    r = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if r.returncode != 0:
        raise RuntimeError(f"failed ({r.returncode}): {' '.join(cmd)}\n{r.stderr}")
    return r


def proc_memory(pid):
    """VmHWM, VmRSS, RssAnon and RssFile of /proc/PID/status, bytes ({} when
    the process is gone)."""
    out = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                k = line.split(":")[0]
                if k in ("VmHWM", "VmRSS", "RssAnon", "RssFile"):
                    out[k] = int(line.split()[1]) * 1024
    except OSError:
        pass
    return out


def unmount(proc, mnt):
    """Unmounts mnt and waits for its foreground daemon proc; if it does
    not exit, SIGTERM, then SIGKILL, then a lazy unmount."""
    subprocess.run(["fusermount3", "-u", mnt], capture_output=True)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        subprocess.run(["fusermount3", "-uz", mnt], capture_output=True)


def mem_free():
    """MemFree of /proc/meminfo, bytes."""
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemFree:"):
                return int(line.split()[1]) * 1024
    return 0


def prefault(n):
    """Touch, then free, n bytes of anonymous memory (at most MemFree less
    2 GiB); returns the seconds it took.

    On a virtual machine that hands free memory back to the host
    (virtio-balloon free page reporting), the first write to each page
    given back costs a host fault: writes into fresh page cache then run
    at about 0.5 GB/s instead of about 6. Whoever allocates first pays.
    Called right before a timed step, this makes every contender start on
    pages the host backs, as on a physical machine."""
    n = min(n, mem_free() - (2 << 30))
    if n <= 0:
        return 0.0
    t0 = time.monotonic()
    a = bytearray(n)
    a[::4096] = b"\x01" * len(range(0, n, 4096))
    del a
    return time.monotonic() - t0


def init_store(mreg, store, conf=None):
    """`mreg init` of store unless it is one already: mregfs makes only its
    default store, one named with --store must exist."""
    if os.path.exists(os.path.join(store, "index", "data.mdb")):
        return
    subprocess.run([mreg] + (["-c", conf] if conf else []) +
                   ["--store", store, "init"], check=True,
                   stdout=subprocess.DEVNULL)
