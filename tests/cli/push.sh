#!/bin/sh
# push, cat (get), ls, show and stats: bytes come back identical, versions
# number themselves, metadata goes in with the push, the same bytes pushed
# twice are stored once, and every --json output parses.
. "$(dirname "$0")/lib.sh"

mkfile "$T/model.bin" 3000
printf 'hello\n' >"$T/small.txt"
: >"$T/empty"
mkdir -p "$T/ckpt/sub/deeper"
mkfile "$T/ckpt/weights.bin" 700
printf 'cfg\n' >"$T/ckpt/config.json"
mkfile "$T/ckpt/sub/deeper/opt.bin" 100

expect_out "push prints the version it made" "1" push churn "$T/model.bin" "$T/small.txt" \
	--metric auc=0.93 --tag team=risk --param lr=0.01 --lineage git_commit=abc123 \
	--description "first model"
expect_out "the next push makes version 2" "2" push churn "$T/model.bin"
expect_out "--version names the version" "v3" push churn "$T/empty" --version v3
expect 1 "mreg: push: version 'churn/v3' already exists" "push onto an existing version" push churn "$T/small.txt" --version v3
expect_out "integers continue after a named version" "3" push churn "$T/small.txt"
expect_out "push a directory" "1" push tree "$T/ckpt"
run push churn "$T/small.txt" --json
check "push --json parses and names the version" test "$(jq_py "$T/out" 'd["model"] + "/" + d["version"]')" = "churn/4"

# Bytes in = bytes out.
mreg cat churn/1/model.bin >"$T/out.bin"
check "cat gives the pushed bytes (cmp)" cmp -s "$T/model.bin" "$T/out.bin"
mreg cat churn/1 small.txt >"$T/out.txt"
check "cat MODEL/VERSION PATH form" cmp -s "$T/small.txt" "$T/out.txt"
mreg get churn/2/model.bin -o "$T/got.bin"
check "get -o FILE" cmp -s "$T/model.bin" "$T/got.bin"
mreg cat churn/v3/empty >"$T/out.empty"
check "an empty file" test -f "$T/out.empty" -a ! -s "$T/out.empty"
ok_tree=yes
for f in weights.bin config.json sub/deeper/opt.bin; do
	mreg cat "tree/1/ckpt/$f" >"$T/out.f" 2>/dev/null ||
	mreg cat "tree/1/$f" >"$T/out.f" || ok_tree=no
	cmp -s "$T/ckpt/$f" "$T/out.f" || ok_tree=no
done
check "every file of a pushed directory comes back" test "$ok_tree" = yes
expect 1 "mreg: get: file 'churn/1/nope' does not exist" "get -o of a missing file" get churn/1/nope -o "$T/nothing"
check "... leaves no file behind" test ! -e "$T/nothing"
check "... nor a temporary one" sh -c '! ls -A "$1" | grep -q "^\.nothing"' - "$T"

# Any name the kernel accepts inside a version: quotes, a newline, a
# byte that is not UTF-8. --json escapes it; cat finds it.
odd=$(printf 'we"ird\nna\\me\377.bin')
printf 'odd\n' >"$T/$odd"
expect_out "push a file with an odd name" "1" push odd "$T/$odd"
run ls odd/1 --json
check "ls --json of the odd name parses and round-trips" "$PY" -c '
import json, sys
d = json.load(open(sys.argv[1]))
sys.exit(d[0]["path"] != "we\"ird\nna\\me\u00ff.bin")' "$T/out"
run ls odd/1
check "ls shows the odd name on one line" test "$(wc -l <"$T/out" | tr -d ' ')" -eq 2
mreg cat "odd/1/$odd" >"$T/odd.out"
check "cat of the odd name" cmp -s "$T/$odd" "$T/odd.out"

# Listings.
run ls
check "ls lists the models" sh -c 'grep -q "^churn " "$1" && grep -q "^tree " "$1" && head -n 1 "$1" | grep -q "^MODEL  *VERSIONS  *STAGES"' - "$T/out"
run ls churn
check "ls MODEL lists the versions with state and size" sh -c 'grep -Eq "^1 +sealed +2\.9 MiB +2 " "$1" && grep -q "^v3 " "$1"' - "$T/out"
run ls churn/1
check "ls MODEL/VERSION lists mode, size, digest, path" \
	sh -c 'grep -Eq "^-r.{8} +2\.9 MiB +[0-9a-f]{32} +model\.bin$" "$1" && grep -Eq " +6 B +[0-9a-f]{32} +small\.txt$" "$1"' - "$T/out"
for a in "ls" "ls churn" "ls churn/1" "ls tree/1" "show churn/1" "show churn" "stats"; do
	# shellcheck disable=SC2086
	run $a --json
	check "$a --json parses" is_json "$T/out"
done
run ls churn/1 --json
check "ls --json has exact sizes" test "$(jq_py "$T/out" '[f["size"] for f in d if f["path"] == "model.bin"][0]')" = 3072000
run show churn/1 --json
check "show --json carries the pushed metadata" test "$(jq_py "$T/out" '(d["metrics"]["auc"], d["tags"]["team"], d["params"]["lr"], d["lineage"]["git_commit"], d["description"], d["state"], d["files"])')" = "(0.93, 'risk', '0.01', 'abc123', 'first model', 'sealed', 2)"
run show churn/1
check "show prints metadata and facts" sh -c 'grep -Eq "^  metric\.auc +0\.93$" "$1" && grep -Eq "^  tag\.team +risk$" "$1" && grep -Eq "^  creator +" "$1" && grep -Eq "^  state +sealed$" "$1"' - "$T/out"

# Metrics must be numbers; malformed K=V is a usage error.
expect 1 "mreg: push: invalid metric 'auc': 'high' is not a number" "a metric that is not a number" push churn "$T/small.txt" --metric auc=high
expect 1 "mreg: push: invalid metric 'auc': '' is not a number" "an empty metric" push churn "$T/small.txt" --metric auc=
expect 2 "mreg: push: --tag needs KEY=VALUE, not 'team'" "a tag without =" push churn "$T/small.txt" --tag team
expect_out "a negative metric in exponent form" "5" push churn "$T/small.txt" --metric loss=-1.5e-3
run ls churn --json
check "refused pushes made no version" test "$(jq_py "$T/out" 'len(d)')" = 6

# Dedup: the same bytes pushed twice are stored once.
mkfile "$T/big.bin" 8192
mreg --store "$T/d" init >/dev/null
mreg --store "$T/d" push dd "$T/big.bin" >/dev/null
mreg --store "$T/d" push dd "$T/big.bin" >/dev/null
cp "$T/big.bin" "$T/copy.bin"
mreg --store "$T/d" push other "$T/copy.bin" >/dev/null
run --store "$T/d" stats --json
check "three pushes of 8 MiB store about one copy" "$PY" -c '
import json, sys
d = json.load(open(sys.argv[1]))
t = d["total"]
sys.exit(not (t["logical_bytes"] == 3 * 8388608 and
	      8388608 <= t["stored_bytes"] <= 8388608 * 1.01 and
	      d["pack_bytes"] <= 8388608 * 1.02 and
	      abs(t["dedup_ratio"] - 3) < 0.05))' "$T/out"
run --store "$T/d" stats
check "stats table has the total and the ratio" sh -c 'grep -Eq "^\(total\) +3 +3 +24\.0 MiB +8\.0 MiB +3\.00x$" "$1" && grep -q "reclaimable" "$1"' - "$T/out"
finish
