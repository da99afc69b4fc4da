#!/bin/sh
# Runs mreg's tests and prints "N passed, N failed[, N skipped]".
#
# Every test is a program that prints TAP-like lines: "ok N - what",
# "not ok N - what", "ok N - what # SKIP reason". Unit tests are the
# binaries build/tests/test-*; the others are tests/cli/*.sh,
# tests/fs/*.sh (or .py), tests/compat/test_*.sh (stores older binaries
# made) and tests/services/test-*.sh (the services the tests start:
# PostgreSQL, radosgw). A test that exits non-zero without a
# "not ok" line counts as one failure. What was skipped is listed at the
# end, with the reason.
# tests/layers.sh checks which layer of core/ includes which.
#
# MREG_TEST_S3=1 runs the suites named with every store on S3: one
# radosgw (tests/services/rgw.sh) is started for the whole run and
# stopped at its end, and mreg and mregfs run through tests/s3wrap.sh,
# which gives each store a config with [store] backend = s3 and a key
# prefix of its own in that radosgw's bucket (tests/fs/mountlib.py and
# tests/cli/lib.sh pick the wrappers up from MREG_TEST_S3_DIR). A check
# that cannot hold on S3 by nature skips there, saying why.
#
# MREG_TEST_PG=1 (with MREG_TEST_S3=1) puts every store's index in
# PostgreSQL too: one throw-away cluster (tests/services/pg.sh) for the
# run, each store's tables in a schema of their own (s3wrap.sh adds
# [index] backend = postgres and [postgres] conninfo and schema).
# MREG_TEST_ONLY='GLOB...' runs only the tests whose file name matches
# one of the shell patterns (test_soak.py, 'verify.sh test_s3*');
# MREG_TEST_SKIP='GLOB...' leaves out those that match.
# Usage: tests/run.sh [layers|unit|cli|fs|compat|services]...
set -u
top=$(cd "$(dirname "$0")/.." && pwd)
B=${MREG_BUILD:-$top/build}
export MREG_BUILD=$B MREG_TOP=$top
# no __pycache__ in the tree from the Python tests
export PYTHONDONTWRITEBYTECODE=1
# a sanitizer build stops at the first UBSan report
# (-fno-sanitize-recover): the log says where
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1}
log=${MREG_TEST_LOG:-$B/test-log}
mkdir -p "$log"
suites=${*:-layers unit cli fs compat services}
pass=0 fail=0 skip=0

if [ -n "${MREG_TEST_S3:-}" ]; then
	why=$(sh "$top/tests/services/rgw.sh" check)
	if [ -n "$why" ]; then
		echo "MREG_TEST_S3: radosgw cannot run here: $why" >&2
		exit 1
	fi
	MREG_TEST_S3_DIR=$(mktemp -d "${TMPDIR:-/tmp}/mreg-s3run.XXXXXX") ||
		exit 1
	export MREG_TEST_S3_DIR
	trap 'sh "$top/tests/services/rgw.sh" stop "$MREG_TEST_S3_DIR/rgw"
	      [ -z "${MREG_TEST_PG:-}" ] ||
		sh "$top/tests/services/pg.sh" stop "$MREG_TEST_S3_DIR/pg"
	      rm -rf "$MREG_TEST_S3_DIR"' EXIT
	trap 'exit 130' INT TERM
	chmod 755 "$MREG_TEST_S3_DIR"
	mkdir -p "$MREG_TEST_S3_DIR/bin" "$MREG_TEST_S3_DIR/conf"
	# the configs of mreg run as other users too (sticky: a config of
	# one cannot be replaced by another, as mreg requires)
	chmod 1777 "$MREG_TEST_S3_DIR/conf"
	# what every test file of the run writes, at most, is held in the
	# OSD's memory (memstore)
	MREG_RGW_MEMSTORE_BYTES=${MREG_RGW_MEMSTORE_BYTES:-4294967296} \
		sh "$top/tests/services/rgw.sh" start "$MREG_TEST_S3_DIR/rgw" \
		>/dev/null || exit 1
	# the S3 tests use this radosgw too; tests/s3wrap.sh reads where it
	# is from s3.env (readable by the users tests run mreg as), and the
	# keys from the environment
	export MREG_RGW_DIR=$MREG_TEST_S3_DIR/rgw
	. "$MREG_RGW_DIR/rgw.env"
	printf 'MREG_S3_ENDPOINT=%s\nMREG_S3_BUCKET=%s\nMREG_S3_REGION=%s\n' \
		"$MREG_S3_ENDPOINT" "$MREG_S3_BUCKET" "$MREG_S3_REGION" \
		>"$MREG_TEST_S3_DIR/s3.env"
	chmod 644 "$MREG_TEST_S3_DIR/s3.env"
	for p in mreg mregfs; do
		printf '#!/bin/sh\nexec sh "%s/tests/s3wrap.sh" "%s/%s" "$@"\n' \
			"$top" "$B" "$p" >"$MREG_TEST_S3_DIR/bin/$p"
		chmod 755 "$MREG_TEST_S3_DIR/bin/$p"
	done
	echo "every store on S3: radosgw in $MREG_RGW_DIR"
	if [ -n "${MREG_TEST_PG:-}" ]; then
		sh "$top/tests/services/pg.sh" start "$MREG_TEST_S3_DIR/pg" \
			>/dev/null || exit 1
		. "$MREG_TEST_S3_DIR/pg/pg.env"
		# where it is, for every user (over TCP: the socket's
		# directory is the server's user's); the password stays in
		# the environment (PGPASSWORD, exported)
		printf 'MREG_PG_CONNINFO="host=%s port=%s dbname=%s user=%s"\n' \
			"$MREG_PG_HOSTADDR" "$PGPORT" "$PGDATABASE" "$PGUSER" \
			>>"$MREG_TEST_S3_DIR/s3.env"
		echo "every index in PostgreSQL: $MREG_TEST_S3_DIR/pg"
	fi
