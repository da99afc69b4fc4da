#!/bin/sh
# gc's threshold and truthful hints (issue 11): a removed version whose
# pack is less than 30 % dead is kept by gc, and fsck and stats say that
# 'mreg gc --all' (or --threshold) reclaims it instead of suggesting 'mreg
# gc' forever; --all and --threshold do reclaim it.
. "$(dirname "$0")/lib.sh"

mreg init >/dev/null
mkfile "$T/a" 8192
mkfile "$T/b" 3072
# one pack: version 1 holds b then a; version 2 shares a (b dead in the
# middle of the pack: no tail to cut)
expect_out "push of b and a" "1" push m "$T/b" "$T/a"
expect_out "push of a alone (deduplicated)" "2" push m "$T/a"
expect 0 "" "rm of version 1: b's 3 MiB die, 27 % of its pack" rm m 1
s3_aged

run fsck
check "fsck: the removed version waits for gc" test "$(cat "$T/out")" = "info: 1 removed version or file waits for gc
clean (reclaimable data: run 'mreg gc')"
run gc
check "gc: status 0" test "$rc" -eq 0
check "gc frees the version, rewrites nothing" grep -Eq '^freed [0-9.]+ [KMG]?i?B: [0-9]+ chunks?, 1 removed version; 0 packs removed, 0 cut, 0 rewritten$' "$T/out"
check "gc says what it left and which option reclaims it" grep -Eq "^left 3\.0 MiB dead in packs at most 30 % dead: 'mreg gc --all' reclaims it$" "$T/out"
[ "$rc" -eq 0 ] || diag "$(cat "$T/out" "$T/err")"

run fsck
check "fsck does not suggest plain gc: it names --all" test "$(tail -n 1 "$T/out")" = "clean (3.0 MiB dead in packs at most 30 % dead: 'mreg gc --all' reclaims it)"
run stats --json
dead=$(jq_py "$T/out" 'd["reclaimable_bytes"]')
check "stats --json: reclaimable by gc --all, not by gc" test "$(jq_py "$T/out" '(d["reclaimable_bytes"] > 3 << 20, d["gc_reclaimable_bytes"], d["gc_all_reclaimable_bytes"] == d["reclaimable_bytes"], d["removed_waiting_gc"])')" = "(True, 0, True, 0)"
run fsck --json
check "fsck --json: the same as an info finding" test "$(jq_py "$T/out" '[f["message"] for f in d["findings"] if f["severity"] == "info"]')" = "['$dead bytes more are dead in packs at most 30 % dead: gc --all reclaims them']"
run stats
check "stats says which option reclaims it" grep -qx "3.0 MiB dead in packs at most 30 % dead: 'mreg gc --all' reclaims it" "$T/out"

run gc --json
check "gc again frees nothing" test "$(jq_py "$T/out" '(d["bytes_freed"], d["bytes_kept"])')" = "(0, $dead)"
run gc --threshold 50 --json
check "gc --threshold 50 keeps it" test "$(jq_py "$T/out" '(d["bytes_freed"], d["packs_rewritten"])')" = "(0, 0)"
run gc --threshold 20 --json
check "gc --threshold 20 rewrites the pack" test "$(jq_py "$T/out" '(d["bytes_freed"], d["packs_rewritten"], d["bytes_kept"])')" = "($dead, 1, 0)"
expect_out "fsck is clean without a hint" "clean" fsck --full
mreg cat m/2/a | cmp -s - "$T/a"
check "version 2 reads right" test $? -eq 0
run stats --json
check "stats: nothing reclaimable" test "$(jq_py "$T/out" '(d["reclaimable_bytes"], d["gc_all_reclaimable_bytes"])')" = "(0, 0)"

# --all: every dead byte
mkfile "$T/c" 1024
mkfile "$T/d" 8192
expect_out "push of c and d" "3" push m "$T/c" "$T/d"
expect_out "push of d again" "4" push m "$T/d"
expect 0 "" "rm of version 3" rm m 3
s3_aged
run gc --all --json
check "gc --all reclaims a pack 11 % dead" test "$(jq_py "$T/out" '(d["versions_freed"], d["packs_rewritten"], d["bytes_kept"])')" = "(1, 1, 0)"
expect_out "fsck --full is clean" "clean" fsck --full

expect 2 "mreg: gc: --threshold needs a percentage from 0 to 100, not '101'" "gc --threshold 101: usage error" gc --threshold 101
expect 2 "mreg: gc: --threshold needs a percentage from 0 to 100, not 'x'" "gc --threshold x: usage error" gc --threshold x
expect 2 "mreg: gc: --all and --threshold exclude each other" "gc --all --threshold: usage error" gc --all --threshold 5
finish
