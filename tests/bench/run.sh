#!/bin/sh
# mreg's benchmarks ("make bench"; not part of "make test"), then tests/bench/BENCHMARKS.md.
#
#   push   issue 2: the 12 versions of ../shared/bench/gen_models.py pushed
#          in order with "mreg push" into a fresh store (medians of
#          MREG_BENCH_REPS runs), and restic and borg over the same data in
#          the same run (../shared/bench/run_peers.py --only restic,borg);
#   peers  the restic and borg part of the above;
#   fs     issue 3: mregfs against a native directory of the same
#          filesystem: cp of a 2 GiB file in, sequential read cold and warm
#          through stages/Production, warm stat; and for issue 5, the
#          first read of the same file through restic mount and borg mount
#          (cold and repository warm) against mregfs, and cp -r of a
#          version of 2,000 small files in against native;
#   serve  issue 5 (serve_bench.py): mmap first and warm (1 and 8 threads),
#          4 and 16 concurrent readers, cold lookups, ls -l of 10,000
#          versions, a store of 1 M versions, promotion latency through the
#          same and a second mount, daemon CPU per GiB and RSS; issue 12:
#          the same rows served by the kernel (FUSE passthrough) beside the
#          daemon and native, time to hydrate, opens during hydration.
#          MREG_BENCH_SERVE_PARTS picks serve_bench.py's parts.
#   s3     issue 13 (s3_bench.py), against one radosgw it starts
#          (tests/services/rgw.sh): mreg push of the data set into an S3
#          store against restic backup to the same radosgw (time, bytes
#          PUT); the cold first read of the serve part's 1 GiB file
#          through mregfs on S3 (empty cache) against rclone mount, s3fs
#          and a loop of ranged GETs (the ceiling); the cached read against
#          a local store; daemon RSS. MREG_BENCH_S3_PARTS picks its parts
#          (push,read); MREG_BENCH_S3_PUSH_REPS its push runs (1: radosgw
#          holds every run's objects in memory).
#   hosts  issue 14 (hosts_bench.py), LMDB against PostgreSQL (+ radosgw)
#          in one run: a promotion seen by a new open on 1 and 10 mounts
#          (p50, p99), registrations per second from 3 mounts into one
#          model, warm stat and ls -l, a cold open, mreg ls and search on
#          MREG_BENCH_HOSTS_VERSIONS versions (100000; small: 1000). Its
#          table goes to $out/hosts.md.
#
# Installs what it needs (Debian packages) when it is missing, generates the
# data set once into a cache and checks it (sha256sum -c MANIFEST.sha256).
# Raw results (JSON, CSV, logs) go to $MREG_BUILD/bench/.
#
# Environment:
#   MREG_BUILD            build directory holding mreg and mregfs (build/)
#   MREG_BENCH_SMALL=1    the 25 MB data set (--small) and a 256 MiB file:
#                         a smoke test of seconds; the report then goes to
#                         $MREG_BUILD/bench/BENCHMARKS-small.md
#   MREG_BENCH_SHARED     ../shared/bench of another checkout (a worktree's)
#   MREG_BENCH_DATA       the data set (/var/tmp/mreg-bench/modelset)
#   MREG_BENCH_FILE       the large random file (/var/tmp/mreg-bench/random-2GiB.bin)
#   MREG_BENCH_WORK       scratch stores, repositories, mount point
#                         (/var/tmp/mreg-bench/work)
#   MREG_BENCH_REPS       runs of mreg push and of the fs part (3)
#   MREG_BENCH_PEER_REPS  runs of each restic/borg configuration, and of
#                         each restic/borg mount read (3; the mount reads
#                         stop early past 150 s a peer)
#   MREG_BENCH_SERVE_FILE the file of the serve part (/var/tmp/mreg-bench/random-1GiB.bin)
#   MREG_BENCH_TREE       the cp -r source of the fs part, made once
#                         (/var/tmp/mreg-bench/tree-2000; small: tree-200)
#   MREG_BENCH_ONLY       parts to run, of "push peers fs serve s3" (all)
#   MREG_BENCH_REPORT     where to write the report (tests/bench/BENCHMARKS.md)
set -u
top=$(cd "$(dirname "$0")/../.." && pwd)
MREG_TOP=$top
B=${MREG_BUILD:-$top/build}
export MREG_BUILD=$B MREG_TOP PYTHONDONTWRITEBYTECODE=1
here=$top/tests/bench
shared=${MREG_BENCH_SHARED:-$(cd "$top/.." && pwd)/shared/bench}
py=/usr/bin/python3
cache=/var/tmp/mreg-bench
small=${MREG_BENCH_SMALL:-0}
if [ "$small" = 1 ]; then
	data=${MREG_BENCH_DATA:-$cache/modelset-small}
	file=${MREG_BENCH_FILE:-$cache/random-256MiB.bin}
	fsize=268435456
	sfile=${MREG_BENCH_SERVE_FILE:-$file}
	sflags="--models 100 --versions 100 --promotions 20 --cycles 1000 --served-gib 1"
	tfiles=200
	report=${MREG_BENCH_REPORT:-$B/bench/BENCHMARKS-small.md}
