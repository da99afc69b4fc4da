#!/usr/bin/python3
"""serve_bench.py - the serving rows of issue 5 that fs_bench.py does not
cover, each beside the same measurement on the native filesystem in the
same run (results as JSON for report.py).

Usage: serve_bench.py --mregfs BIN --mreg BIN --lib LIBMREGCORE.A
                      --file FILE --work DIR --out FILE.json
                      [--reps N] [--conf FILE] [--pidfile FILE]
                      [--models N --versions N]

  mmap      serve_helper mmap 1|8 F: one byte of every 4 KiB page of a
            MAP_SHARED mapping, cold (sync; echo 3 > drop_caches) and warm,
            F = MNT/models/serve/stages/Production/FILE and NATIVE/FILE
  readers   serve_helper read 4|16 LOOPS F...: 4 and 16 threads reading,
            warm, 1 MiB pread()s, one file (every reader reads it all) and
            16 different 64 MiB files (slices of FILE, one sealed version)
  lookup    a model of 10,000 sealed versions (populate, durability none):
            index time of reg_resolve() cold (echo 3) and warm in one
            process; through the mount: stat of 1,000 different version
            paths after echo 2 > drop_caches (kernel dentries gone, daemon
            and index warm) and the first stat after echo 3 and a fresh
            mount; ls -l of the model, against 10,000 native directories
  big       --models x --versions sealed versions (10,000 x 100 = 1 M by
            default): time to build, mount time (mregfs start to
            mountpoint), ls models/, stat of a version, mreg search,
            index size
  promote   ln -sfn (symlink + rename) of stages/Production between two
            versions whose file says which; time from the rename's return
            to the first open+read that sees the new one, through the same
            mount and through a second mregfs on the same store
  daemon    CPU seconds (utime + stime of /proc/PID/stat) per GiB on a
            cold read; RSS after 10 cold reads of FILE (10 GiB served) and
            after 100,000 open/close cycles of the stage path
  passthrough  issue 12: the same store mounted twice, with [serve]
            passthrough = yes (a hydrated copy served by the kernel) and
            = no (today's path, the daemon), beside NATIVE/FILE, in one
            run, interleaved: warm re-read (serve_helper read 1), warm
            mmap touch (mmap 1), first read after echo 3, 8 threads
            faulting one mapping (warm and after echo 3), 16 concurrent
            readers (warm), the folio census of each; the time to hydrate
            FILE (prefetch after echo 3, until ready) and what an open
            costs meanwhile (os.open/os.close of the file being hydrated)
            against an open of it served by the kernel, by the daemon and
            natively. Today's rows (mmap, readers) run with passthrough
            off (--conf says so), for comparison.

Every mount is taken down (fusermount3 -u, then SIGTERM/SIGKILL of its
pid) on exit, on an error and on SIGINT/SIGTERM.
"""

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import time

from benchlib import init_store, prefault, proc_memory, run, unmount

HERE = os.path.dirname(os.path.abspath(__file__))
MED = statistics.median
res = {"samples": {}, "load": {}}
S = res["samples"]
mounts = []


def load():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def add(key, v, unit=""):
    S.setdefault(key, []).append(v)
    print(f"serve {key:34} {v:12.6f} {unit}", flush=True)


def drop(level=3):
    os.sync()
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write(f"{level}\n")


