#!/bin/sh
# search: and/or/not, parentheses, comparisons (numeric and string), like,
# stage; malformed queries get "column N: reason" and status 2.
. "$(dirname "$0")/lib.sh"

printf 'x\n' >"$T/f"
mreg push churn "$T/f" --metric auc=0.85 --tag team=risk >/dev/null    # churn/1
mreg push churn "$T/f" --metric auc=0.93 --tag team=risk >/dev/null    # churn/2
mreg push churn "$T/f" --metric auc=0.95 --tag team=fraud >/dev/null   # churn/3
mreg push fraud "$T/f" --metric auc=0.97 --tag team=fraud --param lr=0.01 >/dev/null  # fraud/1
mreg push fraud "$T/f" --tag team=ops >/dev/null                       # fraud/2
mreg promote churn 2 Production
mreg promote fraud 1 Production
mreg promote churn 3 Staging

# q WANT QUERY: the sorted MODEL/VERSION lines found are WANT (space separated).
q() {
	want=$1
	shift
	run search "$@"
	got=$(sort "$T/out" | tr '\n' ' ' | sed 's/ $//')
	if [ "$rc" -eq 0 ] && [ "$got" = "$want" ]; then
		ok "search $*"
	else
		nok "search $*"
		diag "got: $got (status $rc)" "want: $want" "$(cat "$T/err")"
	fi
}

q "churn/2 churn/3 fraud/1" 'metric.auc >= 0.9'
q "churn/2 fraud/1" 'metric.auc >= 0.9 and stage = Production'
q "churn/2 fraud/1" 'metric.auc >= 0.9 and (tag.team = "risk" or tag.team = "fraud") and stage = "Production"'
q "churn/1 churn/2 fraud/1" 'tag.team = "risk" or metric.auc > 0.96'
q "churn/1 churn/3 fraud/2" 'not stage = Production'
q "churn/1" 'not (metric.auc > 0.9 or tag.team != risk)'
q "churn/3 fraud/1" "tag.team like 'fr*'"
q "fraud/1 fraud/2" 'name = fraud'
q "churn/3" 'name = churn and version = 3'
q "churn/1 churn/2 churn/3" 'metric.auc < 1 and name like "ch?rn"'
q "fraud/1" 'param.lr = 0.01'
q "fraud/1" 'param.lr = 1e-2'
q "churn/3" 'stage = Staging'
q "" 'metric.missing > 0'
q "churn/2 fraud/1" 'STAGE = Production AND metric.auc >= 0.9'
q "churn/2 churn/3 fraud/1" metric.auc '>=' 0.9

run search 'metric.auc >= 0.9' --json
check "search --json parses, one object per version" test "$(jq_py "$T/out" 'sorted(v["model"] + "/" + v["version"] for v in d)')" = "['churn/2', 'churn/3', 'fraud/1']"

expect 2 "mreg: search: column 1: empty query" "empty query" search ''
expect 2 "mreg: search: column 11: expected an operator after 'metric.auc'" "missing operator" search 'metric.auc'
expect 2 "mreg: search: column 14: expected a value after '>='" "missing value" search 'metric.auc >='
expect 2 "mreg: search: column 1: unknown field 'foo'" "unknown field" search 'foo = 1'
expect 2 "mreg: search: column 12: unterminated string" "unterminated string" search 'tag.team = "risk'
expect 2 "mreg: search: column 63: expected ')'" "unbalanced parenthesis" search 'metric.auc >= 0.9 and (tag.team = "risk" or tag.team = "fraud"'
expect 2 "mreg: search: column 11: unexpected 'xyz' after the end of the query" "trailing garbage" search 'tag.a = 1 xyz'
expect 2 "mreg: search: column 14: expected a field name" "dangling and" search 'tag.a = 1 and'
expect 2 "mreg: search: column 1: expected a key after 'tag.'" "empty key" search 'tag. = 1'
finish
