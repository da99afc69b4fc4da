#!/usr/bin/python3
"""s3_bench.py - issue 13: mreg with its chunks in S3 against the peers
that use the same object store, side by side in one run against one
radosgw (tests/services/rgw.sh, started here under WORK/rgw with
--memstore bytes of memory, and stopped at the end).

Usage: s3_bench.py --mreg BIN --mregfs BIN --data DIR --file FILE
                   --work DIR --out FILE.json [--reps N] [--push-reps N]
                   [--pidfile FILE] [--memstore BYTES] [--parts push,read]

--memstore: bytes radosgw's OSD may hold (3.5 GiB a push run and 3x FILE).

  push   the units of the gen_models.py data set (--data) in order, with
         the data set warm in the page cache: `mreg push` into a fresh
         store with [store] backend = s3 against `restic backup` into a
         fresh repository on the same radosgw (s3:ENDPOINT/BUCKET/PREFIX,
         default compression, as a user runs it). Per unit: wall time and
         the bytes radosgw took (put_b of its perf counters, read from its
         admin socket: every PUT and part, whoever sent it), and for mreg
         the bytes of the chunks the version added (`mreg stats`
         stored_bytes grew by). Each repetition's objects are deleted
         after it (memstore holds them in memory).
  read   FILE (1 GiB of random bytes), sealed in an S3 store (mreg push)
         and, as one object, in the same bucket (rclone copyto); per
         repetition, each contender cold (sync; echo 3 > drop_caches; a
         fresh mount; memory prefaulted):
           mregfs    dd of MNT/models/big/1/FILE, the store on S3, a new
                     empty [cache] directory (each run its own, removed at
                     the end); the daemon's VmHWM and RssAnon after
           rclone    `rclone mount` of the bucket (defaults), dd of the file
           s3fs      `s3fs` of the bucket (defaults), dd of the file
           get-seq   the ceiling: a loop of ranged GETs of the object, 8 MiB
                     each, one after the other on one connection (curl -K)
           get-par   the same with 1 MiB ranges, 8 in flight (curl
                     --parallel): what mregfs's 8 fetchers could reach
         then warm: mregfs on S3 again with its cache full (the cache's
         files read into the page cache first, a fresh mount) against
         mregfs on a local store holding FILE (its packs read first, a
         fresh mount). [serve] size = 0 and passthrough = no: every read
         goes through mregfs. cmp of each contender's bytes with FILE
         once, untimed.

Installs nothing: run.sh installs rclone and s3fs. Every mount is taken
down (fusermount3 -u, then the daemon killed by its pid) on any exit.
"""

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time

from benchlib import prefault, proc_memory, run
from fs_bench import Mount, dd, drop_caches, fresh, warm_tree

TOP = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
RGW = os.path.join(TOP, "tests", "services", "rgw.sh")
MODEL = "bench"


class Rgw:
    """radosgw of tests/services/rgw.sh under dir: its env (rgw.env) and
    its perf counters."""

    def __init__(self, d, memstore):
        self.dir = d
        env = dict(os.environ, MREG_RGW_MEMSTORE_BYTES=str(memstore))
        r = subprocess.run(["sh", RGW, "start", d], env=env,
                           capture_output=True, text=True)
        if r.returncode:
            raise RuntimeError("rgw.sh start failed:\n" + r.stderr)
        self.env = {}
        with open(os.path.join(d, "rgw.env")) as f:
            for line in f:
                k, _, v = line.strip().partition("=")
                if k and not k.startswith("#"):
                    self.env[k] = v.strip("'\"")
        self.url = self.env["MREG_S3_ENDPOINT"]
        self.bucket = self.env["MREG_S3_BUCKET"]
        self.region = self.env["MREG_S3_REGION"]
        self.ak = self.env["AWS_ACCESS_KEY_ID"]
        self.sk = self.env["AWS_SECRET_ACCESS_KEY"]

    def stop(self):
        subprocess.run(["sh", RGW, "stop", self.dir], capture_output=True)

    def perf(self):
        """(GET bytes, PUT bytes, PUT requests) radosgw served so far."""
        c = os.path.join(self.dir, "rgw")
        r = run(["ceph", "-c", os.path.join(c, "ceph.conf"), "daemon",
                 os.path.join(c, "run", "client.rgw.asok"), "perf", "dump"])
        d = json.loads(r.stdout)["rgw"]
        return d["get_b"], d["put_b"], d["put"]

    def creds(self):
        return {"AWS_ACCESS_KEY_ID": self.ak,
                "AWS_SECRET_ACCESS_KEY": self.sk}

    def rclone_env(self):
        """rclone's remote "rgw:" from the environment (AWS_CA_BUNDLE,
        which rclone's S3 client refuses over plain http, left out)."""
        env = {k: v for k, v in os.environ.items() if k != "AWS_CA_BUNDLE"}
        return dict(env, RCLONE_CONFIG_RGW_TYPE="s3",
                    RCLONE_CONFIG_RGW_PROVIDER="Ceph",
                    RCLONE_CONFIG_RGW_ENDPOINT=self.url,
                    RCLONE_CONFIG_RGW_ACCESS_KEY_ID=self.ak,
                    RCLONE_CONFIG_RGW_SECRET_ACCESS_KEY=self.sk,
                    RCLONE_CONFIG_RGW_REGION=self.region)

    def purge(self, prefix):
        """Deletes every object under prefix (memstore's memory back)."""
        subprocess.run(["rclone", "purge", f"rgw:{self.bucket}/{prefix}"],
                       env=self.rclone_env(), capture_output=True)


