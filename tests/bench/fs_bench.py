#!/usr/bin/python3
"""fs_bench.py - mregfs against a native directory of the same filesystem,
in the same run: cp of a large file in, sequential read (cold, then warm)
of it through stages/Production, and warm stat(2).

Usage: fs_bench.py --mregfs BIN --file FILE --work DIR --out FILE.json
                   [--reps N] [--conf FILE] [--pidfile FILE]
                   [--tree DIR --tree-files N] [--peers 0|1] [--peer-reps N]
                   [--peer-budget SECONDS]

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
  inside    cp MNT/models/bench/1/FILE MNT/models/bench/ (version 3): cp's
            copy_file_range shares the sealed file's chunks
  read      dd if=MNT/models/bench/stages/Production/FILE of=/dev/null bs=1M,
            cold then warm, against the same on NATIVE/FILE
  stat      os.stat() in a Python loop, each call timed, median, on
            MNT/models/bench/1/FILE, on the stage path and on NATIVE/FILE
  packwarm  the first read of the stage path again, with every file of the
            store (packs, index) read into the page cache first and a
            fresh mount (the old mount's page cache goes with it)
  cp -r     cp -r TREE MNT/models/small/1 (a draft version; every close()
            is durable) against cp -r TREE NATIVE/1, with and without
            sync -f; TREE (--tree, made once and cached beside a stamp
            TREE.json): --tree-files files of 1-256 KiB (log-uniform sizes,
            seeded random bytes) laid out as a small model: config files,
            tokenizer/, layers/NNN/ of 40 tensor files each; the native
            copies are kept until the part ends
  peers     the same FILE through `restic mount` and `borg mount -f`: per
            run a fresh repository (restic: --compression off; borg: -e
            none, -C none) holding FILE (backup untimed), then dd of FILE
            under the mount, cold (drop_caches, fresh mount) and with the
            repository's files read into the page cache first (fresh
            mount); cmp on the first run. Up to --peer-reps runs per peer,
            fewer when a peer's runs would pass half of --peer-budget.

Memory prefault (benchlib.prefault): right before each timed cp and each
cold read, anonymous memory of 3x the file size plus 1 GiB is touched and
freed, so that on a virtual machine that hands free pages back to its host
no contender pays host faults for fresh page cache (a cp into mregfs
allocates three times the file: FUSE page cache, spool, pack). --prefault 0
turns it off.

Every mount (mregfs, restic, borg) is always taken down (fusermount3 -u,
then SIGTERM/SIGKILL of the daemon's pid) on exit, on an error and on
SIGINT/SIGTERM.
"""

import argparse
import hashlib
import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import time

from benchlib import init_store, prefault, proc_memory, run, unmount

MODEL = "bench"


class Mount:
    """One mregfs daemon in the foreground, on a fresh or given store; or,
    with cmd, any daemon that mounts at mnt in the foreground (restic
    mount, borg mount -f), ready once the path `ready` exists."""

    def __init__(self, a, store, mnt, cmd=None, name="mregfs", ready=None, wait=10):
        self.a, self.store, self.mnt, self.proc = a, store, mnt, None
        self.cmd, self.name, self.ready, self.wait = cmd, name, ready, wait

    def up(self):
        os.makedirs(self.mnt, exist_ok=True)
        cmd = self.cmd
        if cmd is None:
            init_store(os.path.join(os.path.dirname(self.a.mregfs), "mreg"),
                       self.store, self.a.conf)
            cmd = [self.a.mregfs, "--store", self.store, "-f"]
            if self.a.conf:
                cmd += ["-c", self.a.conf]
            cmd.append(self.mnt)
        self.log = open(os.path.join(self.a.work, self.name + ".log"), "a")
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=self.log)
        if self.a.pidfile:
            with open(self.a.pidfile, "w") as f:
                f.write(f"{self.proc.pid}\n")
        t_end = time.monotonic() + self.wait
        while time.monotonic() < t_end:
            if subprocess.run(["mountpoint", "-q", self.mnt]).returncode == 0 and \
                    (self.ready is None or os.path.exists(self.ready)):
                return
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode} "
                                   f"(log: {self.log.name})")
            time.sleep(0.05)
        raise RuntimeError(f"{self.name} did not mount within {self.wait} s"
                           + (f" (or {self.ready} did not appear)" if self.ready else ""))

    def hwm(self):
        """The daemon's peak RSS so far (VmHWM) and its current anonymous
        and file-backed RSS, bytes."""
        return proc_memory(self.proc.pid)

    def down(self):
        if self.proc is None:
            return
        unmount(self.proc, self.mnt)
        self.proc = None
        if self.a.pidfile:
            try:
                os.unlink(self.a.pidfile)
            except OSError:
                pass


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


