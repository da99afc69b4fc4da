#!/bin/sh
# Names: what core refuses (status 1, "invalid name 'x'"), what it
# accepts at the limits, and missing models, versions, files and stages
# named in the message.
. "$(dirname "$0")/lib.sh"

mkfile "$T/f" 8
mreg init >/dev/null

expect 1 "mreg: push: invalid name 'bad/name'" "push 'bad/name'" push bad/name "$T/f"
expect 1 "mreg: push: invalid name '.hidden'" "push '.hidden'" push .hidden "$T/f"
expect 1 "mreg: push: invalid name 'stages'" "push 'stages'" push stages "$T/f"
expect 1 "mreg: push: invalid name '-x'" "push '-x' (after --)" push -- -x "$T/f"
expect 1 "mreg: push: invalid name 'a b'" "push 'a b'" push 'a b' "$T/f"
expect 1 "mreg: push: invalid name ''" "push ''" push '' "$T/f"
long=$(printf '%0129d' 0 | tr 0 a)
expect 1 "mreg: push: invalid name '$long'" "push a 129-byte name" push "$long" "$T/f"
name128=$(printf '%0128d' 0 | tr 0 b)
expect_out "a 128-byte name works" "1" push "$name128" "$T/f"
expect 1 "mreg: push: invalid name 'v/1'" "push --version with a slash" push m "$T/f" --version v/1
expect 1 "mreg: push: invalid name 'stages'" "push --version stages" push m "$T/f" --version stages
run push "$(printf 'x\001')" "$T/f"
check "a control byte in a name is escaped in the message" \
	test "$(cat "$T/err")" = "mreg: push: invalid name 'x\\x01'"
check "nothing was made by refused pushes" sh -c '"$1" -c "$2" ls --json | "$3" -c "import json,sys; d=json.load(sys.stdin); sys.exit(len(d) != 1)"' - "$MREG_BIN" "$T/empty.conf" "$PY"

expect_out "push a model" "1" push churn "$T/f"
stage65=$(printf '%065d' 0 | tr 0 S)
expect 1 "mreg: promote: invalid stage name '$stage65'" "stage of 65 bytes" promote churn 1 "$stage65"
expect 1 "mreg: promote: invalid stage name 'Pro/d'" "stage with a slash" promote churn 1 Pro/d
expect 1 "mreg: promote: invalid stage name '.Prod'" "stage with a dot first" promote churn 1 .Prod
stage64=$(printf '%064d' 0 | tr 0 S)
expect 0 "" "stage of 64 bytes" promote churn 1 "$stage64"

# Missing things, named.
expect 1 "mreg: ls: model 'nope' does not exist" "ls of a missing model" ls nope
expect 1 "mreg: ls: version 'churn/9' does not exist" "ls of a missing version" ls churn/9
expect 1 "mreg: show: model 'nope' does not exist" "show of a missing model" show nope
expect 1 "mreg: show: version 'churn/9' does not exist" "show of a missing version" show churn/9
expect 1 "mreg: cat: version 'churn/9' does not exist" "cat of a missing version" cat churn/9/f
expect 1 "mreg: cat: file 'churn/1/nope' does not exist" "cat of a missing file" cat churn/1/nope
expect 1 "mreg: cat: model 'nope' does not exist" "cat of a missing model" cat nope/1/f
expect 1 "mreg: promote: version 'churn/9' does not exist" "promote to a missing version" promote churn 9 Production
expect 1 "mreg: promote: model 'nope' does not exist" "promote in a missing model" promote nope 1 Production
expect 1 "mreg: seal: version 'churn/9' does not exist" "seal of a missing version" seal churn 9
expect 1 "mreg: rm: version 'churn/9' does not exist" "rm of a missing version" rm churn 9
expect 1 "mreg: rm: stage 'Nope' of model 'churn' does not exist" "rm of a missing stage" rm churn --stage Nope
expect 1 "mreg: rm: model 'nope' does not exist" "rm of a missing model" rm nope
expect 1 "mreg: history: model 'nope' does not exist" "history of a missing model" history nope
expect 1 "mreg: rollback: model 'nope' does not exist" "rollback in a missing model" rollback nope Production
expect 1 "mreg: rollback: stage 'Nope' of model 'churn' does not exist" "rollback of a missing stage" rollback churn Nope
expect 1 "mreg: meta: version 'churn/9' does not exist" "meta of a missing version" meta churn/9 set tag.a b
expect 1 "mreg: diff: version 'churn/9' does not exist" "diff with a missing version" diff churn/1 churn/9
expect 1 "mreg: push: cannot read '$T/missing': no such file or directory" "push of a missing file" push churn "$T/missing"
expect 2 "mreg: cat: expected MODEL/VERSION/PATH, not 'churn/1'" "cat without a path" cat churn/1
expect 2 "mreg: ls: expected MODEL or MODEL/VERSION, not 'churn/1/f'" "ls of a file path" ls churn/1/f
finish
