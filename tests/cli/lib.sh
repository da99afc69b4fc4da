# lib.sh — what the CLI tests share: TAP lines, a fresh store per test
# file (removed on exit), and helpers that run mreg and check its status
# and its one-line message. Sourced by tests/cli/*.sh:
#
#	. "$(dirname "$0")/lib.sh"
#	expect 1 "mreg: promote: version 'churn/9' does not exist" \
#		"promote to a missing version" promote churn 9 Production
#	finish
#
# mreg runs with an empty config (-c), so that a system-wide
# /etc/mreg/mreg.conf cannot change what the tests see, and with
# MREG_STORE pointing at the test's own store, made with `mreg init` (no
# other command makes a store): other stores a test uses it makes itself.

# tests/run.sh runs every tests/cli/*.sh: run on its own, this file is
# not a test.
case $0 in
*/lib.sh | lib.sh) exit 0 ;;
esac

: "${MREG_BUILD:?MREG_BUILD must name the build directory (tests/run.sh sets it)}"
MREG_BIN=$MREG_BUILD/mreg
MREGFS_BIN=$MREG_BUILD/mregfs
# The run with every store on S3 (tests/run.sh, MREG_TEST_S3=1): through
# tests/s3wrap.sh, which puts each store's chunks in the run's radosgw.
S3=${MREG_TEST_S3_DIR:-}
if [ -n "$S3" ]; then
	MREG_BIN=$S3/bin/mreg
	MREGFS_BIN=$S3/bin/mregfs
fi
PY=/usr/bin/python3
LC_ALL=C
export LC_ALL

T=$(mktemp -d "${TMPDIR:-/tmp}/mreg-cli.XXXXXX") || exit 1
export MREG_STORE="$T/store"
: >"$T/empty.conf"
at_exit=
cleanup() {
	if [ -n "$at_exit" ]; then
		eval "$at_exit"
	fi
	rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

n=0
nfail=0

ok() { n=$((n + 1)); echo "ok $n - $*"; }
nok() { n=$((n + 1)); nfail=$((nfail + 1)); echo "not ok $n - $*"; }
skip() { n=$((n + 1)); echo "ok $n - $1 # SKIP $2"; }
# on_s3 DESC WHY: in the run with every store on S3, skips DESC (a check
# that cannot hold there by nature, WHY says how) and succeeds; else
# fails. Usage: on_s3 "what" "why" || check ...
on_s3() { [ -n "$S3" ] && skip "$1" "on S3: $2"; }
# s3_aged: on S3, waits until what was written so far is older than the
# least [s3] gc_grace (60 s), which gc leaves alone (another host's
# upload may not be named yet); at once elsewhere.
s3_aged() { [ -z "$S3" ] || sleep 62; }
# The run with every index in PostgreSQL too (MREG_TEST_PG=1, with S3).
PG=
[ -z "$S3" ] || PG=${MREG_TEST_PG:-}
# its connection string (MREG_PG_CONNINFO), as tests/s3wrap.sh gives it
[ -z "$PG" ] || . "$S3/s3.env"
# on_pg DESC WHY: as on_s3, in the run with every index in PostgreSQL.
on_pg() { [ -n "$PG" ] && skip "$1" "on PostgreSQL: $2"; }
# no_store CMD DIR: what mreg CMD says where there is no registry at DIR
# (with the index in PostgreSQL: the database has none)
no_store() {
	if [ -n "$PG" ]; then
		echo "mreg: $1: the database '$MREG_PG_CONNINFO' holds no registry: 'mreg init' makes one"
	else
		echo "mreg: $1: no store at '$2': run 'mreg init' or give --store"
	fi
}
diag() { for l in "$@"; do printf '%s\n' "$l" | sed 's/^/#   /'; done; }

# check DESC COMMAND...: ok when COMMAND succeeds.
check() {
	d=$1
	shift
	if "$@"; then ok "$d"; else nok "$d"; fi
}

mreg() { "$MREG_BIN" -c "$T/empty.conf" "$@"; }

# run ARGS...: runs mreg; stdout in $T/out, stderr in $T/err, status in rc.
run() {
	mreg "$@" >"$T/out" 2>"$T/err"
	rc=$?
}

# expect STATUS MESSAGE DESC ARGS...: runs mreg ARGS and checks the exit
# status and the first line of stderr (exactly MESSAGE; "" for none). A
# failure (status 1) must say it in exactly one line.
expect() {
	want_rc=$1 want=$2 d=$3
	shift 3
	run "$@"
	got=$(head -n 1 "$T/err")
	lines=$(wc -l <"$T/err" | tr -d ' ')
	if [ "$rc" -eq "$want_rc" ] && [ "$got" = "$want" ] &&
	   { [ "$want_rc" -ne 1 ] || [ "$lines" -eq 1 ]; }; then
		ok "$d"
	else
		nok "$d"
		diag "mreg $*" "status $rc, want $want_rc" \
			"stderr: $(cat "$T/err")" "want:   $want"
	fi
}

# expect_out DESC EXPECTED ARGS...: mreg ARGS succeeds and prints exactly
# EXPECTED on stdout.
expect_out() {
	d=$1 want=$2
	shift 2
	run "$@"
	if [ "$rc" -eq 0 ] && [ "$(cat "$T/out")" = "$want" ]; then
		ok "$d"
	else
		nok "$d"
		diag "mreg $*" "status $rc" "stdout: $(cat "$T/out")" \
			"want:   $want" "stderr: $(cat "$T/err")"
	fi
}

# is_json FILE: the file is one JSON document.
is_json() { "$PY" -c 'import json,sys; json.load(open(sys.argv[1]))' "$1"; }
# is_json_lines FILE: every line of the file is a JSON document.
is_json_lines() {
	"$PY" -c 'import json,sys; [json.loads(l) for l in open(sys.argv[1])]' "$1"
}
# jq_py FILE EXPR: prints EXPR evaluated with d = the JSON document.
jq_py() {
	"$PY" -c 'import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$1" "$2"
}

# mkfile PATH SIZE_KIB: random content.
mkfile() { head -c $(($2 * 1024)) /dev/urandom >"$1"; }

# Makes the test's store (mreg init: no other command makes one).
"$MREG_BIN" -c "$T/empty.conf" init >/dev/null || {
	echo "not ok 1 - mreg init of the test's store"
	exit 1
}

finish() {
	[ "$nfail" -eq 0 ]
	exit $?
}
