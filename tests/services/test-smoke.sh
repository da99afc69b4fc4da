#!/bin/sh
# test-smoke.sh — the test services start, answer, come back after a halt,
# and leave nothing behind: PostgreSQL (pg.sh) answers a query over its
# socket and over TCP with the mreg role's password (and its passfile);
# radosgw (rgw.sh) takes a signed PUT and gives it back to a GET. Each is
# then stopped, and no process of it, no file of it and no mount under
# its directory is left. A service whose packages are missing is skipped,
# with the reason.
set -u
here=$(cd "$(dirname "$0")" && pwd)
T=$(mktemp -d "${TMPDIR:-/tmp}/mreg-svc.XXXXXX") || exit 1
cleanup() {
	sh "$here/pg.sh" stop "$T/pg" 2>/dev/null
	sh "$here/rgw.sh" stop "$T/rgw" 2>/dev/null
	rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

n=0
ok() { n=$((n + 1)); echo "ok $n - $*"; }
nok() { n=$((n + 1)); echo "not ok $n - $*"; }
skip() { n=$((n + 1)); echo "ok $n - $1 # SKIP $2"; }
check() {
	_d=$1
	shift
	if "$@"; then ok "$_d"; else nok "$_d"; fi
}

quiet() { "$@" >/dev/null; }

# alive PID...: true when one of them is a live process (not a zombie).
alive() {
	for _p in "$@"; do
		[ -r "/proc/$_p/stat" ] || continue
		_s=$(sed 's/^.*) \(.\).*/\1/' "/proc/$_p/stat" 2>/dev/null)
		[ -n "$_s" ] && [ "$_s" != Z ] && return 0
	done
	return 1
}

# gone DIR PID...: no process left, no mount under DIR, DIR removed.
gone() {
	_dir=$1
	shift
	! alive "$@" && ! grep -q " $_dir" /proc/self/mountinfo &&
		! [ -e "$_dir" ]
}

# py_same KIND DIR KEY VALUE: services.py sees KIND running in DIR, and
# its env has KEY=VALUE.
py_same() {
	PYTHONPATH=$here PYTHONDONTWRITEBYTECODE=1 /usr/bin/python3 -c '
import sys, services
kind, d, key, want = sys.argv[1:]
assert services.unavailable(kind) is None
env = services.start(kind, d)
sys.exit(env.get(key) != want or env.dir != d)' "$@"
}

# ---- PostgreSQL ----
pg_sql() {
	(. "$T/pg/pg.env" && psql -X -q -tA -v ON_ERROR_STOP=1 -c "$1")
}

if why=$(sh "$here/pg.sh" check); then
	check "pg: start" quiet sh "$here/pg.sh" start "$T/pg"
	pm=$(sed -n 's/^MREG_PG_PID=//p' "$T/pg/pg.env")
	check "pg: a query over the socket, as mreg with its password" \
		test "$(pg_sql 'SELECT 40 + 2')" = 42
	check "pg: over TCP on 127.0.0.1" test "$(. "$T/pg/pg.env" &&
		PGHOST=$MREG_PG_HOSTADDR psql -X -tAc 'SELECT 1')" = 1
	check "pg: with the passfile instead of PGPASSWORD" \
		test "$(. "$T/pg/pg.env" && unset PGPASSWORD &&
		PGPASSFILE=$MREG_PG_PASSFILE PGHOST=$MREG_PG_HOSTADDR \
		psql -X -tAc 'SELECT 2')" = 2
	check "pg: a wrong password is refused" sh -c ". '$T/pg/pg.env' &&
		! PGPASSWORD=wrong psql -X -tAc 'SELECT 1' 2>/dev/null"
	check "pg: start again: the same server" sh -c \
		"sh '$here/pg.sh' start '$T/pg' >/dev/null &&
		grep -q '^MREG_PG_PID=$pm\$' '$T/pg/pg.env'"
	check "pg: services.py finds the same server" py_same pg "$T/pg" \
		MREG_PG_PID "$pm"
	pg_sql 'CREATE TABLE t (v int); INSERT INTO t VALUES (7)'
	pids="$pm $(ps -o pid= --ppid "$pm" 2>/dev/null)"
	sh "$here/pg.sh" halt "$T/pg"
	halted() { ! sh "$here/pg.sh" status "$T/pg" && ! alive $pids; }
	check "pg: halt stops the server and its children" halted
	check "pg: start after halt: the same data" sh -c \
		"sh '$here/pg.sh' start '$T/pg' >/dev/null"
	check "pg: ... the row is there" test "$(pg_sql 'SELECT v FROM t')" = 7
	pm=$(sed -n 's/^MREG_PG_PID=//p' "$T/pg/pg.env")
	pids="$pm $(ps -o pid= --ppid "$pm" 2>/dev/null)"
	sh "$here/pg.sh" stop "$T/pg"
	check "pg: stop leaves no process, mount or file" gone "$T/pg" $pids
	check "pg: stop again is harmless" sh "$here/pg.sh" stop "$T/pg"