def warm_tree(path):
    """Every file under path read into the page cache."""
    run(["sh", "-c", f"find '{path}' -type f -exec cat {{}} + >/dev/null"])


# -- the tree of many small files of the cp -r rows

TREE_SEED = 20241123
TENSORS = ("input_layernorm.weight", "post_attention_layernorm.weight",
           "self_attn.q_proj.weight", "self_attn.k_proj.weight", "self_attn.v_proj.weight",
           "self_attn.o_proj.weight", "mlp.gate_proj.weight", "mlp.up_proj.weight",
           "mlp.down_proj.weight", "self_attn.rotary_emb.inv_freq")
TREE_TOP = ("config.json", "generation_config.json", "model.safetensors.index.json",
            "README.md", "tokenizer/tokenizer.json", "tokenizer/vocab.json",
            "tokenizer/merges.txt", "tokenizer/tokenizer_config.json",
            "tokenizer/special_tokens_map.json")


def tree_names(n):
    """n relative paths: the config and tokenizer files, then
    layers/NNN/<tensor>.<shard>.bin, 40 files a directory."""
    names = list(TREE_TOP)
    layer = 0
    while len(names) < n:
        names += [f"layers/{layer:03d}/{t}.{k}.bin" for t in TENSORS for k in range(4)]
        layer += 1
    return names[:n]


def tree_digest(path):
    """Files, bytes, directories and a sha256 over every (name, content)."""
    h = hashlib.sha256()
    files = nbytes = dirs = 0
    for d, dn, fn in os.walk(path):
        dn.sort()
        dirs += len(dn)
        for f in sorted(fn):
            p = os.path.join(d, f)
            with open(p, "rb") as fh:
                b = fh.read()
            h.update(os.path.relpath(p, path).encode() + b"\0" + b)
            files += 1
            nbytes += len(b)
    return {"files": files, "bytes": nbytes, "dirs": dirs, "sha256": h.hexdigest()}


def make_tree(path, n):
    """The cp -r source: made once, then reused while it matches the stamp
    path.json (same layout, seed and file count, same digest)."""
    stamp = path.rstrip("/") + ".json"
    try:
        with open(stamp) as f:
            info = json.load(f)
    except (OSError, ValueError):
        info = {}
    if info.get("layout") == 1 and info.get("seed") == TREE_SEED and \
            info.get("files") == n and os.path.isdir(path):
        d = tree_digest(path)
        if d == {k: info.get(k) for k in d}:
            return info
    print(f"fs writing {n} small files to {path}", flush=True)
    tmp = path.rstrip("/") + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    rng = random.Random(TREE_SEED)
    for name in tree_names(n):
        p = os.path.join(tmp, name)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        size = int(1024 * 256 ** rng.random())  # 1 KiB to 256 KiB, log-uniform
        with open(p, "wb") as f:
            f.write(rng.randbytes(size))
    shutil.rmtree(path, ignore_errors=True)
    os.rename(tmp, path)
    info = dict(tree_digest(path), layout=1, seed=TREE_SEED, path=path)
    with open(stamp, "w") as f:
        json.dump(info, f, indent=1)
    return info


# -- restic and borg: the same file through their FUSE mounts

PEERS = ("restic", "borg")


def peer_env(work):
    """restic's and borg's password, caches and keys under work, not $HOME."""
    pw = os.path.join(work, "restic-password")
    with open(pw, "w") as f:
        f.write("mreg-bench\n")
    os.environ.update(RESTIC_PASSWORD_FILE=pw,
                      RESTIC_CACHE_DIR=os.path.join(work, "restic-cache"),
                      BORG_BASE_DIR=os.path.join(work, "borg-base"),
                      BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK="yes",
                      BORG_RELOCATED_REPO_ACCESS_IS_OK="yes")


