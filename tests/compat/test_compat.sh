#!/bin/sh
# A store an older mreg made (store.tar.gz, by make-store.py: which binary
# is said there) opens with this one and reads the same: fsck --full finds
# nothing, every file has its recorded digest, and ls, show, history and
# audit print what the old binary printed (expected/, the commands in
# ./commands). Then this binary changes it (push sharing old chunks,
# promote a draft, remove a version, gc) and fsck --full still finds
# nothing: old records and new ones live together.
. "$(dirname "$0")/../cli/lib.sh"
C=$(cd "$(dirname "$0")" && pwd)
TZ=UTC
export TZ

tar xzf "$C/store.tar.gz" -C "$T" || { nok "the compat store extracts"; finish; }
S=$T/store
old() { "$MREG_BIN" -c "$C/mreg.conf" -q --store "$S" "$@"; }

# fsck_clean DESC: fsck --full of the compat store exits 0.
fsck_clean() {
	if old fsck --full >"$T/fsck" 2>&1; then
		ok "$1"
	else
		nok "$1"
		diag "$(cat "$T/fsck")"
	fi
}

# digests_equal DESC FILE: every file of FILE (digests.txt's form) reads
# back with its digest.
digests_equal() {
	bad=
	while read -r sum path; do
		got=$(old cat "$path" </dev/null | sha256sum | cut -d' ' -f1)
		[ "$got" = "$sum" ] || bad="$bad $path"
	done <"$2"
	if [ -z "$bad" ]; then ok "$1"; else nok "$1"; diag "differ:$bad"; fi
}

fsck_clean "fsck --full of a store made by the old binary is clean"
digests_equal "every file reads back with the digest the old binary gave" \
	"$C/expected/digests.txt"

grep -v '^#' "$C/commands" >"$T/commands"
while read -r name args; do
	[ -n "$name" ] || continue
	# shellcheck disable=SC2086 # ARGS are split on blanks
	old $args >"$T/got" 2>"$T/err" </dev/null
	if cmp -s "$T/got" "$C/expected/$name"; then
		ok "mreg $args prints what the old binary printed"
	else
		nok "mreg $args prints what the old binary printed"
		diag "$(diff "$C/expected/$name" "$T/got" | head -20)" \
			"$(cat "$T/err")"
	fi
done <"$T/commands"

# Changes by this binary on top of the old records.
old cat resnet/1/weights.bin >"$T/w1" && mkdir "$T/new" &&
	{ cat "$T/w1"; head -c 20000 /dev/urandom; } >"$T/new/weights.bin"
if v=$(old push resnet "$T/new/weights.bin" --metric accuracy=0.95) &&
	[ "$v" = 5 ]; then
	ok "a push after the old ones is version 5 (4 was removed)"
else
	nok "a push after the old ones is version 5 (4 was removed)"
	diag "got '$v'"
fi
check "the draft the old binary left is promoted (sealed)" \
	old promote resnet exp Candidate
check "a version sharing chunks with others is removed" old rm resnet 1
check "gc after the changes" old gc --all
fsck_clean "fsck --full is clean after push, promote, rm and gc"
{
	sed '/ resnet\/1\//d' "$C/expected/digests.txt"
	echo "$(sha256sum <"$T/new/weights.bin" | cut -d' ' -f1)" \
		resnet/5/weights.bin
} >"$T/digests"
digests_equal "after gc every file left reads back, the new one too" \
	"$T/digests"
finish