class Mount:
    def __init__(self, a, store, mnt, conf=None):
        self.a, self.store, self.mnt, self.proc = a, store, mnt, None
        self.conf = conf or a.conf

    def up(self):
        os.makedirs(self.mnt, exist_ok=True)
        init_store(self.a.mreg, self.store, self.conf)
        cmd = [self.a.mregfs, "--store", self.store, "-f"]
        if self.conf:
            cmd += ["-c", self.conf]
        cmd.append(self.mnt)
        self.log = open(os.path.join(self.a.work, "mregfs.log"), "a")
        t0 = time.monotonic()
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=self.log)
        mounts.append(self)
        if self.a.pidfile:
            with open(self.a.pidfile, "a") as f:
                f.write(f"{self.proc.pid}\n")
        for _ in range(4000):
            if subprocess.run(["mountpoint", "-q", self.mnt]).returncode == 0:
                return time.monotonic() - t0
            if self.proc.poll() is not None:
                raise RuntimeError(f"mregfs exited with {self.proc.returncode}")
            time.sleep(0.005)
        raise RuntimeError("mregfs did not mount within 20 s")

    def cpu(self):
        with open(f"/proc/{self.proc.pid}/stat") as f:
            st = f.read().rsplit(")", 1)[1].split()
        return (int(st[11]) + int(st[12])) / os.sysconf("SC_CLK_TCK")

    def mem(self):
        return proc_memory(self.proc.pid)

    def down(self):
        if self.proc is None:
            return
        unmount(self.proc, self.mnt)
        if self.a.pidfile:  # run.sh kills what is left in it: only live daemons
            try:
                with open(self.a.pidfile) as f:
                    left = [x for x in f.read().split() if x != str(self.proc.pid)]
                with open(self.a.pidfile, "w") as f:
                    f.write("".join(x + "\n" for x in left))
            except OSError:
                pass
        self.proc = None


def build(a):
    """The C helpers, compiled into WORK/bin."""
    b = os.path.join(a.work, "bin")
    os.makedirs(b, exist_ok=True)
    run(["cc", "-O2", "-pthread", "-o", f"{b}/serve_helper", f"{HERE}/serve_helper.c"])
    pk = run(["pkg-config", "--cflags", "--libs", "lmdb", "libxxhash", "libbsd-overlay",
              "libmd"]).stdout.split()
    top = os.path.dirname(os.path.dirname(HERE))
    run(["cc", "-O2", "-D_GNU_SOURCE", "-D_FILE_OFFSET_BITS=64", f"-I{top}/core", "-o",
         f"{b}/populate", f"{HERE}/populate.c", a.lib] + pk + ["-lpthread"])
    return b


def helper(b, *args):
    r = run([f"{b}/serve_helper"] + [str(x) for x in args])
    t, n, _ = r.stdout.split()
    return float(t), int(n)


def conf_with_serve(a, fname, text):
    """WORK/fname: a.conf without its [serve] section, with text as one."""
    keep, skip = [], False
    if a.conf:
        with open(a.conf) as f:
            for line in f:
                st = line.strip()
                if st.startswith("["):
                    skip = st == "[serve]"
                if not skip:
                    keep.append(line)
    p = os.path.join(a.work, fname)
    with open(p, "w") as f:
        f.write("".join(keep) + "\n[serve]\n" + text)
    return p


def metric(mnt, name):
    with open(os.path.join(mnt, ".mreg", "metrics")) as f:
        for line in f:
            if line.startswith(name + " "):
                return int(line.split()[1])
    return None


def open_us(path, n):
    """Median and p99 of n os.open + os.close of path, microseconds."""
    lat = []
    for _ in range(n):
        t0 = time.perf_counter()
        os.close(os.open(path, os.O_RDONLY))
        lat.append((time.perf_counter() - t0) * 1e6)
    lat.sort()
    return MED(lat), lat[max(int(len(lat) * 0.99) - 1, 0)]