else
	data=${MREG_BENCH_DATA:-$cache/modelset}
	file=${MREG_BENCH_FILE:-$cache/random-2GiB.bin}
	fsize=2147483648
	sfile=${MREG_BENCH_SERVE_FILE:-$cache/random-1GiB.bin}
	sflags=""
	tfiles=2000
	report=${MREG_BENCH_REPORT:-$top/tests/bench/BENCHMARKS.md}
fi
work=${MREG_BENCH_WORK:-$cache/work}
tree=${MREG_BENCH_TREE:-$cache/tree-$tfiles}
reps=${MREG_BENCH_REPS:-3}
peer_reps=${MREG_BENCH_PEER_REPS:-3}
only=${MREG_BENCH_ONLY:-push peers fs serve s3 hosts}
out=$B/bench
pidfile=$work/mregfs.pid

say() { printf 'bench: %s\n' "$*"; }
die() { printf 'bench: %s\n' "$*" >&2; exit 1; }
want() { case " $only " in *" $1 "*) return 0 ;; esac; return 1; }

# Whatever happens, no mount and no daemon of ours is left behind.
cleanup() {
	for mnt in "$work"/fs/mnt* "$work"/serve/mnt* "$work"/s3/mnt*; do
		if [ -d "$mnt" ] && mountpoint -q "$mnt" 2>/dev/null; then
			fusermount3 -u "$mnt" 2>/dev/null || fusermount3 -uz "$mnt" 2>/dev/null
		fi
	done
	if [ -f "$pidfile" ]; then
		# one pid a line (serve_bench.py runs several daemons)
		# shellcheck disable=SC2046
		kill $(cat "$pidfile") 2>/dev/null
		rm -f "$pidfile"
	fi
	if [ -f "$work/s3/rgw/rgw.env" ]; then
		sh "$top/tests/services/rgw.sh" stop "$work/s3/rgw" >/dev/null 2>&1
	fi
}
trap cleanup EXIT
trap 'cleanup; exit 130' INT TERM HUP

[ -x "$B/mreg" ] || die "no $B/mreg: run 'make bench' (or make all first)"
[ -f "$shared/gen_models.py" ] || die "no $shared/gen_models.py: the shared/ dir must sit beside the checkout"
mkdir -p "$out" "$work" "$cache"
t_start=$(date +%s)
: >"$out/steps.txt"
# The tree that was built, for the report.
{ git -C "$top" rev-parse --short HEAD 2>/dev/null || echo unknown
  git -C "$top" status --porcelain -- core fs tools Makefile 2>/dev/null | wc -l
} >"$out/commit.txt"
# name|seconds|status|load average (1, 5, 15 min) when the step ended
step() { echo "$1|$2|$3|$(cut -d' ' -f1-3 /proc/loadavg)" >>"$out/steps.txt"; }

