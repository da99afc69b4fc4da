#!/bin/sh
# kill -9 of `mreg push` of a 256 MiB file at several points: the store
# opens, fsck is clean (reclaimable data is allowed), no partial version
# exists (every version listed reads back whole), and gc reclaims the
# orphaned chunks.
. "$(dirname "$0")/lib.sh"

head -c 268435456 /dev/urandom >"$T/big.bin"
printf 'small\n' >"$T/small"
expect_out "a first version" "1" push big "$T/small"

killed=0
for delay in 0.2 0.5 1; do
	"$MREG_BIN" -c "$T/empty.conf" -q push big "$T/big.bin" >"$T/push.out" 2>&1 &
	pid=$!
	sleep "$delay"
	kill -9 "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
	st=$?
	case $st in
	137) what="killed"; killed=$((killed + 1)) ;;
	0) what="finished first" ;;
	*) what="status $st" ;;
	esac
	run fsck
	check "kill -9 after ${delay}s ($what): fsck is clean" sh -c 'test "$1" -eq 0 && ! grep -q "^error" "$2"' - "$rc" "$T/out"
	run ls big --json
	check "after ${delay}s: the store opens and lists" test "$rc" -eq 0
	# Every version listed is sealed and complete.
	bad=0
	for v in $(jq_py "$T/out" '" ".join(v["version"] for v in d)'); do
		state=$(mreg show "big/$v" --json | "$PY" -c 'import json,sys; d=json.load(sys.stdin); print(d["state"], d["files"])')
		case $v in
		1) mreg cat big/1/small | cmp -s - "$T/small" || bad=1 ;;
		*) [ "$state" = "sealed 1" ] || bad=1
		   mreg cat "big/$v/big.bin" | cmp -s - "$T/big.bin" || bad=1 ;;
		esac
	done
	check "after ${delay}s: no partial version (every one reads whole)" test "$bad" -eq 0
done

run stats --json
dead=$(jq_py "$T/out" 'd["reclaimable_bytes"]')
live=$(jq_py "$T/out" 'd["live_bytes"]')
if [ "$killed" -gt 0 ] && [ -n "$S3" ]; then
	skip "the killed pushes left reclaimable data" "on S3: a push \
killed leaves a multipart upload unfinished (no object, aborted by gc's \
housekeeping), not dead bytes"
elif [ "$killed" -gt 0 ]; then
	check "the killed pushes left reclaimable data" test "$dead" -gt 0
else
	skip "the killed pushes left reclaimable data" "every push finished first"
fi
run gc --json
check "gc: status 0" test "$rc" -eq 0
check "gc reclaimed the orphans" test "$(jq_py "$T/out" 'd["bytes_freed"] >= '"$dead")" = True
run stats --json
check "nothing reclaimable is left" test "$(jq_py "$T/out" 'd["reclaimable_bytes"]')" -eq 0
check "the live data is untouched" test "$(jq_py "$T/out" 'd["live_bytes"]')" -eq "$live"
run fsck --full
check "fsck --full after gc is clean, no info left" sh -c 'test "$1" -eq 0 && test "$(cat "$2")" = clean' - "$rc" "$T/out"
mreg cat big/1/small | cmp -s - "$T/small"
check "version 1 still reads right" test $? -eq 0
expect_out "a push after all that works" "$(($(mreg ls big --json | "$PY" -c 'import json,sys; print(max(int(v["version"]) for v in json.load(sys.stdin)))') + 1))" push big "$T/small"
finish
