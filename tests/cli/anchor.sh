#!/bin/sh
# The audit chain has no key (README "The audit trail"): whoever can write
# the store can remove the last records and rewrite the head beside the
# chain, and `audit --verify` then finds it intact. An anchor catches that:
# `mreg audit --head` prints SEQ:HASH to keep elsewhere, and `audit --verify
# --head SEQ:HASH` fails (status 3) when that record is gone or changed.
# The attack is made as an editor of the store would: the index dumped with
# mdb_dump, the last records and the head rewritten, loaded with mdb_load.
. "$(dirname "$0")/lib.sh"

printf 'x\n' >"$T/f"
mreg push churn "$T/f" >/dev/null
mreg promote churn 1 Staging
run audit --head
head=$(cat "$T/out")
check "audit --head prints SEQ:HASH" sh -c \
	'echo "$1" | grep -Eqx "[0-9]+:[0-9a-f]{64}"' - "$head"
seq=${head%%:*}
mreg audit --since "$seq" | "$PY" -c '
import hashlib, json, sys
line = sys.stdin.readline().rstrip("\n").encode()
seq, digest = sys.argv[1].split(":")
sys.exit(not (json.loads(line)["seq"] == int(seq) and
              hashlib.sha256(line).hexdigest() == digest))' "$head"
check "the hash is the SHA-256 of that record's text" test $? -eq 0
run audit --head --json
check "audit --head --json" sh -c '"$1" -c "
import json, sys
d = json.load(open(sys.argv[1]))
sys.exit(not (d[\"head\"] == sys.argv[2] and
              \"%d:%s\" % (d[\"seq\"], d[\"hash\"]) == sys.argv[2]))" "$2" "$3"' \
	- "$PY" "$T/out" "$head"
expect 0 "" "verify against the head just taken: intact" audit --verify --head "$head"
check "it says the head is there" grep -q "the head given is in it$" "$T/out"

# What someone would want to hide, after the anchor was taken.
mreg promote churn 1 Production
mreg meta churn/1 set tag.secret yes
expect 0 "" "later records: still intact against the anchor" audit --verify --head "$head"

# Cut the trail back to before the anchor and rewrite the head.
if [ -n "$PG" ]; then
	skip "a trail cut back below the anchor is found" "on PostgreSQL: \
the check rewrites the LMDB environment by hand"
	finish
fi
cut=$((seq - 1))
mdb_dump -a "$MREG_STORE/index" >"$T/dump" || exit 1
"$PY" - "$T/dump" "$cut" <<'EOPY'
import hashlib, sys
path, keep = sys.argv[1], int(sys.argv[2])
lines = open(path).read().split("\n")
out, db, data, i, last = [], None, False, 0, None
while i < len(lines):
    ln = lines[i]
    if ln.startswith("database="):
        db = ln.split("=", 1)[1]
    data = (data or ln == "HEADER=END") and ln != "DATA=END"
    if data and db == "audit" and ln.startswith(" "):
        # a key line and its value line
        if int(ln.strip(), 16) <= keep:
            last = bytes.fromhex(lines[i + 1].strip())
            out += [ln, lines[i + 1]]
        i += 2
        continue
    out.append(ln)
    i += 1
head = hashlib.sha256(last).hexdigest().encode().hex()
key = b"audit_head".hex()
for j, ln in enumerate(out):
    if ln.strip() == key:
        out[j + 1] = " " + head
open(path, "w").write("\n".join(out))
EOPY
rm -rf "$T/newindex" && mkdir "$T/newindex" &&
	mdb_load -f "$T/dump" "$T/newindex" 2>"$T/mdb.err" &&
	mv "$T/newindex/data.mdb" "$MREG_STORE/index/data.mdb" &&
	rm -f "$MREG_STORE/index/lock.mdb"
check "the last records removed and the head rewritten in the store" test $? -eq 0
run audit
check "the trail now ends before the anchored record" sh -c \
	'test "$(tail -n 1 "$1" | "$2" -c "import json,sys; print(json.loads(sys.stdin.read())[\"seq\"])")" -eq "$3"' \
	- "$T/out" "$PY" "$cut"
run audit --verify
check "without an anchor the cut trail verifies as intact (no key)" test "$rc" -eq 0
run audit --verify --head "$head"
check "with the anchor it does not: status 3" test "$rc" -eq 3
check "naming the anchored record as gone" grep -q \
	"^record $seq: record $seq, the head given, is gone: records were removed from the end of the trail$" "$T/out"
check "and as the first bad one" grep -q "record $seq is the first bad one" "$T/err"

# Records appended again up to the anchor's number do not fake it.
mreg meta churn/1 set tag.x 1
mreg meta churn/1 set tag.y 2
mreg meta churn/1 set tag.z 3
run audit --verify --head "$head"
check "records written again past the anchor: status 3" test "$rc" -eq 3
check "record $seq is not the one anchored" grep -q \
	"^record $seq: record $seq is not the head given" "$T/out"
run audit --verify --head "$head" --json
check "--json: intact false, first_bad the anchor" sh -c '"$1" -c "
import json, sys
d = json.load(open(sys.argv[1]))
sys.exit(not (d[\"intact\"] is False and d[\"first_bad\"] == int(sys.argv[2])))" "$2" "$3"' \
	- "$PY" "$T/out" "$seq"

expect 2 "mreg: audit: 'nonsense' is not a head: SEQ:HASH (a number, ':', 64 hex digits)" \
	"a malformed head" audit --verify --head nonsense
expect 2 "mreg: audit: --verify --head needs the head to check: SEQ:HASH, as 'mreg audit --head' printed it" \
	"--verify --head without one" audit --verify --head
finish