def mreg_conf(path, rgw, prefix, cache):
    with open(path, "w") as f:
        f.write("[store]\nbackend = s3\n"
                f"[s3]\nendpoint = {rgw.url}\nbucket = {rgw.bucket}\n"
                f"region = {rgw.region}\npath_style = yes\n"
                f"key_prefix = {prefix}\n"
                f"[cache]\npath = {cache}\n"
                "[serve]\nsize = 0\npassthrough = no\n")
    return path


def local_conf(path):
    with open(path, "w") as f:
        f.write("[serve]\nsize = 0\npassthrough = no\n")
    return path


def units(data):
    with open(os.path.join(data, "summary.json")) as f:
        return [u["name"] for u in json.load(f)["units"]]


def stored(a, conf, store, env):
    r = run([a.mreg, "-c", conf, "--store", store, "--json", "stats"],
            env=env)
    return json.loads(r.stdout)["total"]["stored_bytes"]


def push_mreg(a, rgw, rep):
    w = os.path.join(a.work, "push-mreg")
    fresh(w)
    prefix = f"bench-push-{rep}/"
    conf = mreg_conf(os.path.join(w, "mreg.conf"), rgw, prefix,
                     os.path.join(w, "cache"))
    store = os.path.join(w, "store")
    env = dict(os.environ, **rgw.creds())
    run([a.mreg, "-c", conf, "--store", store, "init"], env=env)
    rows = []
    for u in units(a.data):
        s0, (g0, p0, n0) = stored(a, conf, store, env), rgw.perf()
        t0 = time.monotonic()
        run([a.mreg, "-c", conf, "--store", store, "-q", "push", MODEL, u],
            cwd=a.data, env=env)
        dt = time.monotonic() - t0
        s1, (g1, p1, n1) = stored(a, conf, store, env), rgw.perf()
        rows.append({"unit": u, "s": dt, "put_b": p1 - p0, "puts": n1 - n0,
                     "get_b": g1 - g0, "new_chunk_b": s1 - s0})
        print(f"mreg   {u:28s} {dt:7.2f} s  PUT {p1 - p0:>13,} B "
              f"({n1 - n0} reqs)  new chunks {s1 - s0:>13,} B", flush=True)
    shutil.rmtree(w, ignore_errors=True)
    rgw.purge(prefix)
    return rows


def push_restic(a, rgw, rep):
    w = os.path.join(a.work, "push-restic")
    fresh(w)
    prefix = f"bench-restic-{rep}"
    with open(os.path.join(w, "password"), "w") as f:
        f.write("bench\n")
    env = dict(os.environ, RESTIC_PASSWORD_FILE=os.path.join(w, "password"),
               RESTIC_CACHE_DIR=os.path.join(w, "cache"),
               RESTIC_REPOSITORY=f"s3:{rgw.url}/{rgw.bucket}/{prefix}",
               **rgw.creds())
    g0, p0, n0 = rgw.perf()
    t0 = time.monotonic()
    run(["restic", "init", "-q"], env=env)
    init_s = time.monotonic() - t0
    g1, p1, n1 = rgw.perf()
    rows = [{"unit": "(restic init)", "s": init_s, "put_b": p1 - p0,
             "puts": n1 - n0, "get_b": g1 - g0}]
    for u in units(a.data):
        g0, p0, n0 = rgw.perf()
        t0 = time.monotonic()
        run(["restic", "backup", "-q", u], cwd=a.data, env=env)
        dt = time.monotonic() - t0
        g1, p1, n1 = rgw.perf()
        rows.append({"unit": u, "s": dt, "put_b": p1 - p0, "puts": n1 - n0,
                     "get_b": g1 - g0})
        print(f"restic {u:28s} {dt:7.2f} s  PUT {p1 - p0:>13,} B "
              f"({n1 - n0} reqs)", flush=True)
    shutil.rmtree(w, ignore_errors=True)
    rgw.purge(prefix)
    return rows


