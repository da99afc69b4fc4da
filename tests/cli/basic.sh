#!/bin/sh
# mreg basics: init, help, usage errors (status 2), the choice of store
# (--store, $MREG_STORE, the config's path; options before or after the
# command), a missing store, and the exit status table in `mreg help`.
. "$(dirname "$0")/lib.sh"

expect_out "init prints the store path" "$T/fresh" --store "$T/fresh" init
if [ -n "$PG" ]; then
	check "init made the host's store" test -f "$T/fresh/index/host"
else
	check "init made the store" test -f "$T/fresh/index/data.mdb"
fi
expect_out "init again on an existing store" "$T/fresh" --store "$T/fresh" init
run init --json
check "init --json parses" is_json "$T/out"

run help
check "help lists every command" sh -c 'for c in init push ls show cat seal promote rollback rm history meta search diff audit stats fsck prefetch gc help; do grep -q "^  $c " "$1" || exit 1; done' - "$T/out"
check "help documents the exit statuses" sh -c 'grep -q "^  3  fsck or audit --verify found damage" "$1" && grep -q "^  2  usage error" "$1"' - "$T/out"
for c in init push ls show cat get seal promote rollback rm history meta search diff audit stats fsck prefetch gc; do
	run help "$c"
	a=$rc
	h1=$(head -n 1 "$T/out")
	run "$c" --help
	if [ "$a" -eq 0 ] && [ "$rc" -eq 0 ] && [ "$h1" = "$(head -n 1 "$T/out")" ] &&
	   grep -q "^usage: mreg " "$T/out"; then
		ok "help $c and $c --help"
	else
		nok "help $c and $c --help"
	fi
done

expect 2 "mreg: unknown command 'frob'" "unknown command: status 2" frob
check "unknown command: usage hint" grep -q "^try 'mreg help'" "$T/err"
expect 2 "mreg: ls: unknown option '--frob'" "unknown option: status 2" ls --frob
check "unknown option: usage hint" grep -q "^try 'mreg help ls'" "$T/err"
expect 2 "mreg: unknown option '-Z'" "unknown option before the command" -Z ls
expect 2 "mreg: help: unknown command 'nope'" "help of an unknown command" help nope
expect 2 "mreg: push: option '--version' needs a value" "option without its value" push m f --version
expect 2 "mreg: rollback: missing argument (usage: mreg rollback MODEL STAGE)" "missing argument" rollback churn
expect 2 "mreg: seal: unexpected argument 'x'" "extra argument" seal m/1 x
run
check "no command: status 2 and the usage" test "$rc" -eq 2 -a -s "$T/err"

# The store: --store before or after the command, $MREG_STORE, config.
mkfile "$T/f" 4
mreg --store "$T/s2" init >/dev/null
expect_out "--store after the command" "1" push m "$T/f" --store "$T/s2"
expect_out "--store before the command" "2" --store "$T/s2" push m "$T/f"
expect_out "--store=DIR form" "3" push --store="$T/s2" m "$T/f"
expect_out "MREG_STORE is used" "1" push m "$T/f"
printf '[store]\npath = %s\n' "$T/s3" >"$T/c.conf"
(unset MREG_STORE; "$MREG_BIN" -c "$T/c.conf" init >/dev/null &&
	"$MREG_BIN" -c "$T/c.conf" push m "$T/f" >"$T/out" 2>&1)
check "the config's store path is used" test -d "$T/s3" -a "$(cat "$T/out")" = 1
expect_out "MREG_STORE wins over the config" "2" push m "$T/f"
run --store "$T/s3" -c "$T/c.conf" ls m --json
check "--store wins over MREG_STORE" test "$(jq_py "$T/out" 'len(d)')" = 1

printf '[store]\nbogus = 1\n' >"$T/bad.conf"
"$MREG_BIN" -c "$T/bad.conf" ls >"$T/out" 2>"$T/err"
rc=$?
on_s3 "bad config: status 2, file and line named" "mreg reads the \
config tests/s3wrap.sh made of it, which the message names" ||
check "bad config: status 2, file and line named" \
	test "$rc" -eq 2 -a "$(cat "$T/err")" = "mreg: ls: bad config: $T/bad.conf:2: unknown key 'bogus' in [store]"
"$MREG_BIN" -c "$T/nonexistent.conf" ls >"$T/out" 2>"$T/err"
rc=$?
check "missing config: status 2" \
	test "$rc" -eq 2 -a "$(cat "$T/err")" = "mreg: ls: cannot read config '$T/nonexistent.conf': no such file or directory"
expect 1 "$(no_store ls "$T/none")" \
	"a store that does not exist is not made by ls" ls --store "$T/none"
check "... and was not created" test ! -e "$T/none"

# Output that cannot be written is a failure, not a silent truncation.
if [ -w /dev/full ]; then
	mreg ls >/dev/full 2>"$T/err"
	rc=$?
	check "stdout on a full disk: status 1" test "$rc" -eq 1
else
	skip "stdout on a full disk" "no /dev/full"
fi
finish