def passthrough_part(a, b, store, mnt, nfile, name, size, pf):
    """Issue 12's rows: see the top of the file."""
    cache = os.path.join(a.work, "serve-cache")
    ptconf = conf_with_serve(a, "passthrough.conf",
                             f"passthrough = yes\npath = {cache}\n"
                             f"size = {2 * size + (1 << 30)}\n")
    dconf = conf_with_serve(a, "daemon.conf", "passthrough = no\n")
    md = Mount(a, store, mnt + "-daemon", conf=dconf)
    md.up()
    rel = os.path.join("models", "serve", "stages", "Production", name)
    paths = {"native": nfile, "pt": None, "daemon": os.path.join(md.mnt, rel)}
    try:
        for rep in range(a.reps):
            shutil.rmtree(cache, ignore_errors=True)
            mp = Mount(a, store, mnt + "-pt", conf=ptconf)
            mp.up()
            try:
                st = wait_on(lambda: metric(mp.mnt, 'mreg_serve_passthrough{state="on"}'),
                             10)
                if st != 1:
                    res["passthrough_off"] = open(os.path.join(mp.mnt, ".mreg",
                                                               "metrics")).read()
                    raise RuntimeError("passthrough is not on: see passthrough_off")
                p = paths["pt"] = os.path.join(mp.mnt, rel)
                vdir = os.path.join(mp.mnt, "models", "serve", "1")
                # hydration after echo 3, opens of the file meanwhile
                drop()
                pf()
                t0 = time.monotonic()
                os.getxattr(vdir, "user.mreg.prefetch")
                during = []
                while True:
                    t1 = time.perf_counter()
                    os.close(os.open(p, os.O_RDONLY))
                    during.append((time.perf_counter() - t1) * 1e6)
                    if len(during) % 20 == 0 and os.getxattr(
                            vdir, "user.mreg.prefetch").startswith(b"ready"):
                        break
                add("pt_hydrate_s", time.monotonic() - t0, "s")
                during.sort()
                add("pt_open_hydrating_us", MED(during), "us")
                add("pt_open_hydrating_p99_us", during[int(len(during) * 0.99) - 1], "us")
                res.setdefault("pt_open_hydrating_n", []).append(len(during))
                # opens when nothing is hydrating
                for who in ("pt", "daemon", "native"):
                    med, p99 = open_us(paths[who], 2000)
                    add(f"pt_open_idle_{who}_us", med, "us")
                    add(f"pt_open_idle_{who}_p99_us", p99, "us")
                r0 = metric(mp.mnt, "mreg_serve_daemon_reads_total")
                o0 = metric(mp.mnt, 'mreg_serve_opens_total{mode="passthrough"}')
                who_order = ("native", "pt", "daemon")
                for who in who_order:                       # warm them all
                    helper(b, "read", 1, 1, paths[who])
                for _ in range(5):
                    for who in who_order:
                        t, nb = helper(b, "read", 1, 1, paths[who])
                        add(f"pt_warm_read_{who}", nb / t / 1e9, "GB/s")
                    for who in who_order:
                        add(f"pt_warm_mmap1_{who}", helper(b, "mmap", 1, paths[who])[0], "s")
                    for who in who_order:
                        add(f"pt_warm_mmap8_{who}", helper(b, "mmap", 8, paths[who])[0], "s")
                for _ in range(3):
                    for who in who_order:
                        t, nb = helper(b, "read", 16, 1, paths[who])
                        add(f"pt_read16_{who}", nb / t / 1e9, "GB/s")
                if rep == 0:
                    for who in who_order:
                        _, pages, large, pmd = run([f"{b}/serve_helper", "folios", "1",
                                                    paths[who]]).stdout.split()
                        add(f"pt_folios_{who}_large_pct",
                            100.0 * int(large) / max(int(pages), 1), "%")
                        add(f"pt_folios_{who}_pmd_pct",
                            100.0 * int(pmd) / max(int(pages), 1), "%")
                for who in who_order:
                    drop()
                    pf()
                    t, nb = helper(b, "read", 1, 1, paths[who])
                    add(f"pt_cold_read_{who}", nb / t / 1e9, "GB/s")
                for who in who_order:
                    drop()
                    pf()
                    add(f"pt_cold_mmap8_{who}", helper(b, "mmap", 8, paths[who])[0], "s")
                res.setdefault("pt_daemon_reads", []).append(
                    metric(mp.mnt, "mreg_serve_daemon_reads_total") - r0)
                res.setdefault("pt_opens", []).append(
                    metric(mp.mnt, 'mreg_serve_opens_total{mode="passthrough"}') - o0)
            finally:
                mp.down()
    finally:
        md.down()
        shutil.rmtree(cache, ignore_errors=True)


def wait_on(fn, seconds):
    end = time.monotonic() + seconds
    v = fn()
    while not v and time.monotonic() < end:
        time.sleep(0.05)
        v = fn()
    return v


