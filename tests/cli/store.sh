#!/bin/sh
# What may be a store (issue 10, "The CLI must not create or damage what
# it was not asked to"): only `mreg init` makes a store (where nothing is,
# or in an empty directory); every other command, and mregfs given a store
# by name, refuses what is not a store, says what it found, and leaves it
# as it was: no index/ packs/ run/ spool/ made in it, no chmod 0700.
. "$(dirname "$0")/lib.sh"

mkfile "$T/f" 4

# a path where nothing is
expect 1 "$(no_store push "$T/missing")" \
	"push to a missing store: refused" --store "$T/missing" push m "$T/f"
check "... and no store was made" test ! -e "$T/missing"

# an ordinary directory with things in it
mkdir -m 755 "$T/home"
printf 'notes\n' >"$T/home/notes.txt"
mkdir "$T/home/photos"
snapshot() { (cd "$1" && find . -printf '%p %m %s\n' | sort); }
snapshot "$T/home" >"$T/before"
expect 1 "mreg: ls: '$T/home' is not a store: it has no '$T/home/index/data.mdb' but holds 'notes.txt', 'photos'" \
	"ls of a directory that is not a store: refused, naming what is there" \
	--store "$T/home" ls
expect 1 "mreg: init: '$T/home' is not a store: it has no '$T/home/index/data.mdb' but holds 'notes.txt', 'photos'" \
	"init refuses it too (it is not empty)" --store "$T/home" init
bad=
for c in "ls" "ls m" "show m" "cat m/1/f" "seal m 1" "promote m 1 S" \
	 "rollback m S" "rm m 1" "history m" "meta m list" "search name=m" \
	 "diff m/1 m/2" "audit" "audit --verify" "stats" "fsck" "gc" \
	 "push m $T/f"; do
	# shellcheck disable=SC2086
	mreg --store "$T/home" $c >/dev/null 2>"$T/err"
	rc=$?
	if [ "$rc" -ne 1 ] || ! grep -q "is not a store" "$T/err"; then
		bad="$bad [$c: status $rc, $(cat "$T/err")]"
	fi
done
check "every command refuses it with status 1${bad:+:$bad}" test -z "$bad"
snapshot "$T/home" >"$T/after"
check "and it is as it was (no index/ packs/ run/ spool/, mode 755)" \
	cmp -s "$T/before" "$T/after"

# a file
expect 1 "mreg: ls: '$T/f' is not a store: not a directory" \
	"a file is not a store" --store "$T/f" ls

# an empty directory: only init makes a store there
mkdir -m 755 "$T/empty"
expect 1 "$(no_store ls "$T/empty")" \
	"ls of an empty directory: no store there" --store "$T/empty" ls
check "... and it stays empty" test -z "$(ls -A "$T/empty")"
expect_out "init makes a store in an empty directory" "$T/empty" \
	--store "$T/empty" init
expect_out "and then push works there" "1" --store "$T/empty" push m "$T/f"

# mregfs given a store by name: the same rules (it fails before mounting;
# one that mounted all the same is unmounted, and its daemon exits)
mkdir "$T/mnt"
at_exit='fusermount3 -u -z "$T/mnt" 2>/dev/null'
"$MREGFS_BIN" --store "$T/home" "$T/mnt" >"$T/out" 2>&1
rc=$?
check "mregfs --store of a directory that is not a store: status 1, says what is there" \
	sh -c 'test "$1" -eq 1 && grep -q "is not a store: .*notes.txt" "$2"' - "$rc" "$T/out"
fusermount3 -u -z "$T/mnt" 2>/dev/null
"$MREGFS_BIN" --store "$T/missing" "$T/mnt" >"$T/out" 2>&1
rc=$?
check "mregfs --store of a missing store: status 1, says how to make one" \
	sh -c 'test "$1" -eq 1 && grep -q "mreg --store $2 init" "$3"' - "$rc" "$T/missing" "$T/out"
fusermount3 -u -z "$T/mnt" 2>/dev/null
snapshot "$T/home" >"$T/after"
check "nothing was made by either" sh -c 'test ! -e "$1" && cmp -s "$2" "$3"' - "$T/missing" "$T/before" "$T/after"
finish