# 1. Packages, as tools/install-deps.sh does: only when something is missing.
pkgs="restic borgbackup python3-llfuse casync zstd time python3-numpy python3-torch fio"
want s3 && pkgs="$pkgs rclone s3fs curl ceph-mon ceph-osd radosgw ceph-common"
missing=""
for p in $pkgs; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' ||
		missing="$missing $p"
done
if [ -n "$missing" ]; then
	[ "$(id -u)" = 0 ] || die "missing packages:$missing (run as root, or apt-get install them)"
	say "installing$missing"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq && apt-get install -y -qq $missing >/dev/null ||
		die "apt-get install$missing failed"
fi

# 2. The data set, generated once and checked every time.
t0=$(date +%s)
ok=0
if [ -f "$data/summary.json" ] && [ -f "$data/MANIFEST.sha256" ]; then
	say "checking $data"
	(cd "$data" && sha256sum -c --quiet MANIFEST.sha256) && ok=1
fi
if [ "$ok" = 0 ]; then
	flag=""
	[ "$small" = 1 ] && flag=--small
	say "generating the data set into $data (full set: about 6 min)"
	rm -rf "$data.tmp"
	"$py" "$shared/gen_models.py" --out "$data.tmp" --seed 20240601 $flag \
		>"$out/gen_models.log" 2>&1 || die "gen_models.py failed: see $out/gen_models.log"
	(cd "$data.tmp" && sha256sum -c --quiet MANIFEST.sha256) || die "fresh data set does not verify"
	rm -rf "$data" && mv "$data.tmp" "$data"
	cat "$out/gen_models.log"
fi
step data $(($(date +%s) - t0)) ok

# The large random file of the fs part (and of one push), made once.
if { want fs || want push; } && [ "$(stat -c %s "$file" 2>/dev/null)" != "$fsize" ]; then
	say "writing $fsize random bytes to $file"
	head -c "$fsize" /dev/urandom >"$file.tmp" && mv "$file.tmp" "$file" ||
		die "cannot write $file"
fi

# Verification and durability on, whatever /etc/mreg holds.
conf=$out/mreg-bench.conf
cat >"$conf" <<'EOF'
# mreg config of the benchmark runs: the defaults, written out.
[store]
dedup_verify = true
durability = full
pack_size = 64M
[chunker]
min_size = 16K
avg_size = 64K
max_size = 256K
# today's serving path, for comparison: serve_bench.py's passthrough part
# mounts the store with passthrough on beside it
[serve]
passthrough = no
EOF

# Runs "$@" with its output shown and kept in $out/$1.log; records the step.
runstep() {
	name=$1; shift
	say "running $name"
	t0=$(date +%s)
	{ "$@" 2>&1; echo $? >"$out/$name.rc"; } | tee "$out/$name.log"
	rc=$(cat "$out/$name.rc")
	st=ok
	[ "$rc" = 0 ] || { st="failed($rc)"; failed="$failed $name"; }
	step "$name" $(($(date +%s) - t0)) "$st"
}
failed=""

# 3. Issue 2: mreg push, then restic and borg, over the same data.
if want push; then
	rm -f "$out/push.json"
	runstep push "$py" "$here/push_bench.py" --mreg "$B/mreg" --data "$data" \
		--work "$work" --reps "$reps" --conf "$conf" --verify --big "$file" \
		--out "$out/push.json"
fi
if want peers; then
	rm -f "$out/peers.json"
	runstep peers "$py" "$shared/run_peers.py" --data "$data" --work "$work/peers" \
		--only restic,borg --reps "$peer_reps" --out "$out/peers.json"
fi

