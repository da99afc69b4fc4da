#!/bin/sh
# audit: every record is one JSON line; --since, --model, --user filter;
# --json is one array; changes and refusals are both recorded.
. "$(dirname "$0")/lib.sh"

printf 'x\n' >"$T/f"
mreg push churn "$T/f" --tag team=risk >/dev/null
mreg push fraud "$T/f" >/dev/null
mreg promote churn 1 Production
mreg meta churn/1 set tag.team fraud
mreg meta churn/1 set param.lr 1 2>/dev/null    # refused: sealed
mreg rm fraud 1

run audit
check "audit: status 0" test "$rc" -eq 0
check "audit lines parse as JSON" sh -c '"$1" -c "import json,sys; [json.loads(l) for l in sys.stdin]" <"$2"' - "$PY" "$T/out"
total=$(wc -l <"$T/out" | tr -d ' ')
check "there are records" test "$total" -ge 6
check "the meta change is recorded with its old value" "$PY" -c '
import json, sys
r = [json.loads(l) for l in open(sys.argv[1])]
sys.exit(not any(x.get("key") == "tag.team" and x.get("old") == "risk" and x.get("new") == "fraud" for x in r))' "$T/out"
check "promote and removal are recorded" "$PY" -c '
import json, sys
r = [json.loads(l) for l in open(sys.argv[1])]
promoted = any(x.get("op") == "promote" and x.get("model") == "churn" and x.get("version") == "1" and x.get("stage") == "Production" and x.get("result") == "ok" for x in r)
removed = any(x.get("op") == "version.remove" and x.get("model") == "fraud" and x.get("version") == "1" and x.get("result") == "ok" for x in r)
sys.exit(not (promoted and removed))' "$T/out"
check "a refused change (param of a sealed version) is audited" "$PY" -c '
import json, sys
r = [json.loads(l) for l in open(sys.argv[1])]
sys.exit(not any(x.get("key") == "param.lr" and x.get("result") not in (None, "ok") for x in r))' "$T/out"
check "every record has a uid and a sequence number" "$PY" -c '
import json, sys
r = [json.loads(l) for l in open(sys.argv[1])]
sys.exit(not all("uid" in x and "seq" in x for x in r))' "$T/out"

run audit --model churn
check "--model keeps only that model's records" "$PY" -c '
import json, sys
r = [json.loads(l) for l in open(sys.argv[1])]
sys.exit(not (r and all(x.get("model") == "churn" for x in r)))' "$T/out"
run audit --user "$(id -u)"
check "--user UID keeps every record of ours" test "$(wc -l <"$T/out" | tr -d ' ')" -eq "$total"
run audit --user "$(id -un)"
check "--user NAME likewise" test "$(wc -l <"$T/out" | tr -d ' ')" -eq "$total"
run audit --user 4242
check "--user of another uid: none" test ! -s "$T/out"
seq3=$(mreg audit | sed -n 3p | "$PY" -c 'import json,sys; print(json.loads(sys.stdin.read())["seq"])')
run audit --since "$seq3"
check "--since SEQ starts there" test "$(wc -l <"$T/out" | tr -d ' ')" -eq $((total - 2))
run audit --json
check "audit --json is one array of the records" test "$(jq_py "$T/out" 'len(d)')" = "$total"
expect 2 "mreg: audit: --since needs a sequence number, not 'x'" "--since of a non-number" audit --since x
finish
