#!/bin/sh
# Stage policies and hooks stored in the registry (SPEC §6, issue 11): mreg
# on the store without -c enforces the stored require_stage,
# require_metric and protect, and runs the stored hooks; set, unset, hook
# and import are audited with old and new values; a config that disagrees
# is reported (a note, and in `policy show`) and never applied; bad keys,
# values and hook programs are refused.
. "$(dirname "$0")/lib.sh"

nc() { "$MREG_BIN" --store "$MREG_STORE" "$@"; }   # no -c at all
printf 'x\n' >"$T/f"
mreg push churn "$T/f" --metric auc=0.5 >/dev/null
mreg push churn "$T/f" --metric auc=0.95 >/dev/null

expect 0 "" "root stores a policy for Production" policy set Production \
	require_stage=Staging "require_metric=auc >= 0.9" protect=true
nc promote churn 1 Production 2>"$T/err"
rc=$?
check "without -c, a version never in Staging is refused" sh -c \
	'test "$1" -eq 1 && grep -q "refused by policy: version .1. has not been in stage .Staging." "$2"' - "$rc" "$T/err"
nc promote churn 1 Staging && nc promote churn 1 Production 2>"$T/err"
check "without -c, a failing metric is refused" grep -q \
	"refused by policy: version '1' has metric auc = 0.5, the stage requires auc >= 0.9" "$T/err"
nc promote churn 2 Staging && nc promote churn 2 Production
check "a version that passes both is admitted" test $? -eq 0
nc rm churn --stage Production 2>"$T/err"
check "without -c, the protected stage cannot be removed" grep -q \
	"refused by policy: stage 'Production' is protected" "$T/err"

# Hooks stored in the registry run from the CLI too.
cat >"$T/hook.sh" <<EOS
#!/bin/sh
env | grep '^MREG_' | sort >"$T/hook.\$MREG_EVENT"
EOS
chmod 755 "$T/hook.sh"
expect 0 "" "a stored on_promote hook" policy hook on_promote "$T/hook.sh"
expect 0 "" "a stored on_register hook" policy hook on_register "$T/hook.sh"
nc promote churn 2 Canary
check "without -c, promote runs the stored on_promote hook" grep -qx \
	"MREG_STAGE=Canary" "$T/hook.promote"
check "with the model and version" sh -c 'grep -qx MREG_MODEL=churn "$1" &&
	grep -qx MREG_VERSION=2 "$1"' - "$T/hook.promote"
nc push churn "$T/f" >/dev/null
check "push runs the stored on_register hook" grep -qx MREG_VERSION=3 \
	"$T/hook.register"
expect 0 "" "unhook" policy unhook on_promote
rm -f "$T/hook.promote"
nc promote churn 1 Canary
check "an unhooked event runs nothing" test ! -e "$T/hook.promote"

# Every change is audited with its old and new value.
mreg policy set Production "require_metric=auc > 0.92"
mreg policy unset Production protect
mreg audit >"$T/out"
check "set, unset and hook are audited with old and new values" "$PY" -c '
import json, sys
r = [json.loads(l) for l in open(sys.argv[1])]
def has(op, key, old, new):
    return any(x["op"] == op and x.get("key") == key and x.get("old") == old
               and x.get("new") == new and x.get("uid") == 0 for x in r)
sys.exit(not (has("policy.set", "require_metric", None, "auc >= 0.9") and
              has("policy.set", "require_metric", "auc >= 0.9", "auc > 0.92") and
              has("policy.unset", "protect", "true", None) and
              has("policy.hook", "on_promote", None, sys.argv[2]) and
              has("policy.hook", "on_promote", sys.argv[2], None)))' \
	"$T/out" "$T/hook.sh"
expect 0 "" "a key set to what it holds changes nothing" -q policy set \
	Production "require_metric=auc > 0.92"

# A config that disagrees is reported, not applied.
cat >"$T/lax.conf" <<EOC
[stage Production]
require_metric = auc >= 0.1
EOC
lax() { "$MREG_BIN" -c "$T/lax.conf" "$@"; }
mreg push churn "$T/f" --metric auc=0.5 >/dev/null
lax promote churn 4 Staging 2>/dev/null
lax promote churn 4 Production 2>"$T/err"
check "a laxer config is not applied: the stored gate refuses" grep -q \
	"refused by policy: version '4' has metric auc = 0.5, the stage requires auc > 0.92" "$T/err"
check "and mreg notes that the config disagrees" grep -q \
	"^mreg: promote: config '.*lax.conf' disagrees with the stage policies and hooks stored in the registry" "$T/err"
lax policy show >"$T/out"
check "policy show names each difference" grep -q \
	"require_metric is 'auc >= 0.1' in the config, 'auc > 0.92' in the registry" "$T/out"
