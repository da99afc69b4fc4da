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
skipped="$log/skipped"
: >"$skipped"

run_one() {
	name=$1; shift
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
