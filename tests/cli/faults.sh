#!/bin/sh
# Fault points through the CLI (issue 6 item 3), with the test build of
# mreg ($MREG_BUILD/faults/mreg, -DMREG_FAULTS: MREG_FAULT arms a fault,
# see core/io.h): a failed pack sync, a full disk, a full metadata map and
# a failing read each give the caller the right one-line message, leave no
# partial version and a store that fsck --full finds clean, and the next
# command works. tests/crash/fault-test.c checks the same inside one
# process.
. "$(dirname "$0")/lib.sh"

MREG_BIN=$MREG_BUILD/faults/mreg
if on_s3 "fault points" "they are the pack store's I/O (core/io.c); the \
object store's faults: tests/fs/test_s3_faults.py, test-s3store"; then
	finish
fi
if [ ! -x "$MREG_BIN" ]; then
	skip "fault points" "no test build at $MREG_BIN (make builds it)"
	finish
fi

# versions: prints the versions of model $1, one line.
versions() {
	mreg ls "$1" --json | "$PY" -c \
		'import json,sys; print(" ".join(v["version"] for v in json.load(sys.stdin)))'
}

# clean DESC: fsck --full exits 0 and reports no error.
clean() {
	run fsck --full
	check "$1: fsck --full is clean" sh -c \
		'test "$1" -eq 0 && ! grep -q "^error" "$2"' - "$rc" "$T/out"
}

mkfile "$T/one" 256
mkfile "$T/two" 384
mkfile "$T/three" 128
expect_out "a first version" "1" push m "$T/one"

# A failed fsync fails the push, and is not taken for durable later.
MREG_FAULT=fsync:1:EIO run push m "$T/two"
first=$(head -n 1 "$T/err")
case $first in
"mreg: push: cannot store 'm': cannot sync pack '"*"': Input/output error")
	ok "a push whose pack sync fails: status $rc, one line naming the pack" ;;
*)	nok "a push whose pack sync fails: a clear message"
	diag "status $rc" "stderr: $(cat "$T/err")" ;;
esac
check "  ... status 1" test "$rc" -eq 1
check "the version does not exist" test "$(versions m)" = "1"
clean "after the failed sync"
expect_out "the same push again works" "2" push m "$T/two"
mreg cat m/2/two | cmp -s - "$T/two"
check "and reads back right" test $? -eq 0

# A full disk: every pack write fails from the first on.
MREG_FAULT=pack_write:1+:ENOSPC expect 1 \
	"mreg: push: no space left on the store" \
	"a push onto a full disk: no space left" push m "$T/three"
check "no version is left" test "$(versions m)" = "1 2"
clean "after the full disk"
expect_out "with space again the push works" "3" push m "$T/three"
mreg cat m/3/three | cmp -s - "$T/three"
check "and reads back right" test $? -eq 0

# A full map that cannot grow, at every write transaction of a push in
# turn (opening the store makes some of its own) until one gets through.
mkfile "$T/four" 64
i=1 bad=0 made=
while [ "$i" -le 12 ]; do
	MREG_FAULT=map_full:$i run push m "$T/four"
	if [ "$rc" -eq 0 ]; then
		made=$(cat "$T/out")
		break
	fi
	case $(cat "$T/err") in
	"mreg: push: no space left on the store" | \
	"mreg: push: cannot open store '"*"': no space left on the store") ;;
	*) bad=1; diag "map_full:$i: status $rc: $(cat "$T/err")" ;;
	esac
	[ "$(versions m)" = "1 2 3" ] || bad=1
	i=$((i + 1))
done
check "a full map at write transaction 1..$((i - 1)): no space left, no version" \
	test "$bad" -eq 0 -a "$i" -gt 1
check "past them the push works" test "$made" = "4"
clean "after the full map"

MREG_FAULT=map_full:1+ run promote m 2 Production
check "a promotion into a full map fails with no space left" sh -c \
	'test "$1" -eq 1 && grep -q "no space left on the store" "$2"' - "$rc" "$T/err"
run history m --json
check "and leaves no history" test "$(jq_py "$T/out" 'len(d)')" = 0
expect 0 "" "the promotion then works" promote m 2 Production

# A read that fails: an I/O error for cat, nothing else changes.
MREG_FAULT=read:1:EIO expect 1 \
	"mreg: cat: data damaged in 'm/2/two': run 'mreg fsck'" \
	"cat whose chunk read fails: an I/O error" cat m/2/two
mreg cat m/2/two | cmp -s - "$T/two"
check "the next cat reads right" test $? -eq 0
clean "after the failed read"

# gc whose rewritten pack does not sync: gc fails, the data stays.
mkdir -p "$T/g"
mkfile "$T/g/keep" 128
mkfile "$T/g/drop" 512
expect_out "a version to remove" "1" push g "$T/g"
expect_out "a version sharing one file" "2" push g "$T/g/keep"
expect 0 "" "remove the first" rm g 1
MREG_FAULT=fsync:1:EIO run gc
case $(head -n 1 "$T/err") in
"mreg: gc: gc stopped: cannot sync pack '"*"': Input/output error")
	ok "gc whose new pack does not sync: a clear message" ;;
*)	nok "gc whose new pack does not sync: a clear message"
	diag "status $rc" "stderr: $(cat "$T/err")" ;;
esac
check "  ... status 1" test "$rc" -eq 1
clean "after the failed gc"
mreg cat g/2/keep | cmp -s - "$T/g/keep"
check "the live data reads right" test $? -eq 0
run gc --json
check "gc then works and rewrites the pack" sh -c \
	'test "$1" -eq 0 && grep -q "\"packs_rewritten\": *1" "$2"' - "$rc" "$T/out"
mreg cat g/2/keep | cmp -s - "$T/g/keep"
check "the live data still reads right" test $? -eq 0
clean "at the end"

# A fault point the build does not know is refused, not ignored.
MREG_FAULT=nonsense:1 run ls
check "an unknown fault point stops the program" sh -c \
	'test "$1" -ne 0 && grep -q "unknown fault point" "$2"' - "$rc" "$T/err"
finish