def peer_backup(peer, repo, src):
    """A fresh repository of peer holding src; the seconds it took."""
    for d in (repo, os.environ["RESTIC_CACHE_DIR"], os.environ["BORG_BASE_DIR"]):
        shutil.rmtree(d, ignore_errors=True)
    if peer == "restic":
        cmds = [["restic", "-r", repo, "init", "-q"],
                ["restic", "-r", repo, "backup", "-q", "--compression", "off", src]]
    else:
        cmds = [["borg", "init", "-e", "none", repo],
                ["borg", "create", "-C", "none", repo + "::a", src]]
    return timed(cmds)


def peer_mount(a, peer, repo, mnt, src):
    """The Mount of peer's repository, and the path of src under it."""
    if peer == "restic":
        path = os.path.join(mnt, "snapshots", "latest") + src
        cmd = ["restic", "-r", repo, "mount", mnt]
    else:
        path = mnt + src
        cmd = ["borg", "mount", "-f", repo + "::a", mnt]
    return Mount(a, None, mnt, cmd=cmd, name=peer + "-mount", ready=path, wait=120), path


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
    ap.add_argument("--tree", help="the cp -r source (made once, cached)")
    ap.add_argument("--tree-files", type=int, default=2000)
    ap.add_argument("--peers", type=int, default=1, help="restic and borg mount reads")
    ap.add_argument("--peer-reps", type=int)
    ap.add_argument("--peer-budget", type=float, default=300,
                    help="seconds for all peer runs (each peer half)")
    a = ap.parse_args()
    a.file = os.path.abspath(a.file)
    if a.peer_reps is None:
        a.peer_reps = a.reps

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

    def pf(n=size):
        if a.prefault:
            res["prefault_s"].append(prefault(3 * n + (1 << 30)))
    S = res["samples"]
    tree = None

    def add(key, v):
        S.setdefault(key, []).append(v)
        if key.startswith("cp_r_"):
            print(f"fs {key:22} {v:9.3f} s  {tree['bytes'] / v / 1e6:8.0f} MB/s "
                  f"{tree['files'] / v:8.0f} files/s", flush=True)
            return
        print(f"fs {key:22} {v:9.3f}" + (f" s  {size / v / 1e6:8.0f} MB/s"
                                        if key.startswith(("cp_", "read_")) else " us"), flush=True)

    m = Mount(a, store, mnt)
    mounts = [m]  # every Mount made, taken down in the finally below
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
            # -- a copy inside the mount: cp uses copy_file_range, and the
            #    new version takes the sealed file's chunks (metadata only)
            settle()

            def packs_bytes():
                d = os.path.join(store, "packs")
                return sum(os.path.getsize(os.path.join(d, x)) for x in os.listdir(d))
            before = packs_bytes()
            add("cp_inside", timed([["cp", os.path.join(mnt, "models", MODEL, "1", name),
                                     os.path.join(mnt, "models", MODEL) + "/"]]))
            res.setdefault("cp_inside_pack_growth", []).append(packs_bytes() - before)
            if rep == 0:
                r = subprocess.run(["cmp", a.file, os.path.join(mnt, "models", MODEL, "3", name)],
                                   capture_output=True, text=True)
                res["cmp_inside_rc"] = r.returncode
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

            # -- first read with the store's files (packs, index) in the page
            # cache: a fresh mount, whose page cache went with the last one
            warm_tree(store)
            m.up()
            pf()
            add("read_mreg_packwarm", dd(stage))
            m.down()
            shutil.rmtree(store, ignore_errors=True)
            shutil.rmtree(native, ignore_errors=True)

        # -- cp -r of a version of many small files: mregfs (a draft version;
        # each close() durable) against native cp -r, with and without sync -f
        if a.tree:
            tree = res["tree"] = make_tree(a.tree, a.tree_files)
            tb = tree["bytes"]
            print(f"fs tree: {tree['files']} files, {tree['dirs']} directories, "
                  f"{tb / 1e6:.1f} MB", flush=True)
            small = os.path.join(mnt, "models", "small")
            # The native copies stay until the end: ext4 without a journal
            # (as here) skips recently freed inodes (recently_deleted()), and
            # after an rm -rf of 2,000 files the next cp -r spent seconds of
            # system time in that scan (0.08 s, then 1.3 and 2.2 s).
            fresh(native)
            for rep in range(a.reps):
                warm_tree(a.tree)
                for key, sync in (("cp_r_native", False), ("cp_r_native_syncfs", True)):
                    ndir = os.path.join(native, f"{rep}-{key}")
                    settle()
                    pf(tb)
                    add(key, timed([["cp", "-r", a.tree, ndir]]
                                   + ([["sync", "-f", ndir]] if sync else [])))
                    settle()
                fresh(store)
                m.up()
                os.mkdir(small)
                settle()
                pf(tb)
                add("cp_r_mreg", timed([["cp", "-r", a.tree, os.path.join(small, "1")]]))
                if rep == 0:
                    r = subprocess.run(["diff", "-r", "-q", a.tree, os.path.join(small, "1")],
                                       capture_output=True, text=True)
                    res["diff_tree_rc"] = r.returncode
                    res["diff_tree_out"] = (r.stdout + r.stderr)[-500:]
                    print(f"fs diff -r of models/small/1 with the tree: rc {r.returncode}")
                m.down()
                shutil.rmtree(store, ignore_errors=True)
            shutil.rmtree(native, ignore_errors=True)

        # -- the same FILE through restic mount and borg mount
        res["peer_runs"], res["peer_backup_s"], res["peer_notes"] = {}, {}, {}
        if a.peers:
            peer_env(a.work)
        for peer in PEERS if a.peers else ():
            if shutil.which(peer) is None:
                res["peer_notes"][peer] = f"not run: no {peer}"
                continue
            repo = os.path.join(a.work, peer + "-repo")
            pmnt = os.path.join(a.work, "mnt-" + peer)
            t_peer = time.monotonic()
            try:
                for r in range(a.peer_reps):
                    res["peer_backup_s"].setdefault(peer, []).append(
                        peer_backup(peer, repo, a.file))
                    for kind in ("cold", "repowarm"):
                        if kind == "cold":
                            if not cold_ok:
                                continue
                            drop_caches()
                        else:
                            warm_tree(repo)
                        pm, path = peer_mount(a, peer, repo, pmnt, a.file)
                        mounts.append(pm)
                        pm.up()
                        pf()
                        add(f"read_{peer}_{kind}", dd(path))
                        if r == 0 and kind == "repowarm":
                            c = subprocess.run(["cmp", a.file, path],
                                               capture_output=True, text=True)
                            res[f"cmp_{peer}_rc"] = c.returncode
                            res[f"cmp_{peer}_out"] = (c.stdout + c.stderr)[-500:]
                            print(f"fs cmp through the {peer} mount: rc {c.returncode}")
                        pm.down()
                    res["peer_runs"][peer] = r + 1
                    spent, share = time.monotonic() - t_peer, a.peer_budget / len(PEERS)
                    if r + 1 < a.peer_reps and spent * (r + 2) / (r + 1) > share:
                        res["peer_notes"][peer] = (f"{r + 1} of {a.peer_reps} runs: {spent:.0f} s "
                                                   f"spent, the next would pass {share:.0f} s")
                        print(f"fs {peer}: {res['peer_notes'][peer]}", flush=True)
                        break
            except (RuntimeError, OSError) as e:
                # a peer that fails costs its own rows, not the file of results
                res["peer_notes"][peer] = f"failed: {str(e)[:300]}"
                print(f"fs {peer}: {res['peer_notes'][peer]}", flush=True)
                for x in mounts[1:]:
                    x.down()
            res["peer_s"] = dict(res.get("peer_s", {}), **{peer: time.monotonic() - t_peer})
            for d in (repo, os.environ["RESTIC_CACHE_DIR"], os.environ["BORG_BASE_DIR"]):
                shutil.rmtree(d, ignore_errors=True)
    finally:
        for x in reversed(mounts):
            x.down()
    res["median"] = {k: statistics.median(v) for k, v in S.items()}
    with open(a.out, "w") as f:
        json.dump(res, f, indent=1)
    print(f"fs results in {a.out}")


if __name__ == "__main__":
    main()
