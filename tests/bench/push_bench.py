#!/usr/bin/python3
"""push_bench.py - push the gen_models.py data set into a fresh mreg store,
one version per ingest unit, in order, and record per version: wall time,
CPU time and peak RSS (GNU time), what the store grew by (file sizes and
du -sB1 of the store directory) and `mreg stats --json`.

Usage: push_bench.py --mreg BIN --data DIR --work DIR --out FILE.json
                     [--reps N] [--conf FILE] [--verify] [--big FILE]

Each repetition uses a fresh store under --work (deleted afterwards) and
reads the whole data set first, so the page cache is warm, as run_peers.py
does for the peers. --verify (first repetition only): `mreg fsck`, then
every file of every version is read back with `mreg cat` and its sha256
compared with the data set's MANIFEST.sha256.

--big FILE: also push one large file (random bytes: every chunk new) into
a fresh store per repetition, for peak RSS "whatever the file size" and
throughput on one stream. Memory is prefaulted first (benchlib.prefault).
"""

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time

from benchlib import prefault

MODEL = "bench"


def units(data):
    """The ingest order of gen_models.py: the model directories, then each
    checkpoint file (the same list as its summary.json)."""
    with open(os.path.join(data, "summary.json")) as f:
        summ = json.load(f)
    return [(u["name"], u["logical_bytes"], u["ideal_unique_bytes"])
            for u in summ["units"]]


def unit_files(data, unit):
    """(path inside the version, path on disk) of every file of a unit."""
    p = os.path.join(data, unit)
    if os.path.isfile(p):
        return [(os.path.basename(p), p)]
    out = []
    for dp, _, fs in sorted(os.walk(p)):
        for fn in sorted(fs):
            full = os.path.join(dp, fn)
            out.append((os.path.relpath(full, p), full))
    return out


def du(path):
    """(sum of file sizes, allocated bytes incl. directories, files)."""
    sizes = [os.path.getsize(os.path.join(dp, f))
             for dp, _, fs in os.walk(path) for f in fs]
    alloc = int(subprocess.run(["du", "-sB1", path], capture_output=True,
                               text=True, check=True).stdout.split()[0])
    return sum(sizes), alloc, len(sizes)


def warm(data):
    subprocess.run(["sh", "-c", f"find '{data}' -type f -exec cat {{}} + >/dev/null"],
                   check=True)


def mreg(a, store, *args, **kw):
    cmd = [a.mreg, "--store", store, "-q"]
    if a.conf:
        cmd += ["-c", a.conf]
    return subprocess.run(cmd + list(args), capture_output=True, text=True, **kw)


def timed_push(a, store, unit, tfile):
    cmd = ["/usr/bin/time", "-f", "%e %M %U %S", "-o", tfile, a.mreg,
           "--store", store, "-q"]
    if a.conf:
        cmd += ["-c", a.conf]
    cmd += ["push", MODEL, unit]
    t0 = time.monotonic()
    r = subprocess.run(cmd, cwd=a.data, capture_output=True, text=True)
    wall = time.monotonic() - t0
    if r.returncode != 0:
        sys.exit(f"push_bench: failed ({r.returncode}): {' '.join(cmd)}\n"
                 f"{r.stdout}{r.stderr}")
    with open(tfile) as f:
        last = f.read().strip().splitlines()[-1]
    _, rss_kib, usr, sys_ = last.split()
    return wall, int(rss_kib) * 1024, float(usr) + float(sys_), r.stdout.strip()


def stats(a, store):
    r = mreg(a, store, "--json", "stats", check=True)
    return json.loads(r.stdout)


def verify(a, store, data, made):
    """fsck, then every file of every version read back and hashed."""
    out = {}
    t0 = time.monotonic()
    r = mreg(a, store, "fsck")
    out["fsck_rc"], out["fsck_s"] = r.returncode, time.monotonic() - t0
    out["fsck_out"] = (r.stdout + r.stderr)[-2000:]
    want = {}
    with open(os.path.join(data, "MANIFEST.sha256")) as f:
        for line in f:
            h, rel = line.rstrip("\n").split("  ", 1)
            want[rel] = h
    bad, nbytes = [], 0
    t0 = time.monotonic()
    for unit, version in made:
        for inner, path in unit_files(data, unit):
            cmd = [a.mreg, "--store", store, "-q"] + (["-c", a.conf] if a.conf else []) \
                + ["cat", f"{MODEL}/{version}/{inner}"]
            p = subprocess.Popen(cmd, stdout=subprocess.PIPE)
            h = hashlib.sha256()
            for blk in iter(lambda: p.stdout.read(1 << 20), b""):
                h.update(blk)
                nbytes += len(blk)
            rc = p.wait()
            rel = os.path.relpath(path, data)
            if rc != 0 or h.hexdigest() != want.get(rel):
                bad.append(f"{MODEL}/{version}/{inner} (rc {rc})")
    out["readback_s"], out["readback_bytes"] = time.monotonic() - t0, nbytes
    out["readback_bad"] = bad
    return out


