#!/bin/sh
# fsck and gc on a sound store: a fresh store is clean, removed versions
# become reclaimable and gc gives the space back, data still shared by a
# live version stays.
. "$(dirname "$0")/lib.sh"

mreg init >/dev/null
expect_out "fsck of a fresh store is clean" "clean" fsck
expect_out "fsck --full of a fresh store is clean" "clean" fsck --full
run fsck --json
check "fsck --json parses and says clean" test "$(jq_py "$T/out" '(d["clean"], d["errors"])')" = "(True, 0)"

mkfile "$T/a" 4096
mkfile "$T/b" 4096
mreg push m "$T/a" >/dev/null
mreg push m "$T/b" >/dev/null
mreg push m "$T/a" "$T/b" >/dev/null
expect_out "fsck --full with versions is clean" "clean" fsck --full
run stats --json
before=$(jq_py "$T/out" 'd["pack_bytes"]')

expect 0 "" "rm of version 1 (its data is shared by 3)" rm m 1
expect 0 "" "rm of version 3" rm m 3
run gc
check "gc after removing shared versions: status 0" test "$rc" -eq 0
check "gc says what it freed" grep -Eq '^freed [0-9.]+ [KMG]?i?B: [0-9]+ chunks?, [0-9]+ removed versions?; [0-9]+ packs? removed, [0-9]+ cut, [0-9]+ rewritten$' "$T/out"
mreg cat m/2/b | cmp -s - "$T/b"
check "the live version reads right after gc" test $? -eq 0
expect_out "fsck --full after gc is clean" "clean" fsck --full
expect 0 "" "rm of version 2" rm m 2
run gc --json
on_s3 "gc --json parses and freed bytes" "gc leaves objects younger than [s3] gc_grace (60 s at least) alone" ||
check "gc --json parses and freed bytes" test "$(jq_py "$T/out" 'd["bytes_freed"] > 0 and d["versions_freed"] >= 1')" = True
run stats --json
on_s3 "after gc of every version the packs hold (almost) nothing" \
	"gc leaves objects younger than [s3] gc_grace (60 s at least) alone" ||
check "after gc of every version the packs hold (almost) nothing" test "$(jq_py "$T/out" 'd["pack_bytes"] < 65536 and d["reclaimable_bytes"] == 0')" = True
check "... and they held the data before" test "$before" -ge 8388608
expect_out "fsck after all that is clean" "clean" fsck --full
finish
