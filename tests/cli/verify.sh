#!/bin/sh
# audit --verify: an intact trail exits 0; one byte flipped in a stored
# record (in the LMDB file or the PostgreSQL table, as an editor of the
# store would) exits 3 and
# names that record, in text and in JSON. A store directory open to others
# is closed (0700) when it is opened.
. "$(dirname "$0")/lib.sh"

# flip LINE STORE: flips the first letter of the "op" of the stored
# record whose text is LINE (an audit line), in every copy of it: in the
# LMDB file, or (the run with every index in PostgreSQL) in the row of
# the store's table (tests/s3wrap.sh names its schema after the store).
flip() {
	if [ -n "$PG" ]; then
		hex=$(printf '%s' "$1" | od -An -tx1 | tr -d ' \n')
		at=$(printf '%s' "$1" | "$PY" -c 'import sys; print(sys.stdin.buffer.read().index(b"\"op\":\"") + 6)')
		schema=s_$(printf '%s' "$2" | md5sum | cut -c1-16)
		psql -qAt "$MREG_PG_CONNINFO" -c "UPDATE $schema.mreg_audit SET v =
			set_byte(v, position(decode('$hex', 'hex') in v) - 1 + $at,
			get_byte(v, position(decode('$hex', 'hex') in v) - 1 + $at) # 32)
			WHERE position(decode('$hex', 'hex') in v) > 0 RETURNING 1" |
			grep -q 1
		return
	fi
	printf '%s' "$1" | "$PY" -c '
import sys
text = sys.stdin.buffer.read()
i = text.index(b"\"op\":\"") + 6
n = 0
with open(sys.argv[1], "r+b") as f:
    data = f.read()
    pos = data.find(text)
    while pos >= 0:
        f.seek(pos + i)
        f.write(bytes([text[i] ^ 0x20]))
        n += 1
        pos = data.find(text, pos + 1)
sys.exit(n == 0)' "$2/index/data.mdb"
}

printf 'x\n' >"$T/f"
mreg push churn "$T/f" --metric auc=0.5 >/dev/null
mreg push churn "$T/f" >/dev/null
mreg promote churn 1 Staging
mreg meta churn/1 set tag.team risk
mreg promote churn 2 Staging

run audit --verify
check "an intact trail: status 0" test "$rc" -eq 0
check "it says so, with the number of records" grep -q "^intact: [0-9][0-9]* records, each holding the SHA-256 of the one before$" "$T/out"
run audit --verify --json
check "--json: intact true, first_bad null" "$PY" -c '
import json, sys
d = json.load(open(sys.argv[1]))
sys.exit(not (d["intact"] is True and d["first_bad"] is None and d["findings"] == [] and d["records"] > 5))' "$T/out"
expect 2 "mreg: audit: --verify checks the whole trail: no --since, --model or --user" \
	"--verify takes no filter" audit --verify --model churn

# The record of the tag: flip the first letter of its "op" in every copy
# of its text in data.mdb.
seq=$(mreg audit | "$PY" -c '
import json, sys
print([r for r in map(json.loads, sys.stdin) if r.get("key") == "tag.team"][0]["seq"])')
line=$(mreg audit | "$PY" -c '
import json, sys
seq = int(sys.argv[1])
print([l.rstrip("\n") for l in sys.stdin if json.loads(l)["seq"] == seq][0])' "$seq")
flip "$line" "$MREG_STORE"
check "the record's text is found and one byte of it flipped" test $? -eq 0

run audit --verify
check "an edited record: status 3" test "$rc" -eq 3
check "stdout names it" grep -q "^record $seq: record $seq was changed" "$T/out"
check "stderr says the trail is broken at it" grep -qx "mreg: audit: the audit trail is broken: record $seq is the first bad one" "$T/err"
run audit --verify --json
check "--json: intact false, first_bad names it" "$PY" -c '
import json, sys
d = json.load(open(sys.argv[1]))
sys.exit(not (d["intact"] is False and d["first_bad"] == int(sys.argv[2])))' "$T/out" "$seq"

# The last record has no successor holding its hash: the head kept beside
# the chain catches its edit.
export MREG_STORE="$T/s2"
mreg init >/dev/null
mreg push m "$T/f" >/dev/null
last=$(mreg audit | tail -n 1)
lastseq=$(printf '%s\n' "$last" | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["seq"])')
flip "$last" "$MREG_STORE"
run audit --verify
check "an edited last record: status 3, named" sh -c 'test "$1" -eq 3 && grep -q "^record $2: the last record ($2) was changed" "$3"' - "$rc" "$lastseq" "$T/out"

mkdir -m 755 "$T/open"
"$MREG_BIN" -c "$T/empty.conf" --store "$T/open" init >/dev/null
check "a store directory open to others is made 0700" test "$(stat -c %a "$T/open")" = 700
finish
