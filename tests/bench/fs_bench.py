#!/usr/bin/python3
"""fs_bench.py - mregfs against a native directory of the same filesystem,
in the same run: cp of a large file in, sequential read (cold, then warm)
of it through stages/Production, and warm stat(2).

Usage: fs_bench.py --mregfs BIN --file FILE --work DIR --out FILE.json
                   [--reps N] [--conf FILE] [--pidfile FILE]

Per repetition, every mregfs measurement uses a fresh store and a fresh
mount (under --work), so a cold read finds neither the kernel's page cache
nor anything the daemon kept. Native runs use WORK/native, on the same
filesystem as the store. Cold means `sync; echo 3 > /proc/sys/vm/drop_caches`
right before (needs root; without it the cold rows are skipped).

  cp in     cp FILE MNT/models/bench/      (close() is durable: chunked,
                                            hashed, fsynced, registered)
            cp FILE NATIVE/                (page cache only)
            cp FILE NATIVE/ && sync NATIVE/FILE     (fsync of the file)
            cp FILE NATIVE/ && sync -f NATIVE/FILE  (syncfs)
  again     cp FILE MNT/models/bench/ a second time: every chunk is already
            stored, so it is read back and compared (dedup_verify)
  read      dd if=MNT/models/bench/stages/Production/FILE of=/dev/null bs=1M,
            cold then warm, against the same on NATIVE/FILE
  stat      os.stat() in a Python loop, each call timed, median, on
            MNT/models/bench/1/FILE, on the stage path and on NATIVE/FILE

Memory prefault (benchlib.prefault): right before each timed cp and each
cold read, anonymous memory of 3x the file size plus 1 GiB is touched and
freed, so that on a virtual machine that hands free pages back to its host
no contender pays host faults for fresh page cache (a cp into mregfs
allocates three times the file: FUSE page cache, spool, pack). --prefault 0
turns it off.

The mount is always taken down (fusermount3 -u, then SIGTERM/SIGKILL of
the daemon's pid) on exit, on an error and on SIGINT/SIGTERM.
"""

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time

from benchlib import prefault

MODEL = "bench"


class Mount:
    """One mregfs daemon in the foreground, on a fresh or given store."""

    def __init__(self, a, store, mnt):
        self.a, self.store, self.mnt, self.proc = a, store, mnt, None

    def up(self):
        os.makedirs(self.mnt, exist_ok=True)
        cmd = [self.a.mregfs, "--store", self.store, "-f"]
        if self.a.conf:
            cmd += ["-c", self.a.conf]
        cmd.append(self.mnt)
        self.log = open(os.path.join(self.a.work, "mregfs.log"), "a")
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=self.log)
        if self.a.pidfile:
            with open(self.a.pidfile, "w") as f:
                f.write(f"{self.proc.pid}\n")
        for _ in range(200):
            if subprocess.run(["mountpoint", "-q", self.mnt]).returncode == 0:
                return
            if self.proc.poll() is not None:
                raise RuntimeError(f"mregfs exited with {self.proc.returncode} "
                                   f"(log: {self.log.name})")
            time.sleep(0.05)
        raise RuntimeError("mregfs did not mount within 10 s")

    def hwm(self):
        """The daemon's peak RSS so far (VmHWM) and its current anonymous
        and file-backed RSS, bytes."""
        out = {}
        try:
            with open(f"/proc/{self.proc.pid}/status") as f:
                for line in f:
                    k = line.split(":")[0]
                    if k in ("VmHWM", "RssAnon", "RssFile"):
                        out[k] = int(line.split()[1]) * 1024
        except OSError:
            pass
        return out

    def down(self):
        if self.proc is None:
            return
        subprocess.run(["fusermount3", "-u", self.mnt], capture_output=True)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            subprocess.run(["fusermount3", "-uz", self.mnt], capture_output=True)
        self.proc = None
        if self.a.pidfile:
            try:
                os.unlink(self.a.pidfile)
            except OSError:
                pass


def run(cmd, **kw):
    r = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if r.returncode != 0:
        raise RuntimeError(f"failed ({r.returncode}): {' '.join(cmd)}\n{r.stderr}")
    return r


def timed(cmds):
    """Wall seconds of a list of commands run one after the other."""
    t0 = time.monotonic()
    for c in cmds:
        run(c)
    return time.monotonic() - t0


def drop_caches():
    os.sync()
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("3\n")


def can_drop():
    try:
        drop_caches()
        return True
    except OSError:
        return False


def settle():
    """No dirty data left over from the last step."""
    os.sync()


def warm(path):
    run(["sh", "-c", f"cat '{path}' >/dev/null"])


def dd(path):
    return timed([["dd", f"if={path}", "of=/dev/null", "bs=1M", "status=none"]])


