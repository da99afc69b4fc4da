#!/bin/sh
# Stages: seal, promote, history, rollback, rm of a staged version
# (EBUSY), rm --stage, removing a model, and a policy refusal (EACCES)
# from a config's [stage] section imported into the registry.
. "$(dirname "$0")/lib.sh"

printf 'one\n' >"$T/a"
printf 'two\n' >"$T/b"
printf 'three\n' >"$T/c"
mreg push churn "$T/a" >/dev/null
mreg push churn "$T/b" >/dev/null
mreg push churn "$T/c" >/dev/null

expect 0 "" "seal of a sealed version succeeds" seal churn 1
expect 0 "" "seal MODEL/VERSION form" seal churn/2
expect 0 "" "promote 1 to Staging" promote churn 1 Staging
expect 0 "" "promote 1 to Production" promote churn/1 Production
expect 0 "" "promote 2 to Production" promote churn 2 Production
expect 0 "" "promote 3 to Production" promote churn 3 Production
run ls churn --json
check "ls shows the stages" test "$(jq_py "$T/out" '[(v["version"], v["stages"]) for v in d]')" = "[('1', ['Staging']), ('2', []), ('3', ['Production'])]"
run ls
check "ls of models shows Stage=version" grep -Eq "^churn +3 +(Production=3,Staging=1|Staging=1,Production=3) " "$T/out"
run cat churn/stages/Production/c
check "cat through a stage reads its version" test "$rc" -eq 0 -a "$(cat "$T/out")" = three

expect_out "rollback prints the version rolled back to" "2" rollback churn Production
run ls churn --json
check "after rollback Production is on 2" test "$(jq_py "$T/out" '[v["version"] for v in d if "Production" in v["stages"]]')" = "['2']"

run history churn Production
check "history of a stage: promote, promote, promote, rollback" sh -c '
	awk "NR > 1 { print \$3, \$4, \$5, \$6 }" "$1" >"$1.cols"
	printf "%s\n" "Production - 1 promote" "Production 1 2 promote" "Production 2 3 promote" "Production 3 2 rollback" | cmp -s - "$1.cols"' - "$T/out"
check "history has a header and ISO-8601 UTC times" sh -c 'head -n 1 "$1" | grep -Eq "^TIME +USER +STAGE +FROM +TO +ACTION$" && sed -n 2p "$1" | grep -Eq "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z +[^ ]+ "' - "$T/out"
user=$(id -un 2>/dev/null || id -u)
check "history names the user" sh -c 'sed -n 2p "$1" | awk "{ print \$2 }" | grep -qx "$2"' - "$T/out" "$user"
run history churn --json
check "history --json parses and is a chain per stage" "$PY" -c '
import json, sys
h = json.load(open(sys.argv[1]))
last = {}
for e in h:
	assert e["from"] == last.get(e["stage"]), e
	last[e["stage"]] = e["to"]
assert [e["stage"] for e in h].count("Staging") == 1
' "$T/out"

expect 1 "mreg: rm: version 'churn/2' is in use: a stage points at it (Production)" "rm of a staged version is EBUSY" rm churn 2
expect 1 "mreg: rm: version 'churn/1' is in use: a stage points at it (Staging)" "rm of a Staging version" rm churn/1
expect 0 "" "rm of an unstaged version" rm churn 3
expect 1 "mreg: cat: version 'churn/3' does not exist" "the removed version is gone" cat churn/3/c
expect_out "a second rollback walks back to 1" "1" rollback churn Production
expect 1 "mreg: rollback: stage 'Production' of model 'churn' has no earlier version to roll back to" \
	"and a third finds nothing earlier" rollback churn Production
expect 0 "" "rm --stage removes a stage" rm churn --stage Staging
expect 0 "" "promote 2 to Production again" promote churn 2 Production
expect 0 "" "then version 1 can go" rm churn 1
expect 1 "mreg: rollback: stage 'Production' of model 'churn' has no earlier version to roll back to" \
	"rollback to a removed version" rollback churn Production
run history churn Staging
check "history records the removal" sh -c 'tail -n 1 "$1" | grep -Eq " Staging +1 +- +remove$"' - "$T/out"
expect 1 "mreg: rm: model 'churn' still has versions" "rm of a model with versions" rm churn
expect 2 "mreg: rm: --stage takes one MODEL" "rm --stage with a version" rm churn 2 --stage Production

mreg push empty "$T/a" >/dev/null
mreg rm empty 1
expect 0 "" "rm of a model without versions" rm empty
expect 1 "mreg: ls: model 'empty' does not exist" "the model is gone" ls empty

# Policy: Production requires Staging first; protected from removal.
cat >"$T/policy.conf" <<EOC
[stage Production]
require_stage = Staging
protect = true
EOC
mreg --store "$T/p" init >/dev/null
mreg --store "$T/p" push m "$T/a" >/dev/null
"$MREG_BIN" -c "$T/policy.conf" --store "$T/p" policy import
"$MREG_BIN" -c "$T/policy.conf" --store "$T/p" promote m 1 Production 2>"$T/err"
rc=$?
check "a refused promotion: status 1, refused by policy" sh -c 'test "$1" -eq 1 && test "$(wc -l <"$2")" -eq 1 && grep -q "^mreg: promote: promoting '"'m/1'"' to '"'Production'"' refused by policy: .*Staging" "$2"' - "$rc" "$T/err"
"$MREG_BIN" -c "$T/policy.conf" --store "$T/p" audit >"$T/out"
check "the refusal is audited" "$PY" -c '
import json, sys
r = [json.loads(l) for l in open(sys.argv[1])]
sys.exit(not any(x.get("result") not in (None, "ok") and x.get("stage") == "Production" for x in r))' "$T/out"
"$MREG_BIN" -c "$T/policy.conf" --store "$T/p" promote m 1 Staging &&
"$MREG_BIN" -c "$T/policy.conf" --store "$T/p" promote m 1 Production
check "after Staging, Production is allowed" test $? -eq 0
"$MREG_BIN" -c "$T/policy.conf" --store "$T/p" rm m --stage Production 2>"$T/err"
rc=$?
check "a protected stage cannot be removed" sh -c 'test "$1" -eq 1 && grep -q "^mreg: rm: removing stage '"'Production'"' of '"'m'"' refused by policy" "$2"' - "$rc" "$T/err"
finish