check "and shows the stored policy as config text" sh -c 'grep -qx "\[stage Production\]" "$1" &&
	grep -qx "require_stage = Staging" "$1"' - "$T/out"
lax policy show --json >"$T/out"
check "policy show --json" "$PY" -c '
import json, sys
d = json.load(open(sys.argv[1]))
p = d["stages"]["Production"]
sys.exit(not (p == {"require_metric": "auc > 0.92", "require_stage": "Staging"}
              and d["hooks"] == {"on_register": sys.argv[2]} and
              d["admin_group"] is None and len(d["differences"]) == 3))' \
	"$T/out" "$T/hook.sh"

# Import makes the stored policy the config's, and says what changed.
lax policy import
check "policy import -c FILE" test $? -eq 0
lax policy show --json >"$T/out"
check "the stored policy is now the config's (stages and hooks)" "$PY" -c '
import json, sys
d = json.load(open(sys.argv[1]))
sys.exit(not (d["stages"] == {"Production": {"require_metric": "auc >= 0.1"}}
              and d["hooks"] == {} and d["differences"] == []))' "$T/out"
mreg audit >"$T/out"
check "each change of the import is audited with the config's path" "$PY" -c '
import json, sys
r = [json.loads(l) for l in open(sys.argv[1]) if "policy.import" in l]
keys = sorted((x.get("stage", ""), x["key"]) for x in r)
sys.exit(not (keys == [("", "on_register"), ("Production", "require_metric"),
                       ("Production", "require_stage")] and
              all(x["path"].endswith("lax.conf") for x in r)))' "$T/out"
lax promote churn 4 Production
check "and then applies" test $? -eq 0

# An import of more settings than fit the first allocation (16): each
# record still names its own stage and key.
for s in Alpha Beta Gamma Delta; do
	cat <<EOC
[stage $s]
promote_users = root
promote_groups = root
require_stage = Production
require_metric = auc >= 0.5
protect = true
EOC
done >"$T/many.conf"
"$MREG_BIN" -c "$T/many.conf" policy import
check "an import of 20 settings" test $? -eq 0
mreg audit >"$T/out"
check "each is audited under its stage and key" "$PY" -c '
import json, sys
r = [json.loads(l) for l in open(sys.argv[1])]
r = [x for x in r if x["op"] == "policy.import" and x.get("new")]
got = sorted((x.get("stage"), x["key"]) for x in r
             if x.get("path", "").endswith("many.conf"))
want = sorted((s, k) for s in ("Alpha", "Beta", "Gamma", "Delta")
              for k in ("promote_users", "promote_groups", "require_stage",
                        "require_metric", "protect"))
sys.exit(got != want)' "$T/out"
lax policy import
check "and back to the config of before (20 settings removed)" test $? -eq 0
expect 0 "" "unset of a whole stage" policy unset Production
mreg policy show >"$T/out"
check "leaves no policy" grep -q "^# (none" "$T/out"

# Bad input: status 2 with the reason.
expect 2 "mreg: policy: unknown policy key 'bogus' (promote_users, promote_groups, require_stage, require_metric, protect)" \
	"an unknown key" policy set Production bogus=1
expect 2 "mreg: policy: invalid value 'Production' for 'require_stage': a stage cannot require itself" \
	"a stage requiring itself" policy set Production require_stage=Production
expect 2 "mreg: policy: invalid value 'auc >' for 'require_metric': expected 'metric op number', e.g. 'auc >= 0.9'" \
	"a malformed metric rule" policy set Production "require_metric=auc >"
expect 2 "mreg: policy: stage 'Production': unknown group 'mreg-no-such-group' in promote_groups" \
	"an unknown group" policy set Production promote_groups=mreg-no-such-group
expect 2 "mreg: policy: hook on_promote: 'deploy.sh' is not an absolute path" \
	"a relative hook program" policy hook on_promote deploy.sh
expect 2 "mreg: policy: hook on_promote: '$T/missing': No such file or directory" \
	"a missing hook program" policy hook on_promote "$T/missing"
expect 2 "mreg: policy: unknown hook 'on_delete' (on_register, on_promote)" \
	"an unknown hook" policy hook on_delete "$T/hook.sh"
expect 2 "mreg: policy: invalid stage name 'a/b'" "a bad stage name" \
	policy set a/b protect=true
expect 2 "mreg: policy: expected KEY=VALUE, not 'protect'" "a key without a value" \
	policy set Production protect
run policy show --json
check "nothing was stored by the refused commands" "$PY" -c '
import json, sys
d = json.load(open(sys.argv[1]))
sys.exit(not (d["stages"] == {} and d["hooks"] == {}))' "$T/out"
finish