fi
skipped="$log/skipped"
: >"$skipped"

run_one() {
	name=$1; shift
	if [ -n "${MREG_TEST_ONLY:-}" ]; then
		_want=false
		set -f
		for _g in $MREG_TEST_ONLY; do
			# shellcheck disable=SC2254
			case $(basename "$name") in $_g) _want=true ;; esac
		done
		set +f
		$_want || return 0
	fi
	if [ -n "${MREG_TEST_SKIP:-}" ]; then
		set -f
		for _g in $MREG_TEST_SKIP; do
			# shellcheck disable=SC2254
			case $(basename "$name") in $_g) set +f; return 0 ;; esac
		done
		set +f
	fi
	out="$log/$(basename "$name").out"
	printf '%-40s ' "$(basename "$name")"
	"$@" >"$out" 2>&1
	rc=$?
	p=$(grep -c '^ok ' "$out" | tr -d ' ')
	s=$(grep -c '^ok .*# SKIP' "$out" | tr -d ' ')
	f=$(grep -c '^not ok ' "$out" | tr -d ' ')
	p=$((p - s))
	if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
		f=1
		echo "not ok - $name exited with status $rc" >>"$out"
	fi
	pass=$((pass + p)); fail=$((fail + f)); skip=$((skip + s))
	# "name: what (reason)" for each check skipped
	sed -n 's/^ok [0-9]* - \(.*\) # SKIP \(.*\)$/\1 (\2)/p' "$out" |
		sed "s|^|  $(basename "$name"): |" >>"$skipped"
	if [ "$f" -gt 0 ]; then
		echo "FAIL ($p passed, $f failed)"
		grep -E '^not ok|^#' "$out" | head -20 | sed 's/^/    /'
		tail -5 "$out" | sed 's/^/    | /'
	else
		if [ "$s" -gt 0 ]; then
			echo "ok ($p passed, $s skipped)"
		else
			echo "ok ($p passed)"
		fi
	fi
}

for suite in $suites; do
	case $suite in
	layers)
		run_one layers.sh sh "$top/tests/layers.sh" ;;
	unit)
		for t in "$B"/tests/test-*; do
			[ -x "$t" ] && run_one "$t" "$t"
		done ;;
	cli|fs)
		for t in "$top"/tests/$suite/*.sh "$top"/tests/$suite/*.py; do
			[ -f "$t" ] || continue
			case $(basename "$t") in lib.sh) continue ;; esac
			case $t in
			*.sh) run_one "$t" sh "$t" ;;
			*.py) run_one "$t" /usr/bin/python3 "$t" ;;
			esac
		done ;;
	compat)
		for t in "$top"/tests/compat/test_*.sh; do
			[ -f "$t" ] && run_one "$t" sh "$t"
		done ;;
	services)
		for t in "$top"/tests/services/test-*.sh; do
			[ -f "$t" ] && run_one "$t" sh "$t"
		done ;;
	*) echo "unknown suite '$suite'" >&2; exit 2 ;;
	esac
done

if [ "$skip" -gt 0 ]; then
	echo "skipped, and why:"
	cat "$skipped"
	echo "$pass passed, $fail failed, $skip skipped"
else
	echo "$pass passed, $fail failed"
fi
[ "$fail" -eq 0 ]
