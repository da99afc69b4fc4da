#!/usr/bin/python3
"""report.py - turn the raw results of tests/bench/run.sh ($MREG_BUILD/bench/
push.json, peers.json, fs.json, steps.txt) into BENCHMARKS.md, and write
the same figures as CSV next to the JSON.

Medians are over the repetitions; MB/s are 10^6 bytes per second of logical
(input) bytes; MiB are 2^20 bytes. tests/bench/NOTES.md, when present, is
appended as is (profiles and analysis written by hand).
"""

import argparse
import csv
import datetime
import json
import os
import platform
import statistics
import subprocess

MED = statistics.median


def sh(cmd):
    try:
        r = subprocess.run(cmd, shell=True, capture_output=True, text=True, timeout=30)
        return (r.stdout or r.stderr).strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def load(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def mib(n):
    return f"{n / 2**20:,.1f} MiB"


def mb(n):
    return f"{n / 1e6:,.1f} MB"


def pct(x):
    return f"{x:+.2f} %"


def verdict(ok):
    return "**met**" if ok else "**missed**"


def machine(work, top, out):
    cpu = ""
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    lscpu = sh("lscpu | grep -E '^(Model name|Thread|Core|Socket|L3|Flags)' | "
               "grep -v Flags")
    mem = ""
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal"):
                mem = f"{int(line.split()[1]) / 2**20:.1f} GiB"
    fs = sh(f"findmnt -n -o SOURCE,FSTYPE,OPTIONS -T '{work}'")
    rot = ""
    src = fs.split()[0] if fs else ""
    if src.startswith("/dev/"):
        dev = os.path.basename(src)
        rot = sh(f"cat /sys/block/{dev}/queue/rotational 2>/dev/null")
    try:  # as run.sh found the tree when the run began
        with open(os.path.join(out, "commit.txt")) as f:
            commit, dirty = (f.read().split() + ["", ""])[:2]
    except OSError:
        commit = sh(f"git -C '{top}' rev-parse --short HEAD")
        dirty = sh(f"git -C '{top}' status --porcelain -- core fs tools Makefile | wc -l")
    return {
        "nproc": os.cpu_count(), "cpu": cpu, "lscpu": lscpu, "memory": mem,
        "kernel": platform.release(), "os": sh(". /etc/os-release && echo $PRETTY_NAME"),
        "fs": fs, "rotational": rot,
        "cc": sh("cc --version | head -1"),
        "libs": sh("dpkg-query -W -f '${Package} ${Version}\\n' libxxhash0 liblmdb0 "
                   "libfuse3-3 2>/dev/null"),
        "restic": sh("restic version"), "borg": sh("borg --version"),
        "commit": commit + (f" plus {dirty} uncommitted changes under core/ fs/ tools/"
                            if dirty not in ("", "0") else ""),
    }


# ------------------------------------------------------------------ issue 2

def push_summary(push):
    """Per repetition totals, then medians."""
    reps = []
    for r in push["reps"]:
        rows = r["rows"]
        logical = sum(x["logical"] for x in rows)
        wall = sum(x["wall_s"] for x in rows)
        fin = r["final_stats"]
        reps.append({"logical": logical, "wall": wall, "cpu": sum(x["cpu_s"] for x in rows),
                     "rss": max(x["peak_rss"] for x in rows),
                     "payload": fin["total"]["stored_bytes"],
                     "files": rows[-1]["store_files_after"],
                     "alloc": rows[-1]["store_alloc_after"],
                     "pack_bytes": fin.get("pack_bytes"), "index_bytes": fin.get("index_bytes"),
                     "chunks": fin.get("chunks")})
    s = {k: MED([r[k] for r in reps]) for k in reps[0] if reps[0][k] is not None}
    s["walls"] = [r["wall"] for r in reps]
    s["rsss"] = [r["rss"] for r in reps]
    s["mbps"] = s["logical"] / s["wall"] / 1e6
    s["n"] = len(reps)
    return s


def peer_summary(entries):
    reps = []
    for e in entries:
        rows = e["rows"]
        logical = sum(x["logical"] for x in rows)
        wall = sum(x["wall_s"] for x in rows)
        reps.append({"logical": logical, "wall": wall, "rss": max(x["peak_rss"] for x in rows),
                     "grew": sum(x["stored"] for x in rows), "files": rows[-1]["store_after"],
                     "alloc": rows[-1]["alloc_after"]})
    s = {k: MED([r[k] for r in reps]) for k in reps[0]}
    s["walls"] = [r["wall"] for r in reps]
    s["mbps"] = s["logical"] / s["wall"] / 1e6
    s["n"] = len(reps)
    return s


PEER_NOTES = {
    "restic-auto": "1 MiB avg chunks, encrypted, zstd auto",
    "restic-off": "1 MiB avg chunks, encrypted, no compression",
    "borg-def-none": "2 MiB avg chunks, no compression",
    "borg-def-lz4": "2 MiB avg chunks, lz4 (borg's default)",
    "borg-64k-none": "64 KiB avg chunks, no compression",
    "borg-64k-lz4": "64 KiB avg chunks, lz4",
}


def section_push(push, peers, ideal_total, units, L, csvdir):
    if push is None:
        L += ["", "mreg push: **not run** (see push.log)", ""]
        return {}
    s = push_summary(push)
    ideal = ideal_total
    L += ["### Stored bytes, throughput and memory, side by side", "",
          f"All stores ingest the same {len(units)} versions in the same order, page cache "
          "warm. *Stored* is what the store directory holds at the end: for mreg the chunk "
          "bytes alone (`stored_bytes` of `mreg stats --json`), then every file of the "
          "store (packs with their record headers, the LMDB index and its lock file), "
          "then `du -sB1` (allocated blocks, directories included). "
          "Peers: the sum of the sizes of every file of the repository (data and "
          "metadata together), and du. Compressed configurations can go below the "
          "ideal, which counts raw bytes. MB/s: logical bytes of all versions / the sum "
          "of the per-version wall times. Peak RSS: the largest of the per-version "
          f"maxima (GNU time). mreg: median of {s['n']} runs, each into a fresh store.", "",
          "| store | stored | vs ideal | all files | vs ideal | du -sB1 | ingest time | "
          "ingest MB/s | peak RSS | runs |",
          "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
          f"| *ideal* (gen_models.py) | {mb(ideal)} | | | | | | | | |",
          f"| **mreg push** (64 KiB avg CDC, XXH3-128, verify on, fsync on) | "
          f"{mb(s['payload'])} | {pct((s['payload'] / ideal - 1) * 100)} | {mb(s['files'])} | "
          f"{pct((s['files'] / ideal - 1) * 100)} | {mb(s['alloc'])} | {s['wall']:.2f} s | "
          f"**{s['mbps']:,.0f}** | {mib(s['rss'])} | {s['n']} |"]
    ps = {}
    for name in sorted(peers or {}):
        p = peer_summary(peers[name])
        ps[name] = p
        L.append(f"| {name} ({PEER_NOTES.get(name, '')}) | | | {mb(p['files'])} | "
                 f"{pct((p['files'] / ideal - 1) * 100)} | {mb(p['alloc'])} | "
                 f"{p['wall']:.1f} s | {p['mbps']:,.0f} | {mib(p['rss'])} | {p['n']} |")
    if not peers:
        L.append("| restic, borg | not run (see peers.log) | | | | | | | | |")
    big = push.get("big")
    if big:
        bw = MED([b["wall_s"] for b in big])
        brss = MED([b["peak_rss"] for b in big])
        L.append(f"| mreg push, one {big[0]['bytes'] / 2**30:g} GiB file of random bytes "
                 f"(every chunk new) | {mb(MED([b['stored'] for b in big]))} | | | | | "
                 f"{bw:.2f} s | {big[0]['bytes'] / bw / 1e6:,.0f} | {mib(brss)} | {len(big)} |")
        s["big_rss"] = brss
    L += ["", f"mreg per-run totals (s): {', '.join(f'{w:.2f}' for w in s['walls'])}; "
          f"peak RSS per run: {', '.join(mib(r) for r in s['rsss'])}; CPU time (user+sys, "
          f"median) {s['cpu']:.2f} s; chunks {s.get('chunks', 0):,.0f}; packs "
          f"{mb(s.get('pack_bytes', 0))}; index {mb(s.get('index_bytes', 0))}.", ""]

    # per version
    nrep = len(push["reps"])
    byunit = {}
    for r in push["reps"]:
        for x in r["rows"]:
            byunit.setdefault(x["unit"], []).append(x)
    L += ["### Per version", "",
          "Growth of each store per version (bytes added). mreg: chunk bytes added, then "
          f"all files; time, MB/s and RSS medians of {nrep} runs. Peers (bytes): all files "
          "of the repository.", ""]
    peer_cols = [n for n in ("restic-off", "borg-def-none", "borg-64k-none") if n in (peers or {})]
    hdr = "| version | logical | ideal | mreg chunks | vs ideal | mreg files | " \
        + " | ".join(peer_cols) + (" | " if peer_cols else "") + "mreg time | MB/s | peak RSS |"
    L += [hdr, "|" + "---|" + "---:|" * (hdr.count("|") - 2)]
    rowsout = []
    for i, (u, lg, idl) in enumerate(units):
        xs = byunit.get(u, [])
        if not xs:
            continue
        g = MED([x["grew_stored"] for x in xs])
        gf = MED([x["grew_files"] for x in xs])
        w = MED([x["wall_s"] for x in xs])
        rss = MED([x["peak_rss"] for x in xs])
        d = f"{(g - idl) / idl * 100:+.2f} %" if idl else f"{g - idl:+,} B"
        pc = []
        for n in peer_cols:
            pr = peers[n][0]["rows"]
            pc.append(f"{MED([e['rows'][i]['stored'] for e in peers[n]]):,}" if i < len(pr) else "")
        L.append(f"| {u} | {lg:,} | {idl:,} | {g:,.0f} | {d} | {gf:,.0f} | "
                 + " | ".join(pc) + (" | " if pc else "")
                 + f"{w:.3f} s | {lg / w / 1e6:,.0f} | {mib(rss)} |")
        rowsout.append([u, lg, idl, g, gf, w, lg / w / 1e6, rss])
    small = [(r[0], r[3] - r[2]) for r in rowsout if r[2] < 0.05 * r[1] and r[3] > r[2]]
    if small:
        L += ["", "Where the ideal is tiny, the chunks that straddle a change dominate the "
              "percentage; in bytes and in 64 KiB average chunks the extra is: " + "; ".join(
                  f"{u} +{x / 1024:,.0f} KiB ({x / 65536:.1f} chunks)" for u, x in small) + "."]
    L.append("")
    with open(os.path.join(csvdir, "push.csv"), "w", newline="") as f:
        wr = csv.writer(f)
        wr.writerow(["rep", "unit", "version", "logical", "ideal", "grew_stored", "grew_files",
                     "grew_alloc", "wall_s", "cpu_s", "peak_rss"])
        for k, r in enumerate(push["reps"]):
            for x in r["rows"]:
                wr.writerow([k, x["unit"], x["version"], x["logical"], x["ideal"], x["grew_stored"],
                             x["grew_files"], x["grew_alloc"], f"{x['wall_s']:.4f}",
                             f"{x['cpu_s']:.2f}", x["peak_rss"]])
    if peers:
        with open(os.path.join(csvdir, "peers.csv"), "w", newline="") as f:
            wr = csv.writer(f)
            wr.writerow(["config", "rep", "unit", "logical", "stored", "store_after",
                         "alloc_after", "wall_s", "cpu_s", "peak_rss"])
            for n, es in sorted(peers.items()):
                for k, e in enumerate(es):
                    for x in e["rows"]:
                        wr.writerow([n, k, x["unit"], x["logical"], x["stored"], x["store_after"],
                                     x["alloc_after"], f"{x['wall_s']:.3f}", f"{x['cpu_s']:.2f}",
                                     x["peak_rss"]])

    # targets
    L += ["### Against the targets of issue 2", "",
          "| target | measured | |", "|---|---|---|"]
    d0 = (s["payload"] / ideal - 1) * 100
    d1 = (s["files"] / ideal - 1) * 100
    L.append(f"| stored within 0.5 % of the ideal | {pct(d0)} (chunk bytes) | {verdict(abs(d0) <= 0.5)} |")
    L.append(f"| within 1 % counting metadata | {pct(d1)} (every file of the store) | "
             f"{verdict(abs(d1) <= 1.0)} |")
    for tool, factor in (("borg", 3), ("restic", 5)):
        cands = {n: p for n, p in ps.items() if n.startswith(tool)}
        if not cands:
            L.append(f"| push >= {factor}x {tool} | {tool} not run | |")
            continue
        fastest = max(cands, key=lambda n: cands[n]["mbps"])
        ratio = s["mbps"] / cands[fastest]["mbps"]
        others = ", ".join(f"{s['mbps'] / p['mbps']:.2f}x {n}" for n, p in sorted(cands.items())
                           if n != fastest)
        L.append(f"| push >= {factor}x {tool}'s throughput, same run | {ratio:.2f}x its fastest "
                 f"configuration ({fastest}, {cands[fastest]['mbps']:,.0f} MB/s); {others} | "
                 f"{verdict(ratio >= factor)} |")
    L.append(f"| about 600 MB/s here | {s['mbps']:,.0f} MB/s | {verdict(s['mbps'] >= 600)} |")
    L.append(f"| peak RSS <= 64 MiB | {mib(s['rss'])} over the data set | "
             f"{verdict(s['rss'] <= 64 * 2**20)} |")
    if "big_rss" in s:
        L.append(f"| ... whatever the file size | {mib(s['big_rss'])} for one "
                 f"{push['big'][0]['bytes'] / 2**30:g} GiB file | "
                 f"{verdict(s['big_rss'] <= 64 * 2**20)} |")
    v = push["reps"][0].get("verify")
    if v:
        ok = v["fsck_rc"] == 0 and not v["readback_bad"]
        L.append(f"| correct | `mreg fsck` exit {v['fsck_rc']}; every file of every version read "
                 f"back with `mreg cat` ({mb(v['readback_bytes'])} in {v['readback_s']:.1f} s, "
                 f"{v['readback_bytes'] / v['readback_s'] / 1e6:,.0f} MB/s) and its sha256 "
                 f"checked: {len(v['readback_bad'])} wrong | {verdict(ok)} |")
    L.append("")
    return s


# ------------------------------------------------------------------ issue 3

def section_fs(fs, L, csvdir):
    if fs is None:
        L += ["Not run (see fs.log).", ""]
        return
    if "not_run" in fs:
        L += [f"**Not run: {fs['not_run']}.** The script is in place "
              "(tests/bench/fs_bench.py); every row below is pending.", "",
              "| operation | mregfs | native | ratio | target |", "|---|---|---|---|---|",
              "| cp of a 2 GiB file in | not run: mregfs not built | | | >= 40 % |",
              "| sequential re-read (warm) | not run: mregfs not built | | | >= 90 % |",
              "| sequential first read (cold) | not run: mregfs not built | | | |",
              "| warm stat | not run: mregfs not built | | | <= 1.5x |", ""]
        return
    m, S, size = fs["median"], fs["samples"], fs["file_bytes"]
    n = fs["reps"]

    def tp(k):
        return size / m[k] / 1e6

    def cell(k):
        if k not in m:
            return "n/a"
        return f"{m[k]:.2f} s = {tp(k):,.0f} MB/s"

    def samples(k):
        return ", ".join(f"{x:.2f}" for x in S.get(k, []))

    hs = f"{size / 2**30:g} GiB" if size >= 2**30 else f"{size / 2**20:g} MiB"
    L += [f"A {hs} file of random bytes (no dedup possible); medians of {n} "
          "runs, each mregfs run on a fresh store and a fresh mount; the native directory is "
          "on the same filesystem as the store. Ratios are throughput mregfs / native "
          "(higher is better), or time mregfs / native for stat (lower is better).", "",
          "| operation | mregfs | native | ratio | target | |",
          "|---|---|---|---:|---|---|"]
    if "cp_mreg" in m:
        r = tp("cp_mreg") / tp("cp_native_syncfs")
        L.append(f"| `cp` in (mregfs: close() is durable) vs `cp && sync -f FILE` | {cell('cp_mreg')} | "
                 f"{cell('cp_native_syncfs')} | {r:.0%} | >= 40 % | {verdict(r >= 0.4)} |")
        r2 = tp("cp_mreg") / tp("cp_native_fsync")
        L.append(f"| `cp` in vs `cp && sync FILE` (fsync of the file) | {cell('cp_mreg')} | "
                 f"{cell('cp_native_fsync')} | {r2:.0%} | >= 40 % | {verdict(r2 >= 0.4)} |")
        r3 = tp("cp_mreg") / tp("cp_native")
        L.append(f"| `cp` in vs plain `cp` (native: page cache only, not durable) | "
                 f"{cell('cp_mreg')} | {cell('cp_native')} | {r3:.0%} | (for information) | |")
        L.append(f"| `cp` of the same bytes again (every chunk dedup-verified) | "
                 f"{cell('cp_mreg_again')} | {cell('cp_native_syncfs')} | "
                 f"{tp('cp_mreg_again') / tp('cp_native_syncfs'):.0%} | (for information) | |")
    if "cp_inside" in m:
        ok = fs.get("cmp_inside_rc")
        grew = fs.get("cp_inside_pack_growth", [])
        L.append(f"| `cp` inside the mount, `1/FILE` to a new version (copy_file_range: the "
                 f"chunks are shared); packs grew by {', '.join(f'{g:,}' for g in grew)} bytes"
                 f"{'' if ok is None else ', cmp exit ' + str(ok)} | "
                 f"{cell('cp_inside')} | {cell('cp_native_syncfs')} | "
                 f"{tp('cp_inside') / tp('cp_native_syncfs'):.0%} | metadata only | "
                 f"{verdict(bool(grew) and max(grew) == 0 and ok in (0, None))} |")
    if "read_mreg_warm" in m:
        r = tp("read_mreg_warm") / tp("read_native_warm")
        L.append(f"| sequential re-read (warm), `stages/Production/FILE` | {cell('read_mreg_warm')} | "
                 f"{cell('read_native_warm')} | {r:.0%} | >= 90 % | {verdict(r >= 0.9)} |")
    if "read_mreg_packwarm" in m and "read_native_cold" in m:
        r = tp("read_mreg_packwarm") / tp("read_native_cold")
        L.append(f"| first read, the store's chunks in the page cache (fresh mount) vs a "
                 f"native cold read | {cell('read_mreg_packwarm')} | "
                 f"{cell('read_native_cold')} | {r:.0%} | >= 90 % | {verdict(r >= 0.9)} |")
    if "read_mreg_cold" in m:
        r = tp("read_mreg_cold") / tp("read_native_cold")
        L.append(f"| first read, chunks cold (caches dropped, fresh mount) vs a native cold "
                 f"read | {cell('read_mreg_cold')} | {cell('read_native_cold')} | {r:.0%} | "
                 f">= 80 % | {verdict(r >= 0.8)} |")
    elif not fs.get("cold_supported"):
        L.append("| sequential first read (cold) | not run: cannot write "
                 "/proc/sys/vm/drop_caches | | | | |")
    if "stat_mreg_version" in m:
        r = m["stat_mreg_version"] / m["stat_native"]
        L.append(f"| warm `stat` of `models/bench/1/FILE` (median per call) | "
                 f"{m['stat_mreg_version']:.2f} µs | {m['stat_native']:.2f} µs | {r:.2f}x | "
                 f"<= 1.5x | {verdict(r <= 1.5)} |")
        r = m["stat_mreg_stage"] / m["stat_native"]
        L.append(f"| warm `stat` of `stages/Production/FILE` (short timeouts by design) | "
                 f"{m['stat_mreg_stage']:.2f} µs | {m['stat_native']:.2f} µs | {r:.2f}x | "
                 "(for information) | |")
    hw = [h for h in fs.get("mregfs_hwm", []) if h]
    if hw and not isinstance(hw[0], dict):
        hw = [{"VmHWM": h} for h in hw]
    L += ["", "Samples (seconds, or µs for stat), in run order:", ""]
    for k in sorted(S):
        L.append(f"- `{k}`: {samples(k)}")
    if hw:
        L.append("- mregfs memory after the cp part, then after the read part, per run "
                 "(VmHWM = peak RSS; RssAnon = heap and stacks now): " + "; ".join(
                     f"{mib(h.get('VmHWM', 0))} peak, {mib(h.get('RssAnon', 0))} anon"
                     for h in hw))
    if fs.get("prefault"):
        pt = fs.get("prefault_s", [])
        L.append(f"- memory prefault before each timed cp and cold read (see the notes): "
                 f"{len(pt)} times, {MED(pt) if pt else 0:.1f} s median each (not timed)")
    if "cmp_stage_rc" in fs:
        L.append(f"- `cmp` of `stages/Production/FILE` with the source: exit {fs['cmp_stage_rc']}"
                 f" ({'identical' if fs['cmp_stage_rc'] == 0 else fs['cmp_stage_out']})")
    L.append("")
    with open(os.path.join(csvdir, "fs.csv"), "w", newline="") as f:
        wr = csv.writer(f)
        wr.writerow(["measure", "rep", "value", "unit"])
        for k in sorted(S):
            for i, x in enumerate(S[k]):
                wr.writerow([k, i, f"{x:.6f}", "us" if k.startswith("stat") else "s"])


# ------------------------------------------------------------------ issue 5

def section_serve(sv, L, csvdir):
    """The rows of serve_bench.py: each mregfs figure beside the native one
    of the same run, the ratio, the issue's target, met or missed."""
    if sv is None:
        L += ["Not run (see serve.log).", ""]
        return
    if "not_run" in sv:
        L += [f"**Not run: {sv['not_run']}.**", ""]
        return
    m, S = sv["median"], sv["samples"]
    size = sv["file_bytes"]
    hs = f"{size / 2**30:g} GiB" if size >= 2**30 else f"{size / 2**20:g} MiB"

    def g(k):
        return m.get(k)

    def smp(k, f="{:.3f}"):
        return ", ".join(f.format(x) for x in S.get(k, []))

    rows = []

    def row(what, mreg, native, ratio, target, ok, note=""):
        rows.append(f"| {what} | {mreg} | {native} | {ratio} | {target} | "
                    f"{'' if ok is None else verdict(ok)} | {note} |")

    # mmap: times, ratio = native time / mreg time (throughput ratio)
    for th in (1, 8):
        for kind, tgt in (("cold", 0.70), ("warm", 0.75)):
            a, b = g(f"mmap{th}_mreg_{kind}"), g(f"mmap{th}_native_{kind}")
            if a is None:
                continue
            r = b / a
            row(f"mmap {hs}, {th} thread{'s' if th > 1 else ''}, "
                f"{'first (caches dropped)' if kind == 'cold' else 'warm'}",
                f"{a:.3f} s = {size / a / 1e9:.2f} GB/s", f"{b:.3f} s = {size / b / 1e9:.2f} GB/s",
                f"{r * 100:.0f} %", f">= {tgt * 100:.0f} %" if th == 1 else "(information)",
                (r >= tgt) if th == 1 else None,
                f"mreg {smp(f'mmap{th}_mreg_{kind}')}; native {smp(f'mmap{th}_native_{kind}')}")
    if g("folios_mreg_large_pct") is not None:
        row("pages of the file in the page cache held in large folios (after a full "
            "read; /proc/kpageflags compound pages)", f"{g('folios_mreg_large_pct'):.0f} %",
            f"{g('folios_native_large_pct'):.0f} %", "", "(what bounds warm reads)", None,
            "ext4 caches in folios up to 2 MiB, mapped by PMD; FUSE on this kernel in "
            "4 KiB pages, one PTE each")
    for kind in ("cold", "warm"):
        a1, a8 = g(f"mmap1_mreg_{kind}"), g(f"mmap8_mreg_{kind}")
        n1, n8 = g(f"mmap1_native_{kind}"), g(f"mmap8_native_{kind}")
        if a1 is None:
            continue
        row(f"mmap, 8 threads faulting one mapping / 1 thread, {kind}",
            f"{a8 / a1:.2f}x", f"{n8 / n1:.2f}x", "", "<= 2x", a8 / a1 <= 2)
    for n in (4, 16):
        for kind, what in (("one", "one file (each reader reads all of it)"),
                           ("many", f"16 different {sv.get('part_bytes', 2**26) / 2**20:g} "
                                    "MiB files")):
            a, b = g(f"read{n}_{kind}_mreg"), g(f"read{n}_{kind}_native")
            if a is None:
                continue
            row(f"{n} concurrent readers, warm, {what}", f"{a:.1f} GB/s", f"{b:.1f} GB/s",
                f"{a / b * 100:.0f} %", ">= 90 % (re-read)", a / b >= 0.9,
                f"mreg {smp(f'read{n}_{kind}_mreg', '{:.1f}')}; "
                f"native {smp(f'read{n}_{kind}_native', '{:.1f}')}")
    if g("index_lookup_cold_us") is not None:
        row("cold lookup of a version: index time (reg_resolve of model/version, "
            "first call after echo 3 > drop_caches, 10,000-version model)",
            f"{g('index_lookup_cold_us'):.1f} us", "", "", "<= 5 us",
            g("index_lookup_cold_us") <= 5,
            f"warm: {g('index_lookup_warm_us'):.2f} us per lookup")
        row("first stat of a version path after echo 3 and a fresh mount",
            f"{g('stat_first_mreg_us'):,.0f} us", f"{g('stat_first_native_us'):,.0f} us",
            f"{g('stat_first_mreg_us') / g('stat_first_native_us'):.2f}x", "(information)", None,
            f"mreg {smp('stat_first_mreg_us', '{:.0f}')}; native "
            f"{smp('stat_first_native_us', '{:.0f}')}")
        a, b = g("stat_nodentry_mreg_us"), g("stat_nodentry_native_us")
        row("stat of 1,000 different version paths after echo 2 (no dentries; "
            "daemon and index warm), per stat", f"{a:.1f} us", f"{b:.1f} us",
            f"{a / b:.2f}x", "(information)", None)
        a, b = g("ls_l_10k_mreg_first_s"), g("ls_l_10k_native_first_s")
        row("ls -l of a model of 10,000 versions, first (fresh mount, echo 3)",
            f"{a * 1e3:.0f} ms", f"{b * 1e3:.0f} ms", f"{a / b:.2f}x", "(information)", None)
        a, b = g("ls_l_10k_mreg_warm_s"), g("ls_l_10k_native_warm_s")
        row("ls -l of a model of 10,000 versions, warm", f"{a * 1e3:.0f} ms",
            f"{b * 1e3:.0f} ms", f"{a / b:.2f}x", "(information)", None)
    if g("big_mount_cold_s") is not None:
        nv = sv.get("big_versions", 0)
        row(f"{nv:,} versions: mount (mregfs start to mountpoint), caches dropped",
            f"{g('big_mount_cold_s'):.3f} s", "", "", "< 1 s", g("big_mount_cold_s") < 1,
            f"warm {g('big_mount_warm_s'):.3f} s; build {g('big_populate_s'):.1f} s "
            "(populate, durability none)")
        row(f"{nv:,} versions: ls models/ ({sv.get('big_ls_models_n', 0):,} names), first",
            f"{g('big_ls_models_first_s'):.3f} s", "", "", "< 1 s",
            g("big_ls_models_first_s") < 1, f"warm {g('big_ls_models_warm_s'):.3f} s")
        row(f"{nv:,} versions: first stat of a version path after the mount",
            f"{g('big_stat_first_us'):,.0f} us", "", "", "(information)", None,
            f"1,000 different paths after echo 2: {g('big_stat_nodentry_us'):.1f} us each")
        row(f"{nv:,} versions: mreg search (one version by name; stage = Production)",
            f"{g('big_search_one_s'):.2f} s; {g('big_search_stage_s'):.2f} s", "", "",
            "(information)", None)
        row(f"{nv:,} versions: index size on disk", mib(sv["big_index_bytes"]), "", "",
            "(information)", None, f"{sv['big_index_bytes'] / max(nv, 1):.0f} bytes a version")
    for where, tgt in (("same", 10), ("other", 1000)):
        a = g(f"promote_{where}_median_ms")
        if a is None:
            continue
        p99 = g(f"promote_{where}_p99_ms")
        row(f"promotion visible to the next open, {where} mount "
            f"({len(sv.get('promote_' + where, []))} promotions)",
            f"median {a:.2f} ms, p99 {p99:.2f} ms", "", "", f"<= {tgt} ms", p99 <= tgt)
    if g("daemon_cpu_s_per_gib_cold") is not None:
        a = g("daemon_cpu_s_per_gib_cold")
        row("daemon CPU (utime + stime) per GiB served, first read",
            f"{a:.2f} s/GiB", "", "", "<= 0.5 s/GiB", a <= 0.5,
            f"cold read {g('daemon_cold_read_gbps'):.2f} GB/s; per read "
            f"{smp('daemon_cpu_s_per_gib_cold', '{:.2f}')}")
    gib, cyc = sv.get("served_gib", 10), sv.get("cycles", 100000)
    for k, what in (("rss_after_served", f"after serving {gib} GiB ({gib * 2**30 // size} "
                     "cold reads)"),
                    ("rss_after_cycles", f"after {cyc:,} open/close cycles")):
        r = sv.get(k)
        if r:
            row(f"daemon RSS {what}", f"{mib(r['VmRSS'])} (peak {mib(r['VmHWM'])})", "", "",
                "<= 64 MiB", r["VmHWM"] <= 64 * 2**20,
                f"anon {mib(r['RssAnon'])}, file {mib(r['RssFile'])}")
    if g("open_close_us") is not None:
        row("open + close of the stage path (Python os.open/os.close)",
            f"{g('open_close_us'):.0f} us", "", "", "(information)", None)
    L += [f"`tests/bench/serve_bench.py`: a {hs} file of random bytes registered as "
          "version 1 of `models/serve` (through `stages/Production`), 16 slices of it "
          "of 64 MiB as sealed version 2 (`stages/Parts`); the native copies sit on the "
          "same filesystem. mmap and read loops are C (`tests/bench/serve_helper.c`, "
          "built with cc); stores of many versions are built with "
          "`tests/bench/populate.c` (core/registry/registry.h linked with libmregcore.a, "
          "`durability = none`). Medians of "
          f"{sv.get('reps')} runs (daemon rows: one run each); ratios are mregfs throughput / native throughput. "
          "Load average when each part began: " + ", ".join(
              f"{k} {v}" for k, v in sv.get("load", {}).items()) + ".", "",
          "| measure | mregfs | native | ratio | target | | runs / notes |",
          "|---|---:|---:|---:|---|---|---|"] + rows + [""]
    with open(os.path.join(csvdir, "serve.csv"), "w", newline="") as f:
        wr = csv.writer(f)
        wr.writerow(["measure", "rep", "value"])
        for k in sorted(S):
            for i, x in enumerate(S[k]):
                wr.writerow([k, i, f"{x:.6f}"])


def section_passthrough(sv, L):
    """Issue 12's rows: the kernel serving a hydrated copy (FUSE
    passthrough) beside the daemon (today's path) and native, one run."""
    m, S = sv.get("median", {}), sv.get("samples", {})
    if "pt_warm_read_pt" not in m:
        if "passthrough_off" in sv:
            L += ["FUSE passthrough was not on: " + " ".join(
                ln for ln in sv["passthrough_off"].splitlines()
                if ln.startswith("mreg_serve_passthrough")), ""]
        return
    size = sv["file_bytes"]
    hs = f"{size / 2**30:g} GiB" if size >= 2**30 else f"{size / 2**20:g} MiB"

    def smp(k, f="{:.2f}"):
        return ", ".join(f.format(x) for x in S.get(k, []))

    rows = []

    def tput(key, what, tgt, secs):
        """A row of throughputs (GB/s), or of times (s) when secs."""
        v = {w: m.get(f"{key}_{w}") for w in ("pt", "daemon", "native")}
        if None in v.values():
            return
        if secs:
            cell = {w: f"{size / v[w] / 1e9:.2f} GB/s" for w in v}
            r = v["native"] / v["pt"]
        else:
            cell = {w: f"{v[w]:.2f} GB/s" for w in v}
            r = v["pt"] / v["native"]
        today = v["native"] / v["daemon"] if secs else v["daemon"] / v["native"]
        rows.append(f"| {what} | {cell['pt']} | {cell['daemon']} | {cell['native']} | "
                    f"**{r * 100:.0f} %** (today {today * 100:.0f} %) | >= {tgt} % | "
                    f"{verdict(r * 100 >= tgt)} | passthrough {smp(key + '_pt')}; daemon "
                    f"{smp(key + '_daemon')}; native {smp(key + '_native')} |")

    tput("pt_warm_read", "re-read, warm (1 MiB pread, 1 thread)", 95, False)
    tput("pt_warm_mmap1", "mmap, touch every page, warm (1 thread)", 95, True)
    tput("pt_warm_mmap8", "mmap, 8 threads faulting one mapping, warm", 95, True)
    tput("pt_read16", "16 concurrent readers of the file, warm", 95, False)
    tput("pt_cold_read", "first read after echo 3 > drop_caches", 90, False)
    tput("pt_cold_mmap8", "mmap, 8 threads faulting one mapping, after echo 3", 90, True)
    if "pt_folios_pt_large_pct" in m:
        rows.append("| pages of the file held in large folios (`serve_helper folios`, "
                    "/proc/kpageflags), and mapped by a PMD (2 MiB at once; smaps "
                    "FilePmdMapped) | " + " | ".join(
                        f"{m['pt_folios_' + w + '_large_pct']:.0f} %; PMD "
                        f"{m.get('pt_folios_' + w + '_pmd_pct', 0):.0f} %"
                        for w in ("pt", "daemon", "native")) +
                    " | | (the census) | | passthrough maps the copy's ext4 page cache |")
    if "pt_hydrate_s" in m:
        h = m["pt_hydrate_s"]
        rows.append(f"| time to hydrate the {hs} file (prefetch after echo 3, until "
                    f"ready: read verified from the packs, hashed, written, fsynced) | "
                    f"{h:.2f} s = {size / h / 1e9:.2f} GB/s | | | | (information) | | "
                    f"{smp('pt_hydrate_s')} |")
        rows.append("| open + close of the file while it is hydrated (os.open/os.close, "
                    f"{MED(sv.get('pt_open_hydrating_n', [0])):.0f} of them) | | "
                    f"{m['pt_open_hydrating_us']:.0f} us (p99 "
                    f"{m['pt_open_hydrating_p99_us']:.0f} us) | | | (information) | | "
                    "served by the daemon meanwhile |")
        rows.append("| open + close, nothing hydrating (2,000) | "
                    f"{m['pt_open_idle_pt_us']:.0f} us (p99 "
                    f"{m['pt_open_idle_pt_p99_us']:.0f} us) | "
                    f"{m['pt_open_idle_daemon_us']:.0f} us (p99 "
                    f"{m['pt_open_idle_daemon_p99_us']:.0f} us) | "
                    f"{m['pt_open_idle_native_us']:.0f} us | | (information) | | |")
    reads = sv.get("pt_daemon_reads", [])
    L += ["### Issue 12: served by the kernel (FUSE passthrough)", "",
          f"The store of the rows above mounted twice side by side, `[serve] passthrough "
          f"= yes` (the {hs} file hydrated into the serving cache, then opened with "
          "passthrough) and `= no` (today's path: the daemon serves every read), beside "
          "the native file; each measure runs the three in turn. Medians of "
          f"{sv.get('reps')} runs (5 samples a run for the warm rows, 3 for 16 readers). READ requests the "
          f"daemon saw during the passthrough rows: {', '.join(map(str, reads))} "
          f"(passthrough opens: {', '.join(map(str, sv.get('pt_opens', [])))}).", "",
          "| measure | passthrough | daemon (today) | native | passthrough / native | "
          "target | | runs |", "|---|---:|---:|---:|---:|---|---|---|"] + rows + [""]


def section_first_read(fs, L):
    """Issue 5's rows measured by fs_bench.py: the first read of the fs
    part's file through mregfs against restic mount and borg mount, cold
    and with the store warm, and cp -r of a version of many small files."""
    if not fs or "samples" not in fs:
        return
    m, size, n = fs["median"], fs["file_bytes"], fs["reps"]
    runs, notes = fs.get("peer_runs", {}), fs.get("peer_notes", {})
    hs = f"{size / 2**30:g} GiB" if size >= 2**30 else f"{size / 2**20:g} MiB"

    def cell(k):
        return f"{m[k]:.2f} s = {size / m[k] / 1e6:,.0f} MB/s" if k in m else "n/a"

    if any(k in m for k in ("read_restic_cold", "read_borg_cold", "read_mreg_packwarm")):
        L += ["### First read: mregfs against `restic mount` and `borg mount`", "",
              f"The {hs} file of random bytes of the issue 3 rows, in the same run, read once "
              "with `dd bs=1M`: through mregfs (`stages/Production/FILE`), and through "
              "`restic mount` (`snapshots/latest/...`) and `borg mount -f` of a fresh "
              "repository holding it (restic: `--compression off`; borg: `-e none -C none`; "
              "backups untimed). *Cold*: `sync; echo 3 > /proc/sys/vm/drop_caches`, then a "
              "fresh mount. *Store warm*: every file of the store or repository (mregfs: "
              "packs and index) read into the page cache first, then a fresh mount, so the "
              "file's own page cache is empty and the reader decodes every byte. "
              f"Medians: mregfs over {n} runs, restic over {runs.get('restic', 0)}, borg over "
              f"{runs.get('borg', 0)} (each peer run on a fresh repository; a peer's runs stop "
              "early when they would pass 150 s). Ratios: mregfs throughput / the peer's.", "",
              "| first read of the file | mregfs | restic mount | borg mount | mregfs / restic | "
              "mregfs / borg | target | |",
              "|---|---|---|---|---:|---:|---|---|"]
        for kind, mk, what in (("cold", "read_mreg_cold", "cold (caches dropped, fresh mount)"),
                               ("repowarm", "read_mreg_packwarm",
                                "store / repository in the page cache, fresh mount")):
            rs = {p: m[f"read_{p}_{kind}"] / m[mk] for p in ("restic", "borg")
                  if mk in m and f"read_{p}_{kind}" in m}
            ok = verdict(min(rs.values()) >= 3) if len(rs) == 2 else ""
            L.append(f"| {what} | {cell(mk)} | {cell(f'read_restic_{kind}')} | "
                     f"{cell(f'read_borg_{kind}')} | "
                     + " | ".join(f"{rs[p]:.2f}x" if p in rs else "n/a" for p in ("restic", "borg"))
                     + f" | >= 3x both | {ok} |")
        L.append("")
        bk = fs.get("peer_backup_s", {})
        for p in ("restic", "borg"):
            extra = [f"backup (untimed in the table) {', '.join(f'{x:.1f}' for x in bk[p])} s"
                     if bk.get(p) else "",
                     f"`cmp` through the mount: exit {fs[f'cmp_{p}_rc']}"
                     + (" (identical)" if fs[f"cmp_{p}_rc"] == 0 else f": {fs[f'cmp_{p}_out']}")
                     if f"cmp_{p}_rc" in fs else "", notes.get(p, "")]
            L.append(f"- {p}: {runs.get(p, 0)} run(s); " + "; ".join(x for x in extra if x))
        L.append("")

    t = fs.get("tree")
    if t and "cp_r_mreg" in m:
        tb, tf = t["bytes"], t["files"]

        def rcell(k):
            if k not in m:
                return "n/a"
            return f"{m[k]:.2f} s = {tb / m[k] / 1e6:,.0f} MB/s, {tf / m[k]:,.0f} files/s"

        L += ["### `cp -r` of a version of many small files", "",
              f"A tree of {tf:,} files in {t['dirs']} directories, {mb(tb)} (1–256 KiB each, "
              "log-uniform sizes, seeded random bytes: config and tokenizer files, then "
              "`layers/NNN/` of 40 tensor files each), copied with `cp -r` into "
              "`models/small/1` (a draft version; every close() through mregfs is durable) "
              f"and into a native directory of the same filesystem; page cache warm; medians "
              f"of {n} runs, each mregfs run on a fresh store.", "",
              "| operation | mregfs | native | ratio | target | |", "|---|---|---|---:|---|---|"]
        for nk, what, tgt in (("cp_r_native_syncfs", "`cp -r` in vs `cp -r && sync -f`",
                               "(for information; one file's `cp`: >= 40 %)"),
                              ("cp_r_native", "`cp -r` in vs plain `cp -r` (native: page "
                               "cache only, not durable)", "(for information)")):
            if nk in m:
                L.append(f"| {what} | {rcell('cp_r_mreg')} | {rcell(nk)} | "
                         f"{m[nk] / m['cp_r_mreg']:.0%} | {tgt} | |")
        if "diff_tree_rc" in fs:
            L += ["", f"`diff -r` of `models/small/1` with the tree (first run): exit "
                  f"{fs['diff_tree_rc']}" + (" (identical)" if fs["diff_tree_rc"] == 0
                                             else f": {fs['diff_tree_out']}") + "."]
        L.append("")


def section_s3(s3, L):
    """Issue 13's rows measured by s3_bench.py against one radosgw: mreg
    push into an S3 store against restic backup to it; the cold first
    read through mregfs against rclone mount, s3fs and raw ranged GETs;
    the cached read against a local store; the daemon's memory."""
    L += ["## Issue 13: chunks in S3 — push, cold and cached reads, memory", ""]
    if "not_run" in s3:
        L += [f"**Not run: {s3['not_run']}.**", ""]
        return
    v = s3["versions"]
    L += [f"One radosgw (tests/services/rgw.sh: one memstore OSD, on loopback) started "
          f"for the part; {v['restic']}; {v['rclone']}; {v['s3fs']}; "
          f"{s3['curl'].split(' (')[0]}.", ""]
    for rep in s3.get("push", [])[:1]:
        mr, rr = rep["mreg"], [r for r in rep["restic"] if not r["unit"].startswith("(")]
        init = [r for r in rep["restic"] if r["unit"].startswith("(")]
        L += ["### `mreg push` into S3 against `restic backup` to S3", "",
              "The units of the data set in order, page cache warm; mreg: a fresh store "
              "with `[store] backend = s3`; restic: a fresh repository "
              "`s3:ENDPOINT/BUCKET/PREFIX` (default compression). *PUT* is what "
              "radosgw took (its perf counter put_b), *new chunks* what the version "
              "added to the store (`mreg stats` stored_bytes).", "",
              "| unit | mreg | PUT | new chunks | PUT / new | restic | PUT |",
              "|---|---:|---:|---:|---:|---:|---:|"]
        worst = 0.0
        for m, r in zip(mr, rr):
            ratio = m["put_b"] / m["new_chunk_b"] if m["new_chunk_b"] else None
            if ratio and m["new_chunk_b"] >= 1 << 20:
                worst = max(worst, ratio)
            L.append(f"| {m['unit']} | {m['s']:.2f} s | {mb(m['put_b'])} | "
                     f"{mb(m['new_chunk_b'])} | "
                     + (f"{ratio:.3f}" if ratio else "—")
                     + f" | {r['s']:.2f} s | {mb(r['put_b'])} |")
        tm, tr = sum(m["s"] for m in mr), sum(r["s"] for r in rr + init)
        pm, pr = sum(m["put_b"] for m in mr), sum(r["put_b"] for r in rr + init)
        nm = sum(m["new_chunk_b"] for m in mr)
        L += [f"| **total** | {tm:.1f} s | {mb(pm)} | {mb(nm)} | {pm / nm:.3f} | "
              f"{tr:.1f} s | {mb(pr)} |", "",
              "| | measured | target | |", "|---|---:|---|---|",
              f"| push time, restic / mreg | {tr / tm:.2f}x | >= 3x | {verdict(tr / tm >= 3)} |",
              f"| bytes PUT / new chunks, worst version (of those adding >= 1 MiB) | "
              f"{worst:.3f} | <= 1.1 | {verdict(worst <= 1.1)} |", ""]
        if init:
            L += [f"restic's total includes `restic init` ({init[0]['s']:.1f} s).", ""]
    rd = s3.get("read")
    if rd:
        size = s3["file_bytes"]
        med = {k: MED(r[k] for r in rd) for k in rd[0] if k.endswith("_s")}

        def cell(k):
            return f"{med[k]:.2f} s = {size / med[k] / 1e6:,.0f} MB/s"

        ceil = min(med["get_seq_s"], med["get_par_s"])
        hwm = MED(r["mregfs_cold_mem"].get("VmHWM", 0) for r in rd)
        anon = MED(r["mregfs_cold_mem"].get("RssAnon", 0) for r in rd)
        L += ["### Cold first read against rclone mount, s3fs and raw GETs; cached read", "",
              f"A {size / 2**30:g} GiB file of random bytes, `dd bs=1M`, medians of "
              f"{len(rd)} runs; cold = `sync; echo 3 > drop_caches`, a fresh mount. mregfs: "
              "the file sealed in an S3 store, a new empty `[cache]` directory (each run "
              "its own: not one emptied with `rm -r`, after which ext4 searches its "
              "recently deleted inodes at every create); rclone mount "
              "and s3fs (defaults): the same bytes as one object of the same bucket; the "
              "ceiling: a loop of ranged GETs of that object by one curl, 8 MiB ranges one "
              "after the other, or 1 MiB ranges 8 in flight (the faster counts). Cached: "
              "mregfs on S3 with its cache full against mregfs on a local store, each "
              "store's files in the page cache, a fresh mount. `[serve]` off: every read "
              "goes through mregfs.", "",
              "| read | time | ratio | target | |", "|---|---:|---:|---|---|",
              f"| mregfs, S3, cold | {cell('mregfs_cold_s')} | | | |"]
        for k, what in (("rclone_cold_s", "rclone mount"), ("s3fs_cold_s", "s3fs")):
            r = med[k] / med["mregfs_cold_s"]
            L.append(f"| {what}, cold | {cell(k)} | mregfs {r:.2f}x | >= 2x | "
                     f"{verdict(r >= 2)} |")
        for k, what in (("get_seq_s", "ranged GETs, 8 MiB, sequential"),
                        ("get_par_s", "ranged GETs, 1 MiB, 8 in flight")):
            r = med[k] / med["mregfs_cold_s"]
            tgt = ">= 70 % (of the faster)" if med[k] == ceil else ""
            L.append(f"| {what} | {cell(k)} | mregfs {r:.0%} | {tgt} | "
                     + (verdict(r >= 0.7) if tgt else "") + " |")
        r = med["local_warm_s"] / med["mregfs_warm_s"]
        L += [f"| mregfs, S3, cached | {cell('mregfs_warm_s')} | | | |",
              f"| mregfs, local store | {cell('local_warm_s')} | cached {r:.0%} | "
              f"as fast (100 %) | {verdict(r >= 0.9)} |", "",
              f"mregfs's memory after the cold read (medians): VmHWM {mib(hwm)}, RssAnon "
              f"{mib(anon)}; target 64 MiB plus the buffers in flight (8 fetchers of 1 MiB "
              f"runs, twice while split: 16 MiB) = 80 MiB: {verdict(hwm <= 80 * 2**20)}. "
              "rclone mount: VmHWM "
              f"{mib(MED(r['rclone_mem'].get('VmHWM', 0) for r in rd))}, s3fs: "
              f"{mib(MED(r['s3fs_mem'].get('VmHWM', 0) for r in rd))}.", ""]


# ------------------------------------------------------------------ main

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--top", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--file", required=True)
    ap.add_argument("--report", required=True)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--peer-reps", type=int, default=1)
    ap.add_argument("--small", default="0")
    a = ap.parse_args()
    o = a.out
    push, peers, fs = (load(os.path.join(o, f)) for f in ("push.json", "peers.json", "fs.json"))
    summ = load(os.path.join(a.data, "summary.json"))
    units = [(u["name"], u["logical_bytes"], u["ideal_unique_bytes"]) for u in summ["units"]]
    # Results left over from a run on another data set are not reported.
    names = [u[0] for u in units]
    if push and [u["name"] for u in push.get("units", [])] != names:
        push = None
    if peers and any([r["unit"] for r in e["rows"]] != names
                     for es in peers.values() for e in es):
        peers = None
    steps = []
    try:
        with open(os.path.join(o, "steps.txt")) as f:
            steps = [line.split("|") for line in f.read().splitlines() if line]
    except OSError:
        pass
    mc = machine(a.work, a.top, o)
    with open(os.path.join(o, "machine.json"), "w") as f:
        json.dump(mc, f, indent=1)
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    L = ["# mreg benchmarks", "",
         f"Written by `make bench` (tests/bench/run.sh) on {now}"
         + (" — **small data set (MREG_BENCH_SMALL=1): a smoke test, not the figures "
            "of record**" if a.small == "1" else "") + ". Raw results: `build/bench/` "
         "(push.json, peers.json, fs.json, the same as CSV, and each step's log).", "",
         "## Machine", "",
         f"- {mc['nproc']} CPUs: {mc['cpu']}; memory {mc['memory']}",
         f"- kernel {mc['kernel']}, {mc['os']}",
         f"- filesystem of the stores, repositories and native copies: `{mc['fs']}`",
         f"- mreg {mc['commit']}; {mc['cc']}",
         f"- {'; '.join(mc['libs'].splitlines())}",
         f"- {mc['restic']}; {mc['borg']}", ""]
    if steps:
        L.append("Run time of each step (s), with the load average (1/5/15 min) when it "
                 "ended — the machine is shared, and other work on it shows here: " + ", ".join(
                     f"{s[0]} {s[1]}" + ("" if s[2] == "ok" else f" ({s[2]})")
                     + (f" [load {s[3]}]" if len(s) > 3 else "") for s in steps) + ".")
        L.append("")

    lg = sum(u[1] for u in units)
    tree_path = ((fs or {}).get("tree") or {}).get("path", "/var/tmp/mreg-bench/tree-2000")
    idl = sum(u[2] for u in units)
    L += ["## Commands", "",
          "```sh",
          "make bench        # = MREG_BUILD=$PWD/build sh tests/bench/run.sh",
          "MREG_BENCH_SMALL=1 make bench    # 25 MB data set, seconds: a smoke test",
          "MREG_BENCH_ONLY=fs MREG_BENCH_REPORT=/tmp/fs.md make bench   # one part (of push "
          "peers fs serve s3)",
          "```", "",
          "What run.sh does, in order (paths of this run):", "",
          "```sh",
          "apt-get install -y restic borgbackup python3-llfuse casync zstd time python3-numpy "
          "python3-torch fio"
          "   # only if missing",
          f"/usr/bin/python3 ../shared/bench/gen_models.py --out {a.data} --seed 20240601"
          + (" --small" if a.small == "1" else "") + "   # once; cached",
          f"(cd {a.data} && sha256sum -c --quiet MANIFEST.sha256)",
          f"head -c {os.path.getsize(a.file) if os.path.exists(a.file) else 2**31} /dev/urandom "
          f"> {a.file}   # once; cached",
          "# issue 2, mreg: per run a fresh store; the data set read once first (warm)",
          f"find {a.data} -type f -exec cat {{}} + >/dev/null",
          "mreg --store S -q -c build/bench/mreg-bench.conf init",
          f"cd {a.data}; for V in 00_base 01_v2_head_finetune ... 06_ckpt/epoch_06.pt; do",
          "  /usr/bin/time -f '%e %M %U %S' mreg --store S -q -c build/bench/mreg-bench.conf "
          "push bench $V",
          "  mreg --store S --json stats; du -sB1 S",
          "done",
          "mreg --store S fsck; mreg --store S cat bench/N/FILE | sha256sum   # first run: "
          "every file",
          "# issue 2, peers (restic-auto/off, borg-def/64k x none/lz4, fresh repositories)",
          f"/usr/bin/python3 ../shared/bench/run_peers.py --data {a.data} --work {a.work}/peers "
          f"--only restic,borg --reps {a.peer_reps} --out build/bench/peers.json",
          "# issue 3 (tests/bench/fs_bench.py), per run; PF = touch and free 3x FILE of "
          "memory (benchlib.prefault, untimed; see the notes)",
          "sync; PF; time cp FILE NATIVE/;                          sync; rm NATIVE/FILE; sync",
          "sync; PF; time (cp FILE NATIVE/ && sync NATIVE/FILE);    rm NATIVE/FILE; sync",
          "sync; PF; time (cp FILE NATIVE/ && sync -f NATIVE/FILE); rm NATIVE/FILE; sync",
          f"mregfs --store {a.work}/fs/fs-store -c build/bench/mreg-bench.conf -f MNT &   "
          f"# MNT = {a.work}/fs/mnt; fusermount3 -u, then kill of its PID, on any exit",
          "mkdir MNT/models/bench; sync",
          "PF; time cp FILE MNT/models/bench/   # version 1",
          "PF; time cp FILE MNT/models/bench/   # version 2: the same bytes, all dedup-verified",
          "time cp MNT/models/bench/1/FILE MNT/models/bench/   # version 3, inside the mount: copy_file_range",
          "ln -s ../1 MNT/models/bench/stages/Production; fusermount3 -u MNT",
          "cp FILE NATIVE/; sync; echo 3 > /proc/sys/vm/drop_caches; mregfs ... MNT &; PF",
          "time dd if=MNT/models/bench/stages/Production/FILE of=/dev/null bs=1M   # cold",
          "time dd if=MNT/models/bench/stages/Production/FILE of=/dev/null bs=1M   # warm, x3",
          "cmp FILE MNT/models/bench/stages/Production/FILE   # first run",
          "sync; echo 3 > /proc/sys/vm/drop_caches; PF",
          "time dd if=NATIVE/FILE of=/dev/null bs=1M   # cold, then warm x3",
          "python3: os.stat(P) x 20000 after 1000 untimed, each call timed, median; "
          "P = MNT/models/bench/1/FILE, MNT/models/bench/stages/Production/FILE, NATIVE/FILE",
          "grep -E 'VmHWM|RssAnon' /proc/$(pidof mregfs)/status   # after the cp and the read parts",
          "fusermount3 -u MNT; find S -type f -exec cat {} + >/dev/null; mregfs ... MNT &; PF   "
          "# S = the store: packs and index warm, a fresh mount",
          "time dd if=MNT/models/bench/stages/Production/FILE of=/dev/null bs=1M   # first read, "
          "store warm",
          f"# cp -r (TREE = {tree_path}: made once by fs_bench.py, seeded; then per run, PF "
          "here = 3x TREE + 1 GiB)",
          "find TREE -type f -exec cat {} + >/dev/null",
          "sync; PF; time cp -r TREE NATIVE/R-a;                       sync   # R = the run",
          "sync; PF; time (cp -r TREE NATIVE/R-b && sync -f NATIVE/R-b); sync   # copies kept "
          "to the end (ext4 recently_deleted(), see the notes)",
          "mregfs ... MNT &; mkdir MNT/models/small; sync; PF",
          "time cp -r TREE MNT/models/small/1   # a draft version 1; diff -r -q TREE "
          "MNT/models/small/1 on the first run",
          "# issue 5, first read through restic mount and borg mount (fs_bench.py), per run "
          "and peer, a fresh repository R",
          "export RESTIC_PASSWORD_FILE=WORK/fs/restic-password RESTIC_CACHE_DIR=WORK/fs/"
          "restic-cache BORG_BASE_DIR=WORK/fs/borg-base",
          "restic -r R init; restic -r R backup -q --compression off FILE   # untimed",
          "borg init -e none R; borg create -C none R::a FILE              # untimed",
          "sync; echo 3 > /proc/sys/vm/drop_caches",
          "restic -r R mount PMNT &   # or: borg mount -f R::a PMNT &; wait until P exists; "
          "P = PMNT/snapshots/latest/FILE (restic), PMNT/FILE (borg)",
          "PF; time dd if=P of=/dev/null bs=1M   # cold; fusermount3 -u PMNT, kill of its PID "
          "if still there",
          "find R -type f -exec cat {} + >/dev/null; restic -r R mount PMNT &   # (or borg); "
          "fresh mount",
          "PF; time dd if=P of=/dev/null bs=1M   # repository warm; cmp FILE P on the first "
          "run; fusermount3 -u PMNT",
          "# issue 13 (tests/bench/s3_bench.py): one radosgw, sh tests/services/rgw.sh start "
          "WORK/s3/rgw; PUT bytes from its perf counters (ceph daemon ... perf dump)",
          "for V in UNITS; do time mreg -c S3CONF --store S push bench $V; mreg --json stats; "
          "done   # [store] backend = s3",
          "restic init; for V in UNITS; do time restic backup -q $V; done   # "
          "RESTIC_REPOSITORY=s3:ENDPOINT/mreg/PREFIX",
          "mreg -c S3CONF push big F1G; mreg --store L push big F1G; rclone copyto F1G "
          "rgw:mreg/bench-raw/F1G   # untimed",
          "per run: CACHE = WORK/s3/read/cache-RUN (new); drop_caches; "
          "mregfs -f -c S3CONF --store S MNT; PF; time dd "
          "if=MNT/models/big/1/F1G of=/dev/null bs=1M",
          "drop_caches; rclone mount --read-only rgw:mreg/bench-raw MNT (or: s3fs "
          "mreg:/bench-raw MNT -f -o ro,url=...,use_path_request_style); PF; time dd ...",
          "drop_caches; time curl -K GETS   # ranged GETs: 8 MiB one after the other; 1 MiB with "
          "--parallel --parallel-max 8",
          "cat CACHE/*/*; mregfs S3; time dd ...; cat L/*; mregfs L; time dd ...   # cached "
          "against local, fresh mounts",
          "# issue 5 (tests/bench/serve_bench.py; C helpers built with cc into WORK/serve/bin)",
          "cp F1G MNT/models/serve/; cp -r PARTS MNT/models/serve/2; chmod 555 MNT/models/serve/2"
          "   # F1G = /var/tmp/mreg-bench/random-1GiB.bin, PARTS its 16 slices",
          "ln -s ../1 MNT/models/serve/stages/Production; ln -s ../2 MNT/models/serve/stages/Parts",
          "sync; echo 3 > /proc/sys/vm/drop_caches; PF; serve_helper mmap 1|8 P   # first, then "
          "warm x3; P = the stage path, then NATIVE/F1G",
          "serve_helper read 4|16 1 P; serve_helper read 4|16 4 PARTS...   # warm, mregfs and "
          "native",
          "for i in 1..10: echo 1 > drop_caches; serve_helper read 1 1 P   # utime+stime of "
          "/proc/PID/stat before/after; then VmRSS",
          "python3: os.close(os.open(P)) x 100000; VmRSS",
          "python3: symlink ../V stages/promo-tmp; rename over stages/Production; open+read "
          "stages/Production/tag until it says V (same mount; a second mregfs on the store) x 200",
          "populate CONF S 1 10000 wide   # CONF: durability = none; 10,000 sealed versions",
          "echo 3 > drop_caches; populate lookup CONF S wide0 1000   # index time, first and warm",
          "echo 3 > drop_caches; mregfs S MNT; stat MNT/models/wide0/5000; ls -l MNT/models/wide0 "
          "(x4); echo 2 > drop_caches; stat 1,000 version paths; the same natively",
          "populate CONF S 10000 100 m   # 1 M versions; then per run: echo 3; time the mount; "
          "stat; ls models/ (x2); echo 2; 1,000 stats; mreg search 'name = m5000 and version = 50';"
          " mreg search 'stage = Production'",
          "```", "",
          "The mreg config of every run (`build/bench/mreg-bench.conf`) spells out the defaults: "
          "`dedup_verify = true`, `durability = full`, 16/64/256 KiB chunks, 64 MiB packs.", "",
          "## Issue 2: storage engine, `mreg push` against restic and borg", "",
          f"Data set: `gen_models.py --seed 20240601`{' --small' if a.small == '1' else ''}, "
          f"{len(units)} versions, {mb(lg)} logical, {mb(idl)} ideal unique bytes "
          f"(dedup bound {lg / idl:.2f}x).", ""]
    section_push(push, peers, idl, units, L, o)
    if peers:
        L += [f"Peers ran {a.peer_reps} time(s) per configuration"
              + (" (they take minutes per run; mreg takes seconds)" if a.peer_reps < a.reps else "")
              + ".", ""]
    L += ["## Issue 3: mregfs against a native directory", ""]
    section_fs(fs, L, o)
    serve = load(os.path.join(o, "serve.json"))
    if serve is not None or (fs and "samples" in fs):
        L += ["## Issue 5: serving — mmap, concurrent readers, metadata at scale, "
              "promotion, daemon cost", ""]
        if serve is not None:
            section_serve(serve, L, o)
            section_passthrough(serve, L)
        section_first_read(fs, L)
    s3 = load(os.path.join(o, "s3.json"))
    if s3 is not None:
        section_s3(s3, L)
    notes = os.path.join(a.top, "tests", "bench", "NOTES.md")
    if os.path.exists(notes):
        with open(notes) as f:
            L += [f.read().rstrip(), ""]
    with open(a.report, "w") as f:
        f.write("\n".join(L))


if __name__ == "__main__":
    main()