# -- read


def curl_conf(path, rgw, key, size, block):
    """A curl -K file: one ranged GET of block bytes of key per entry."""
    url = f"{rgw.url}/{rgw.bucket}/{key}"
    with open(path, "w") as f:
        f.write("next\n".join(
            f'url = "{url}"\nrange = "{off}-{min(off + block, size) - 1}"\n'
            'output = "/dev/null"\n'
            f'aws-sigv4 = "aws:amz:{rgw.region}:s3"\n'
            f'user = "{rgw.ak}:{rgw.sk}"\n'
            'header = "x-amz-content-sha256: UNSIGNED-PAYLOAD"\nfail\n'
            for off in range(0, size, block)))
    return path


def cold(a):
    drop_caches()
    prefault(2 * a.size + (1 << 30))


class Reader:
    """The read part's stores, object and mounts."""

    def __init__(self, a, rgw):
        self.a, self.rgw = a, rgw
        self.w = os.path.join(a.work, "read")
        fresh(self.w)
        self.mnt = os.path.join(a.work, "mnt")
        self.name = os.path.basename(a.file)
        self.env = dict(os.environ, **rgw.creds())
        self.prefix = "bench-read/"
        # the push's cache, kept to the end (see rep())
        self.cache = os.path.join(self.w, "cache-push")
        self.conf = mreg_conf(os.path.join(self.w, "s3.conf"), rgw,
                              self.prefix, self.cache)
        self.store = os.path.join(self.w, "s3-store")
        self.lconf = local_conf(os.path.join(self.w, "local.conf"))
        self.lstore = os.path.join(self.w, "local-store")
        self.raw = "bench-raw/" + self.name
        for conf, store in ((self.conf, self.store),
                            (self.lconf, self.lstore)):
            run([a.mreg, "-c", conf, "--store", store, "init"], env=self.env)
            run([a.mreg, "-c", conf, "--store", store, "-q", "push", "big",
                 a.file], env=self.env)
        run(["rclone", "copyto", a.file,
             f"rgw:{rgw.bucket}/{self.raw}"], env=rgw.rclone_env())
        self.pw = os.path.join(self.w, "s3fs.passwd")
        with open(self.pw, "w") as f:
            f.write(f"{rgw.ak}:{rgw.sk}\n")
        os.chmod(self.pw, 0o600)

    def mregfs(self, conf, store):
        path = os.path.join(self.mnt, "models", "big", "1", self.name)
        return Mount(self.a, None, self.mnt, name="mregfs", ready=path,
                     cmd=[self.a.mregfs, "-f", "-c", conf, "--store", store,
                          self.mnt]), path

    def peer(self, kind):
        d = os.path.dirname(self.raw)
        path = os.path.join(self.mnt, self.name)
        if kind == "rclone":
            cmd = ["rclone", "mount", "--read-only",
                   f"rgw:{self.rgw.bucket}/{d}", self.mnt]
        else:
            cmd = ["s3fs", f"{self.rgw.bucket}:/{d}", self.mnt, "-f", "-o",
                   f"ro,url={self.rgw.url},use_path_request_style,"
                   f"passwd_file={self.pw},endpoint={self.rgw.region}"]
        return Mount(self.a, None, self.mnt, name=kind, ready=path, cmd=cmd,
                     wait=30), path

    def timed_mount(self, m, path, check):
        """dd of path under the mount m (up first, down after): seconds,
        and the daemon's memory after the read."""
        m.up()
        try:
            prefault(2 * self.a.size + (1 << 30))
            s = dd(path)
            mem = proc_memory(m.proc.pid)
            if check:
                run(["cmp", self.a.file, path])
        finally:
            m.down()
        return s, mem

    def gets(self, block, parallel):
        conf = curl_conf(os.path.join(self.w, f"curl-{block}.conf"),
                         self.rgw, self.raw, self.a.size, block)
        cmd = ["curl", "-sS", "-K", conf]
        if parallel:
            cmd[1:1] = ["--parallel", "--parallel-max", str(parallel)]
        t0 = time.monotonic()
        run(cmd)
        return time.monotonic() - t0

    def rep(self, i):
        out = {}
        first = i == 0
        # cold: an empty cache directory of its own (not emptied by rm -r:
        # ext4 then searches its recently deleted inodes at every create,
        # as a host that has just removed thousands of files does)
        self.cache = os.path.join(self.w, f"cache-{i}")
        self.conf = mreg_conf(os.path.join(self.w, "s3.conf"), self.rgw,
                              self.prefix, self.cache)
        cold(self.a)
        m, path = self.mregfs(self.conf, self.store)
        out["mregfs_cold_s"], mem = self.timed_mount(m, path, False)
        out["mregfs_cold_mem"] = mem
        for kind in ("rclone", "s3fs"):
            cold(self.a)
            m, path = self.peer(kind)
            out[f"{kind}_cold_s"], out[f"{kind}_mem"] = \
                self.timed_mount(m, path, first)
        cold(self.a)
        out["get_seq_s"] = self.gets(8 << 20, 0)
        cold(self.a)
        out["get_par_s"] = self.gets(1 << 20, 8)
        # warm: the cache full, then the local store
        warm_tree(self.cache)
        m, path = self.mregfs(self.conf, self.store)
        out["mregfs_warm_s"], out["mregfs_warm_mem"] = \
            self.timed_mount(m, path, first)
        warm_tree(self.lstore)
        m, path = self.mregfs(self.lconf, self.lstore)
        out["local_warm_s"], _ = self.timed_mount(m, path, first)
        print("read   " + "  ".join(f"{k} {v:.2f}" for k, v in out.items()
                                    if k.endswith("_s")), flush=True)
        return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mreg", required=True)
    ap.add_argument("--mregfs", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--file", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--push-reps", type=int, default=1)
    ap.add_argument("--pidfile")
    ap.add_argument("--memstore", type=int)
    ap.add_argument("--parts", default="push,read")
    a = ap.parse_args()
    for k in ("mreg", "mregfs", "data", "file", "work", "out"):
        setattr(a, k, os.path.abspath(getattr(a, k)))
    a.conf = None
    a.size = os.path.getsize(a.file)
    # radosgw deletes the tails of large objects lazily (its gc): every
    # run's objects stay in memstore's memory to the end
    a.memstore = a.memstore or (7 << 29) * a.push_reps + 3 * a.size
    parts = a.parts.split(",")
    fresh(a.work)
    for tool in ("restic", "rclone", "s3fs", "curl"):
        if not shutil.which(tool):
            sys.exit(f"s3_bench: no {tool}")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    rgw = Rgw(os.path.join(a.work, "rgw"), a.memstore)
    # every daemon and client below: mregfs, mreg, rclone
    env = rgw.rclone_env()
    os.environ.clear()
    os.environ.update(env, **rgw.creds())
    res = {"file_bytes": a.size, "reps": a.reps, "push_reps": a.push_reps,
           "versions": {t: run([t, "version"] if t != "s3fs" else
                               [t, "--version"]).stdout.splitlines()[0]
                        for t in ("restic", "rclone", "s3fs")},
           "curl": run(["curl", "--version"]).stdout.splitlines()[0]}
    try:
        if "push" in parts:
            res["push"] = []
            for i in range(a.push_reps):
                run(["sh", "-c", f"find '{a.data}' -type f -exec cat {{}} + "
                     ">/dev/null"])
                res["push"].append({"mreg": push_mreg(a, rgw, i),
                                    "restic": push_restic(a, rgw, i)})
        if "read" in parts:
            rd = Reader(a, rgw)
            res["read"] = [rd.rep(i) for i in range(a.reps)]
    finally:
        rgw.stop()
    with open(a.out, "w") as f:
        json.dump(res, f, indent=1)
    shutil.rmtree(a.work, ignore_errors=True)
    print(f"s3 results in {a.out}")


if __name__ == "__main__":
    main()