def step(name):
    res["load"][name] = load()
    print(f"serve == {name} [load {res['load'][name]}]", flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mregfs", required=True)
    ap.add_argument("--mreg", required=True)
    ap.add_argument("--lib", required=True)
    ap.add_argument("--file", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--conf")
    ap.add_argument("--pidfile")
    ap.add_argument("--models", type=int, default=10000)
    ap.add_argument("--versions", type=int, default=100)
    ap.add_argument("--promotions", type=int, default=200)
    ap.add_argument("--cycles", type=int, default=100000)
    ap.add_argument("--served-gib", type=int, default=10)
    ap.add_argument("--parts",
                    default="mmap readers lookup big promote daemon passthrough")
    a = ap.parse_args()

    def on_signal(sig, _):
        raise SystemExit(f"serve_bench: signal {sig}")
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)
    parts = a.parts.split()
    shutil.rmtree(a.work, ignore_errors=True)
    os.makedirs(a.work)
    b = build(a)
    size = os.path.getsize(a.file)
    name = os.path.basename(a.file)
    res.update(file_bytes=size, reps=a.reps, served_gib=a.served_gib, cycles=a.cycles,
               part_bytes=size // 16)
    native = os.path.join(a.work, "native")
    pdir = os.path.join(a.work, "parts")
    os.makedirs(native)
    os.makedirs(pdir)
    # 16 different files: 16 slices of FILE
    nparts = 16
    psz = size // nparts
    with open(a.file, "rb") as f:
        for i in range(nparts):
            with open(os.path.join(pdir, f"part{i:02}.bin"), "wb") as o:
                o.write(f.read(psz))
    run(["cp", a.file, native + "/"])
    run(["cp", "-r", pdir, native + "/parts"])
    nfile = os.path.join(native, name)
    nparts_l = sorted(os.path.join(native, "parts", p) for p in os.listdir(pdir))
    store = os.path.join(a.work, "store")
    mnt = os.path.join(a.work, "mnt")
    m = Mount(a, store, mnt)
    try:
        m.up()
        md = os.path.join(mnt, "models", "serve")
        os.mkdir(md)
        run(["cp", a.file, md + "/"])                       # version 1
        run(["cp", "-r", pdir, os.path.join(md, "2")])      # draft 2 ...
        os.chmod(os.path.join(md, "2"), 0o555)              # ... sealed
        os.symlink("../1", os.path.join(md, "stages", "Production"))
        os.symlink("../2", os.path.join(md, "stages", "Parts"))
        stage = os.path.join(md, "stages", "Production", name)
        mparts = sorted(os.path.join(md, "stages", "Parts", p) for p in os.listdir(pdir))
        os.sync()

        def pf():
            prefault(3 * size + (1 << 30))

        if "mmap" in parts:
            step("mmap")
            for rep in range(a.reps):
                for th in (1, 8):
                    for who, p in (("mreg", stage), ("native", nfile)):
                        drop()
                        pf()
                        add(f"mmap{th}_{who}_cold", helper(b, "mmap", th, p)[0], "s")
                        for _ in range(3):
                            add(f"mmap{th}_{who}_warm", helper(b, "mmap", th, p)[0], "s")
            # what bounds the warm rows: the page cache's folio sizes
            for who, p in (("mreg", stage), ("native", nfile)):
                _, pages, large, _ = run([f"{b}/serve_helper", "folios", "1",
                                          p]).stdout.split()
                add(f"folios_{who}_large_pct", 100.0 * int(large) / max(int(pages), 1), "%")
        if "readers" in parts:
            step("readers")
            for p in [stage, nfile] + mparts + nparts_l:
                with open(p, "rb") as f:
                    while f.read(1 << 24):
                        pass
            for rep in range(a.reps):
                for n in (4, 16):
                    for who, one, many in (("mreg", stage, mparts),
                                           ("native", nfile, nparts_l)):
                        t, nb = helper(b, "read", n, 1, one)
                        add(f"read{n}_one_{who}", nb / t / 1e9, "GB/s")
                        t, nb = helper(b, "read", n, 4, *many)
                        add(f"read{n}_many_{who}", nb / t / 1e9, "GB/s")

        if "daemon" in parts:
            step("daemon")
            m.down()
            drop()
            m.up()
            for i in range(a.served_gib * (1 << 30) // size):
                drop(1)
                c0 = m.cpu()
                t, nb = helper(b, "read", 1, 1, stage)
                c1 = m.cpu()
                add("daemon_cpu_s_per_gib_cold", (c1 - c0) / (nb / 2**30), "s/GiB")
                add("daemon_cold_read_gbps", nb / t / 1e9, "GB/s")
            mem = m.mem()
            res["rss_after_served"] = mem
            print(f"serve rss after {a.served_gib} GiB: {mem}")
            t0 = time.monotonic()
            for _ in range(a.cycles):
                os.close(os.open(stage, os.O_RDONLY))
            add("open_close_us", (time.monotonic() - t0) / a.cycles * 1e6, "us")
            mem = m.mem()
            res["rss_after_cycles"] = mem
            print(f"serve rss after {a.cycles} open/close: {mem}")

        if "promote" in parts:
            step("promote")
            pm = os.path.join(mnt, "models", "promo")
            os.mkdir(pm)
            for v in ("1", "2"):
                os.mkdir(os.path.join(pm, v))
                with open(os.path.join(pm, v, "tag"), "w") as f:
                    f.write(v)
                os.chmod(os.path.join(pm, v), 0o555)
            os.symlink("../1", os.path.join(pm, "stages", "Production"))
            m2 = Mount(a, store, mnt + "2")
            m2.up()
            try:
                for where, root in (("same", mnt), ("other", mnt + "2")):
                    lat = []
                    cur = "1"
                    for i in range(a.promotions):
                        nxt = "2" if cur == "1" else "1"
                        tmp = os.path.join(pm, "stages", "promo-tmp")
                        os.symlink(f"../{nxt}", tmp)
                        os.rename(tmp, os.path.join(pm, "stages", "Production"))
                        t0 = time.perf_counter()
                        p = os.path.join(root, "models", "promo", "stages", "Production", "tag")
                        while True:
                            with open(p) as f:
                                if f.read() == nxt:
                                    break
                            if time.perf_counter() - t0 > 5:
                                raise RuntimeError(f"promotion {i} not seen in 5 s ({where})")
                        lat.append(time.perf_counter() - t0)
                        cur = nxt
                    lat.sort()
                    res[f"promote_{where}"] = lat
                    add(f"promote_{where}_median_ms", MED(lat) * 1e3, "ms")
                    add(f"promote_{where}_p99_ms", lat[int(len(lat) * 0.99) - 1] * 1e3, "ms")
            finally:
                m2.down()
        m.down()

        if "passthrough" in parts:
            step("passthrough")
            passthrough_part(a, b, store, mnt, nfile, name, size, pf)

        if "lookup" in parts:
            step("lookup")
            lstore = os.path.join(a.work, "store10k")
            nconf = os.path.join(a.work, "nodurability.conf")
            with open(nconf, "w") as f:
                f.write("[store]\ndurability = none\n[chunker]\nmin_size = 16K\n"
                        "avg_size = 64K\nmax_size = 256K\n")
            t = float(run([f"{b}/populate", nconf, lstore, "1", "10000", "wide"]).stdout)
            add("populate_10k_s", t, "s")
            ndir = os.path.join(native, "wide0")
            os.makedirs(ndir)
            for v in range(1, 10001):
                os.mkdir(os.path.join(ndir, str(v)))
            drop()
            r = run([f"{b}/populate", "lookup", nconf, lstore, "wide0", "1000"]).stdout.split()
            add("index_lookup_cold_us", float(r[0]), "us")
            add("index_lookup_warm_us", float(r[1]), "us")
            lm = Mount(a, lstore, mnt + "-10k")
            for rep in range(a.reps):
                drop()
                lm.up()
                t0 = time.perf_counter()
                os.stat(os.path.join(lm.mnt, "models", "wide0", "5000"))
                add("stat_first_mreg_us", (time.perf_counter() - t0) * 1e6, "us")
                t0 = time.perf_counter()
                r = run(["ls", "-l", os.path.join(lm.mnt, "models", "wide0")])
                add("ls_l_10k_mreg_first_s", time.perf_counter() - t0, "s")
                for _ in range(3):
                    t0 = time.perf_counter()
                    run(["ls", "-l", os.path.join(lm.mnt, "models", "wide0")])
                    add("ls_l_10k_mreg_warm_s", time.perf_counter() - t0, "s")
                for who, root in (("mreg", os.path.join(lm.mnt, "models", "wide0")),
                                  ("native", ndir)):
                    drop(2)
                    t0 = time.perf_counter()
                    for v in range(1, 1001):
                        os.stat(os.path.join(root, str(v * 10)))
                    add(f"stat_nodentry_{who}_us", (time.perf_counter() - t0) * 1e3, "us")
                lm.down()
                drop()
                t0 = time.perf_counter()
                os.stat(os.path.join(ndir, "5000"))
                add("stat_first_native_us", (time.perf_counter() - t0) * 1e6, "us")
                t0 = time.perf_counter()
                run(["ls", "-l", ndir])
                add("ls_l_10k_native_first_s", time.perf_counter() - t0, "s")
                for _ in range(3):
                    t0 = time.perf_counter()
                    run(["ls", "-l", ndir])
                    add("ls_l_10k_native_warm_s", time.perf_counter() - t0, "s")
            shutil.rmtree(lstore, ignore_errors=True)

        if "big" in parts:
            step("big")
            nconf = os.path.join(a.work, "nodurability.conf")
            bstore = os.path.join(a.work, "store-big")
            nv = a.models * a.versions
            res["big_versions"] = nv
            t0 = time.monotonic()
            run([f"{b}/populate", nconf, bstore, str(a.models), str(a.versions), "m"])
            add("big_populate_s", time.monotonic() - t0, "s")
            res["big_index_bytes"] = os.path.getsize(os.path.join(bstore, "index", "data.mdb"))
            du = run(["du", "-sB1", os.path.join(bstore, "index")]).stdout.split()[0]
            res["big_index_du"] = int(du)
            bm = Mount(a, bstore, mnt + "-big")
            mid = f"m{a.models // 2}/{a.versions // 2}"
            for rep in range(a.reps):
                drop()
                add("big_mount_cold_s", bm.up(), "s")
                t0 = time.perf_counter()
                os.stat(os.path.join(bm.mnt, "models", mid))
                add("big_stat_first_us", (time.perf_counter() - t0) * 1e6, "us")
                t0 = time.perf_counter()
                r = run(["ls", os.path.join(bm.mnt, "models")])
                add("big_ls_models_first_s", time.perf_counter() - t0, "s")
                res["big_ls_models_n"] = len(r.stdout.split())
                t0 = time.perf_counter()
                run(["ls", os.path.join(bm.mnt, "models")])
                add("big_ls_models_warm_s", time.perf_counter() - t0, "s")
                drop(2)
                t0 = time.perf_counter()
                for i in range(1000):
                    os.stat(os.path.join(bm.mnt, "models", f"m{(i * 7919) % a.models}",
                                         str(1 + i % a.versions)))
                add("big_stat_nodentry_us", (time.perf_counter() - t0) * 1e3, "us")
                bm.down()
                add("big_mount_warm_s", bm.up(), "s")
                bm.down()
                for q in (f"name = m{a.models // 2} and version = {a.versions // 2}",
                          "stage = Production"):
                    t0 = time.perf_counter()
                    r = subprocess.run([a.mreg, "--store", bstore, "-c", nconf, "search", q],
                                       capture_output=True, text=True)
                    key = "big_search_one_s" if "name" in q else "big_search_stage_s"
                    add(key, time.perf_counter() - t0, "s")
                    res[key + "_rc"] = r.returncode
            shutil.rmtree(bstore, ignore_errors=True)
    finally:
        for x in mounts:
            x.down()
    res["median"] = {k: MED(v) for k, v in S.items()}
    with open(a.out, "w") as f:
        json.dump(res, f, indent=1)
    print(f"serve results in {a.out}")


if __name__ == "__main__":
    main()
