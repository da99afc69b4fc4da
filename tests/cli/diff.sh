#!/bin/sh
# diff: files added, removed and changed (by digest) and the bytes shared.
. "$(dirname "$0")/lib.sh"

mkdir -p "$T/v1/sub" "$T/v2/sub"
mkfile "$T/v1/weights.bin" 1024
cp "$T/v1/weights.bin" "$T/v2/weights.bin"
printf 'a\n' >"$T/v1/config.json"
printf 'b\n' >"$T/v2/config.json"
printf 'old\n' >"$T/v1/sub/removed.txt"
printf 'new!\n' >"$T/v2/sub/added.txt"
mreg push m "$T/v1" >/dev/null
mreg push m "$T/v2" >/dev/null

run diff m/1 m/2
check "diff: status 0" test "$rc" -eq 0
check "an added file" grep -qx '+ sub/added.txt (5 B)' "$T/out"
check "a removed file" grep -qx -- '- sub/removed.txt (4 B)' "$T/out"
check "a changed file" grep -qx '~ config.json (2 B -> 2 B)' "$T/out"
check "an unchanged file is not listed" sh -c '! grep -q weights "$1"' - "$T/out"
check "the summary counts and the shared bytes" grep -qx '1 added, 1 removed, 1 changed, 2 unchanged; 1.0 MiB shared' "$T/out"
run diff m/1 2
check "MODEL/VERSION VERSION form" grep -qx '1 added, 1 removed, 1 changed, 2 unchanged; 1.0 MiB shared' "$T/out"
run diff m/1 m/2 --json
check "diff --json parses" is_json "$T/out"
check "diff --json content" test "$(jq_py "$T/out" '([f["path"] for f in d["added"]], [f["path"] for f in d["removed"]], [f["path"] for f in d["changed"]], d["unchanged"], d["shared_bytes"])')" = "(['sub/added.txt'], ['sub/removed.txt'], ['config.json'], 2, 1048576)"
run diff m/1 m/1
check "a version against itself: nothing changed" grep -qx '0 added, 0 removed, 0 changed, 4 unchanged; 1.0 MiB shared' "$T/out"
mreg promote m 2 Production
run diff m/1 m/stages/Production
check "a stage stands for its version" grep -qx '1 added, 1 removed, 1 changed, 2 unchanged; 1.0 MiB shared' "$T/out"
expect 1 "mreg: diff: version 'm/7' does not exist" "diff with a missing version" diff m/1 m/7
expect 2 "mreg: diff: expected MODEL/VERSION MODEL/VERSION" "diff of models" diff m m
finish
