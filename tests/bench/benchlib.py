"""benchlib.py - helpers shared by the benchmark scripts of tests/bench/."""

import time


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
