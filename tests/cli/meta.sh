#!/bin/sh
# meta set/unset/list on models and versions, SPEC section 4's rules
# (metric numeric, params and lineage fixed once sealed, facts read-only,
# known key kinds), and JSON escaping of arbitrary bytes in values.
. "$(dirname "$0")/lib.sh"

printf 'x\n' >"$T/f"
mreg push churn "$T/f" --param lr=0.1 >/dev/null

expect 0 "" "set a tag on a version" meta churn/1 set tag.team risk
expect 0 "" "set a metric" meta churn/1 set metric.auc 0.91
expect 0 "" "set a negative metric" meta churn/1 set metric.delta -0.5
expect 0 "" "set a description on a model" meta churn set description "churn predictor"
expect 0 "" "set a tag on a model" meta churn set tag.owner ml-team
run meta churn/1 list
awk '{ print $1 }' "$T/out" >"$T/keys"
check "list shows the keys set, in key order" sh -c 'printf "%s\n" metric.auc metric.delta param.lr tag.team | cmp -s - "$1"' - "$T/keys"
run meta churn/1 list --json
check "list --json: metrics as numbers" test "$(jq_py "$T/out" '(d["metric.auc"], d["metric.delta"], d["tag.team"])')" = "(0.91, -0.5, 'risk')"
run meta churn list --json
check "a model's metadata" test "$(jq_py "$T/out" '(d["description"], d["tag.owner"])')" = "('churn predictor', 'ml-team')"
expect 0 "" "unset a tag" meta churn/1 unset tag.team
run meta churn/1 list --json
check "the tag is gone" test "$(jq_py "$T/out" '"tag.team" in d')" = False
expect 0 "" "a metric can change after sealing" meta churn/1 set metric.auc 0.95

expect 1 "mreg: meta: invalid metric 'auc': 'good' is not a number" "a metric must be a number" meta churn/1 set metric.auc good
expect 1 "mreg: meta: 'param.lr' of 'churn/1' cannot change: the version is sealed" "params are fixed once sealed" meta churn/1 set param.lr 0.2
expect 1 "mreg: meta: 'lineage.dataset' of 'churn/1' cannot change: the version is sealed" "lineage is fixed once sealed" meta churn/1 set lineage.dataset s3://x
expect 1 "mreg: meta: 'created' is read-only" "facts are read-only" meta churn/1 set created 0
expect 1 "mreg: meta: invalid key 'color' (description, tag.K, metric.K, param.K or lineage.K)" "an unknown key" meta churn/1 set color red
expect 1 "mreg: meta: 'churn/1' has no 'tag.nope'" "unset of a missing key" meta churn/1 unset tag.nope
expect 2 "mreg: meta: unknown operation 'put' (set, unset or list)" "an unknown operation" meta churn/1 put a b
expect 2 "mreg: meta: usage: mreg meta MODEL[/VERSION] set KEY VALUE" "set without a value" meta churn/1 set tag.a
run meta churn/1 list --json
check "refused changes changed nothing" test "$(jq_py "$T/out" '(d["metric.auc"], d["param.lr"], "lineage.dataset" in d)')" = "(0.95, '0.1', False)"
expect 1 "mreg: meta: invalid metric 'auc': '0x10' is not a number" "a hex metric is refused" meta churn/1 set metric.auc 0x10

# Arbitrary bytes: quotes, backslashes, control bytes, invalid UTF-8.
weird=$(printf 'a"b\\c\001d\teé\377z')
expect 0 "" "set a description with odd bytes" meta churn/1 set description "$weird"
run show churn/1 --json
check "show --json escapes them and parses" "$PY" -c '
import json, sys
d = json.load(open(sys.argv[1], "rb"))
want = "a\"b\\c\x01d\te\u00e9\u00ffz"
sys.exit(d["description"] != want)' "$T/out"
check "show --json is pure ASCII-safe UTF-8" "$PY" -c 'import sys; open(sys.argv[1], "rb").read().decode("utf-8")' "$T/out"
run audit
check "the audit of that change still parses" is_json_lines "$T/out"
run show churn/1
check "show (human) escapes control bytes" grep -q 'a"b\\c\\x01d\\x09e' "$T/out"
finish
