#!/bin/sh
# Validation gates on the store (no mount), imported from a config into
# the registry (mreg policy import): require_metric refuses a
# version whose metric is missing or fails, and admits it once the metric
# passes (also for a long metric key: the rule must never fail open);
# rollback refused by policy says so; every refusal is audited with uid,
# stage, version and reason.
. "$(dirname "$0")/lib.sh"

key=$("$PY" -c 'print("k" * 200)')
cat >"$T/gates.conf" <<EOC
[stage Production]
require_metric = auc >= 0.9

[stage Long]
require_metric = $key > 1

[stage Gate]
require_metric = auc >= 0.9
EOC
g() { "$MREG_BIN" -c "$T/gates.conf" "$@"; }
printf 'x\n' >"$T/f"
g init >/dev/null 2>&1
g policy import
check "the config's policies are stored in the registry" test $? -eq 0
g push churn "$T/f" >/dev/null
g push churn "$T/f" --metric auc=0.5 >/dev/null

g promote churn 1 Production 2>"$T/err"
check "a missing metric: refused, status 1" test $? -eq 1
check "saying so" grep -qx "mreg: promote: promoting 'churn/1' to 'Production' refused by policy: version '1' has no metric 'auc' (the stage requires auc >= 0.9)" "$T/err"
g promote churn 2 Production 2>"$T/err"
check "a failing metric: refused, with its value" grep -qx "mreg: promote: promoting 'churn/2' to 'Production' refused by policy: version '2' has metric auc = 0.5, the stage requires auc >= 0.9" "$T/err"
g meta churn/2 set metric.auc 0.91
g promote churn 2 Production
check "admitted once the metric passes" test $? -eq 0

g promote churn 1 Long 2>"$T/err"
check "a long metric key: a missing metric is refused (never fails open)" grep -q "refused by policy: version '1' has no metric '$key'" "$T/err"
g meta churn/1 set "metric.$key" 2
g promote churn 1 Long
check "and admitted once it passes" test $? -eq 0

# Gate: 2 (auc 0.91), then 1; 2's auc drops: rolling back to it is refused.
g meta churn/1 set metric.auc 0.95
g promote churn 2 Gate && g promote churn 1 Gate
g meta churn/2 set metric.auc 0.1
g rollback churn Gate 2>"$T/err"
check "a rollback the gate refuses: status 1" test $? -eq 1
check "saying so" grep -qx "mreg: rollback: rolling back stage 'Gate' of 'churn' refused: version '2' has metric auc = 0.1, the stage requires auc >= 0.9" "$T/err"

g audit >"$T/out"
check "each refusal is audited with uid, stage, version and reason" "$PY" -c '
import json, sys
r = [json.loads(l) for l in open(sys.argv[1]) if "refused" in l]
sys.exit(not (len(r) >= 3 and all(x["result"] == "refused" and "uid" in x and x.get("stage") and x.get("version") and x.get("reason") for x in r)))' "$T/out"
finish
