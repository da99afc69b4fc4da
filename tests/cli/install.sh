#!/bin/sh
# The tree as a new user meets it (issue 10, "Smaller things seen by a new
# user"): the README says the contract itself (a clone has nothing beside
# it), with the name rules and the packages; build/ is ignored by git;
# `make install` puts a commented-out example config in place (no live
# stage policy); the demo builds only the two programs; tests/run.sh says
# which checks were skipped and why.
. "$(dirname "$0")/lib.sh"

top=${MREG_TOP:-$(cd "$(dirname "$0")/../.." && pwd)}
# a make of our own, not a part of the one that runs the tests
unset MAKEFLAGS MFLAGS MAKELEVEL

# the README and the files beside it
readme="$top/README.md"
check "the README links nothing outside the repository" \
	sh -c '! grep -n "\.\./shared" "$1"' - "$readme"
check "it has a Behaviour contract section" grep -q '^## Behaviour contract$' "$readme"
check "which states the name rules" sh -c \
	'grep -q "1–128 bytes of \`\[A-Za-z0-9._-\]\`" "$1" &&
	 grep -q "Stage names: 1–64 bytes" "$1" && grep -q "regardless of case" "$1"' \
	- "$readme"
check "the README lists lmdb-utils and prometheus among the packages" \
	sh -c 'grep -q "lmdb-utils" "$1" && grep -q "prometheus" "$1"' - "$readme"
check "tools/install-deps.sh and .ci/run install prometheus (promtool)" \
	sh -c 'grep -q prometheus "$1/tools/install-deps.sh" &&
	       grep -q prometheus "$1/.ci/run"' - "$top"
check ".gitignore ignores build/" grep -qx '/build/' "$top/.gitignore"

# make install, into a scratch root
root="$T/root"
if make -s -C "$top" BUILD="$MREG_BUILD" DESTDIR="$root" install \
	>"$T/out" 2>&1; then
	ok "make install DESTDIR=... succeeds"
else
	nok "make install DESTDIR=... succeeds"
	diag "$(cat "$T/out")"
fi
conf="$root/etc/mreg/mreg.conf"
check "it installs /etc/mreg/mreg.conf" test -f "$conf"
check "with every setting commented out (no live line)" \
	sh -c '! grep -Ev "^[[:space:]]*([#;]|$)" "$1"' - "$conf"
check "but the example's text (the stage policies, commented out)" \
	grep -q '^#\[stage Production\]' "$conf"
"$MREG_BIN" -c "$conf" --store "$T/inst" init >/dev/null 2>"$T/err"
check "mreg accepts it as a config" test $? -eq 0
printf '[store]\npath = /mine\n' >"$conf"
make -s -C "$top" BUILD="$MREG_BUILD" DESTDIR="$root" install >/dev/null 2>&1
check "an existing config is left as it is" \
	test "$(cat "$conf")" = "$(printf '[store]\npath = /mine')"

# the demo's build: the programs, no test binary
goal=$(sed -n 's/^make -s \([a-z][a-z ]*\)$/\1/p' "$top/tools/demo.sh")
check "tools/demo.sh runs make for '$goal'" test -n "$goal"
# shellcheck disable=SC2086
make -n -C "$top" BUILD="$T/demo-build" $goal >"$T/out" 2>&1
check "which builds mreg and mregfs" sh -c \
	'grep -q "demo-build/mreg " "$1" && grep -q "demo-build/mregfs " "$1"' \
	- "$T/out"
check "and no test" sh -c '! grep -q "tests/" "$1"' - "$T/out"

# tests/run.sh lists what was skipped, and why
mkdir -p "$T/fake/tests"
printf '#!/bin/sh\necho "ok 1 - a check"\necho "ok 2 - another check # SKIP needs a unicorn"\n' \
	>"$T/fake/tests/test-fake"
chmod +x "$T/fake/tests/test-fake"
MREG_BUILD="$T/fake" MREG_TEST_LOG="$T/fake/log" sh "$top/tests/run.sh" unit \
	>"$T/out" 2>&1
check "run.sh names each skipped check with its reason" \
	grep -q "test-fake: another check (needs a unicorn)" "$T/out"
check "and ends with the counts" \
	sh -c 'tail -n 1 "$1" | grep -qx "1 passed, 0 failed, 1 skipped"' - "$T/out"
finish