else
	skip "PostgreSQL" "$why"
fi

# ---- radosgw ----
s3() {
	(. "$T/rgw/rgw.env" &&
	 curl -sf --aws-sigv4 "aws:amz:$MREG_S3_REGION:s3" \
		--user "$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY" \
		-H 'x-amz-content-sha256: UNSIGNED-PAYLOAD' "$@")
}
rgw_pids() {
	cat "$T/rgw/rgw/run/"*.pid 2>/dev/null | tr '\n' ' '
}

if why=$(sh "$here/rgw.sh" check); then
	check "rgw: start" quiet sh "$here/rgw.sh" start "$T/rgw"
	url=$(. "$T/rgw/rgw.env" && echo "$MREG_S3_ENDPOINT/$MREG_S3_BUCKET")
	head -c 100000 /dev/urandom >"$T/obj"
	check "rgw: a signed PUT" s3 -X PUT --data-binary "@$T/obj" \
		"$url/smoke/obj"
	check "rgw: an anonymous GET is refused (403)" test "$(curl -s \
		-o /dev/null -w '%{http_code}' "$url/smoke/obj")" = 403
	s3 -o "$T/back" "$url/smoke/obj"
	check "rgw: ... a signed GET gives the bytes back" \
		cmp -s "$T/obj" "$T/back"
	wrong=$(. "$T/rgw/rgw.env" && curl -s -o /dev/null -w '%{http_code}' \
		--aws-sigv4 "aws:amz:$MREG_S3_REGION:s3" \
		--user "$AWS_ACCESS_KEY_ID:wrong" \
		-H 'x-amz-content-sha256: UNSIGNED-PAYLOAD' "$url/smoke/obj")
	check "rgw: a wrong secret is refused (403)" test "$wrong" = 403
	pid=$(sed -n 's/^MREG_RGW_PID=//p' "$T/rgw/rgw.env")
	check "rgw: services.py finds the same radosgw" py_same rgw "$T/rgw" \
		MREG_RGW_PID "$pid"
	sh "$here/rgw.sh" halt "$T/rgw"
	halted() { ! sh "$here/rgw.sh" status "$T/rgw" && ! alive "$pid"; }
	check "rgw: halt stops radosgw" halted
	refused() { ! s3 -o /dev/null "$url/smoke/obj" 2>/dev/null; }
	check "rgw: ... its endpoint answers no more" refused
	check "rgw: start after halt" quiet sh "$here/rgw.sh" start "$T/rgw"
	rm -f "$T/back"
	s3 -o "$T/back" "$url/smoke/obj"
	check "rgw: ... the object is still there" cmp -s "$T/obj" "$T/back"
	pids=$(rgw_pids)
	sh "$here/rgw.sh" stop "$T/rgw"
	check "rgw: stop leaves no process, mount or file" gone "$T/rgw" $pids
	check "rgw: stop again is harmless" sh "$here/rgw.sh" stop "$T/rgw"
else
	skip "radosgw" "$why"
fi