def one_rep(a, rep, us):
    store = os.path.join(a.work, f"push-store-{rep}")
    shutil.rmtree(store, ignore_errors=True)
    r = mreg(a, store, "init")
    if r.returncode != 0:
        sys.exit(f"push_bench: mreg init failed: {r.stderr}")
    warm(a.data)
    prev = du(store)
    prev_stats = stats(a, store)
    rows, made = [], []
    tfile = os.path.join(a.work, "time.txt")
    for unit, logical, ideal in us:
        wall, rss, cpu, ver = timed_push(a, store, unit, tfile)
        made.append((unit, ver))
        cur = du(store)
        st = stats(a, store)
        row = {"unit": unit, "version": ver, "logical": logical, "ideal": ideal,
               "wall_s": wall, "cpu_s": cpu, "peak_rss": rss,
               "store_files_after": cur[0], "store_alloc_after": cur[1],
               "grew_files": cur[0] - prev[0], "grew_alloc": cur[1] - prev[1],
               "stored_after": st["total"]["stored_bytes"],
               "grew_stored": st["total"]["stored_bytes"] - prev_stats["total"]["stored_bytes"],
               "pack_bytes_after": st.get("pack_bytes"),
               "index_bytes_after": st.get("index_bytes"),
               "chunks_after": st.get("chunks")}
        rows.append(row)
        prev, prev_stats = cur, st
        print(f"mreg rep {rep} {unit:24} +{row['grew_stored']:>13,} B chunks, "
              f"+{row['grew_files']:>13,} B files  {wall:6.2f}s "
              f"{logical / wall / 1e6 if wall else 0:7.0f} MB/s {rss / 2**20:5.1f} MiB",
              flush=True)
    res = {"rows": rows, "final_stats": prev_stats}
    if a.verify and rep == 0:
        res["verify"] = verify(a, store, a.data, made)
        v = res["verify"]
        print(f"mreg verify: fsck rc {v['fsck_rc']}, read back "
              f"{v['readback_bytes']:,} B in {v['readback_s']:.1f}s, "
              f"{len(v['readback_bad'])} bad", flush=True)
    shutil.rmtree(store, ignore_errors=True)
    return res


def big_rep(a, rep):
    store = os.path.join(a.work, f"push-big-{rep}")
    shutil.rmtree(store, ignore_errors=True)
    r = mreg(a, store, "init")
    if r.returncode != 0:
        sys.exit(f"push_bench: mreg init failed: {r.stderr}")
    size = os.path.getsize(a.big)
    warm(a.big)
    os.sync()
    pf = prefault(2 * size + (1 << 30))
    d = os.path.dirname(os.path.abspath(a.big))
    a2 = argparse.Namespace(**vars(a))
    a2.data = d
    wall, rss, cpu, ver = timed_push(a2, store, os.path.basename(a.big),
                                     os.path.join(a.work, "time.txt"))
    st = stats(a, store)
    shutil.rmtree(store, ignore_errors=True)
    print(f"mreg big rep {rep} {size:,} B  {wall:6.2f}s {size / wall / 1e6:7.0f} MB/s "
          f"{rss / 2**20:5.1f} MiB", flush=True)
    return {"bytes": size, "wall_s": wall, "cpu_s": cpu, "peak_rss": rss,
            "stored": st["total"]["stored_bytes"], "prefault_s": pf}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mreg", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--conf")
    ap.add_argument("--verify", action="store_true")
    ap.add_argument("--big")
    a = ap.parse_args()
    os.makedirs(a.work, exist_ok=True)
    us = units(a.data)
    res = {"mreg": a.mreg,
           "conf": open(a.conf).read() if a.conf else None,
           "units": [{"name": u, "logical": lg, "ideal": idl} for u, lg, idl in us],
           "reps": []}
    for rep in range(a.reps):
        res["reps"].append(one_rep(a, rep, us))
    if a.big:
        res["big"] = [big_rep(a, rep) for rep in range(a.reps)]
    with open(a.out, "w") as f:
        json.dump(res, f, indent=1)
    print(f"push results in {a.out}")


if __name__ == "__main__":
    main()