def stat_us(path, n):
    """Median and p90 of n os.stat calls (after a warm-up), microseconds."""
    for _ in range(1000):
        os.stat(path)
    ts = []
    clock = time.perf_counter_ns
    for _ in range(n):
        t0 = clock()
        os.stat(path)
        ts.append(clock() - t0)
    ts.sort()
    return ts[len(ts) // 2] / 1e3, ts[int(len(ts) * 0.9)] / 1e3


def fresh(path):
    shutil.rmtree(path, ignore_errors=True)
    os.makedirs(path)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mregfs", required=True)
    ap.add_argument("--file", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--stat-calls", type=int, default=20000)
    ap.add_argument("--conf")
    ap.add_argument("--pidfile")
    ap.add_argument("--prefault", type=int, default=1)
    a = ap.parse_args()

    def on_signal(sig, _):
        raise SystemExit(f"fs_bench: signal {sig}")
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)

    os.makedirs(a.work, exist_ok=True)
    size = os.path.getsize(a.file)
    name = os.path.basename(a.file)
    native = os.path.join(a.work, "native")
    store = os.path.join(a.work, "fs-store")
    mnt = os.path.join(a.work, "mnt")
    nfile = os.path.join(native, name)
    cold_ok = can_drop()
    res = {"file_bytes": size, "reps": a.reps, "cold_supported": cold_ok,
           "prefault": a.prefault, "samples": {}, "mregfs_hwm": [], "prefault_s": []}

    def pf():
        if a.prefault:
            res["prefault_s"].append(prefault(3 * size + (1 << 30)))
    S = res["samples"]

    def add(key, v):
        S.setdefault(key, []).append(v)
        print(f"fs {key:22} {v:9.3f}" + (f" s  {size / v / 1e6:8.0f} MB/s"
                                        if key.startswith(("cp_", "read_")) else " us"), flush=True)

    m = Mount(a, store, mnt)
    try:
        for rep in range(a.reps):
            # -- cp in: native first (page cache only, fsync, syncfs), then mregfs
            fresh(native)
            warm(a.file)
            for key, extra in (("cp_native", None), ("cp_native_fsync", ["sync", nfile]),
                               ("cp_native_syncfs", ["sync", "-f", nfile])):
                settle()
                pf()
                t = timed([["cp", a.file, native + "/"]] + ([extra] if extra else []))
                add(key, t)
                settle()
                os.unlink(nfile)
                settle()
            fresh(store)
            m.up()
            os.mkdir(os.path.join(mnt, "models", MODEL))
            settle()
            pf()
            add("cp_mreg", timed([["cp", a.file, os.path.join(mnt, "models", MODEL) + "/"]]))
            settle()
            pf()
            add("cp_mreg_again", timed([["cp", a.file, os.path.join(mnt, "models", MODEL) + "/"]]))
            os.symlink("../1", os.path.join(mnt, "models", MODEL, "stages", "Production"))
            res["mregfs_hwm"].append(m.hwm())
            m.down()

            # -- sequential read, cold then warm; the native copy stays for stat
            run(["cp", a.file, native + "/"])
            settle()
            stage = os.path.join(mnt, "models", MODEL, "stages", "Production", name)
            if cold_ok:
                drop_caches()
            m.up()
            pf()
            if cold_ok:
                add("read_mreg_cold", dd(stage))
            else:
                dd(stage)
            for _ in range(3):
                add("read_mreg_warm", dd(stage))
            if rep == 0:
                r = subprocess.run(["cmp", a.file, stage], capture_output=True, text=True)
                res["cmp_stage_rc"] = r.returncode
                res["cmp_stage_out"] = (r.stdout + r.stderr)[-500:]
                print(f"fs cmp of the stage path with the source: rc {r.returncode}")
            if cold_ok:
                drop_caches()
                pf()
                add("read_native_cold", dd(nfile))
            else:
                dd(nfile)
            for _ in range(3):
                add("read_native_warm", dd(nfile))

            # -- warm stat
            vpath = os.path.join(mnt, "models", MODEL, "1", name)
            for key, p in (("stat_mreg_version", vpath), ("stat_mreg_stage", stage),
                           ("stat_native", nfile)):
                med, p90 = stat_us(p, a.stat_calls)
                add(key, med)
                S.setdefault(key + "_p90", []).append(p90)
            res["mregfs_hwm"].append(m.hwm())
            m.down()
            shutil.rmtree(store, ignore_errors=True)
            shutil.rmtree(native, ignore_errors=True)
    finally:
        m.down()
    res["median"] = {k: statistics.median(v) for k, v in S.items()}
    with open(a.out, "w") as f:
        json.dump(res, f, indent=1)
    print(f"fs results in {a.out}")


if __name__ == "__main__":
    main()