# 4. Issue 3: mregfs against native; only when mregfs is built.
if want fs; then
	rm -f "$out/fs.json"
	if [ ! -x "$B/mregfs" ]; then
		say "fs part not run: mregfs not built"
		echo '{"not_run": "mregfs not built"}' >"$out/fs.json"
		step fs 0 "not run: mregfs not built"
	else
		runstep fs "$py" "$here/fs_bench.py" --mregfs "$B/mregfs" --file "$file" \
			--work "$work/fs" --reps "$reps" --conf "$conf" --pidfile "$pidfile" \
			--tree "$tree" --tree-files "$tfiles" --peer-reps "$peer_reps" \
			--out "$out/fs.json"
	fi
fi

# 5. Issue 5: serving (mmap, concurrent readers, metadata at scale,
# promotion latency, daemon CPU and RSS).
if want serve; then
	rm -f "$out/serve.json"
	if [ ! -x "$B/mregfs" ] || [ ! -f "$B/libmregcore.a" ]; then
		say "serve part not run: mregfs not built"
		echo '{"not_run": "mregfs not built"}' >"$out/serve.json"
		step serve 0 "not run: mregfs not built"
	else
		[ -f "$sfile" ] || head -c 1073741824 /dev/urandom >"$sfile" ||
			die "cannot write $sfile"
		# shellcheck disable=SC2086
		runstep serve "$py" "$here/serve_bench.py" --mregfs "$B/mregfs" \
			--mreg "$B/mreg" --lib "$B/libmregcore.a" --file "$sfile" \
			--work "$work/serve" --reps "$reps" --conf "$conf" \
			--pidfile "$pidfile" --out "$out/serve.json" $sflags \
			${MREG_BENCH_SERVE_PARTS:+--parts "$MREG_BENCH_SERVE_PARTS"}
	fi
fi

# 6. Issue 13: S3 (push against restic, reads against rclone mount, s3fs
# and raw GETs), against one radosgw started for it.
if want s3; then
	rm -f "$out/s3.json"
	why=$(sh "$top/tests/services/rgw.sh" check)
	if [ -n "$why" ] || [ ! -x "$B/mregfs" ]; then
		why=${why:-mregfs not built}
		say "s3 part not run: $why"
		printf '{"not_run": "%s"}\n' "$why" >"$out/s3.json"
		step s3 0 "not run: $why"
	else
		ssize=1073741824
		[ "$small" = 1 ] && ssize=$fsize
		[ -f "$sfile" ] || head -c "$ssize" /dev/urandom >"$sfile" ||
			die "cannot write $sfile"
		runstep s3 "$py" "$here/s3_bench.py" --mreg "$B/mreg" \
			--mregfs "$B/mregfs" --data "$data" --file "$sfile" \
			--work "$work/s3" --reps "$reps" --push-reps "${MREG_BENCH_S3_PUSH_REPS:-1}" \
			--pidfile "$pidfile" --out "$out/s3.json" \
			${MREG_BENCH_S3_PARTS:+--parts "$MREG_BENCH_S3_PARTS"}
	fi
fi

# 6b. Issue 14: many mounts of one registry, its index in PostgreSQL.
if want hosts; then
	hv=${MREG_BENCH_HOSTS_VERSIONS:-100000}
	[ "$small" = 1 ] && hv=1000
	runstep hosts "$py" "$here/hosts_bench.py" --scale-models $((hv / 100)) \
		--scale-versions 100 --json "$out/hosts.json"
	[ ! -f "$out/hosts.log" ] || sed -n '/^|/p' "$out/hosts.log" >"$out/hosts.md"
fi

# 7. The report.
step total $(($(date +%s) - t_start)) ok
"$py" "$here/report.py" --top "$top" --out "$out" --data "$data" --work "$work" \
	--file "$file" --report "$report" --reps "$reps" --peer-reps "$peer_reps" \
	--small "$small" || die "report.py failed"
say "report written to $report; raw results in $out"
[ -z "$failed" ] || die "failed:$failed (see $out/*.log)"
exit 0
