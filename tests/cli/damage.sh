#!/bin/sh
# A flipped byte in a pack: cat fails with status 1 and an EIO message
# (never wrong bytes), get -o leaves nothing, fsck --full exits 3 and names
# the model, version and file; other files still read right.
. "$(dirname "$0")/lib.sh"

mkfile "$T/hurt.bin" 2048
mkfile "$T/fine.bin" 2048
# The first chunk stored is the first of hurt.bin: it opens the first pack.
expect_out "push the file to damage" "1" push m "$T/hurt.bin"
expect_out "push another" "1" push other "$T/fine.bin"
if [ -n "$S3" ]; then
	skip "a flipped byte of a pack file: EIO, fsck names it" "on S3: the \
chunks are objects in the bucket and this host's cache (a damaged copy \
of either: test-s3store, test-cache)"
else
	pack=$(ls "$T"/store/packs/*.pack 2>/dev/null | head -n 1)
	check "a pack file exists" test -f "$pack"
	expect_out "fsck --full is clean before" "clean" fsck --full

	# Pack: 16-byte header, then records of a 24-byte header and the data.
	off=$((16 + 24 + 4000))
	old=$(od -An -tu1 -j "$off" -N 1 "$pack" | tr -d ' ')
	new=$(( (old + 1) % 256 ))
	# shellcheck disable=SC2059
	printf "$(printf '\\%03o' "$new")" | dd of="$pack" bs=1 seek="$off" conv=notrunc 2>/dev/null
	check "one byte of a chunk's data flipped" test "$(od -An -tu1 -j "$off" -N 1 "$pack" | tr -d ' ')" = "$new"

	expect 1 "mreg: cat: data damaged in 'm/1/hurt.bin': run 'mreg fsck'" "cat of the damaged file: status 1, EIO message" cat m/1/hurt.bin
	check "cat wrote no byte of the damaged chunk" sh -c 'test "$(wc -c <"$1")" -lt 4000' - "$T/out"
	expect 1 "mreg: get: data damaged in 'm/1/hurt.bin': run 'mreg fsck'" "get -o of the damaged file" get m/1/hurt.bin -o "$T/got"
	check "... leaves no file" test ! -e "$T/got"
	mreg cat other/1/fine.bin >"$T/fine.out"
	check "another file still reads right" cmp -s "$T/fine.bin" "$T/fine.out"

	run fsck --full
	check "fsck --full exits 3" test "$rc" -eq 3
	check "fsck names the damaged chunk" grep -Eq "^error: chunk [0-9a-f]{32}" "$T/out"
	check "fsck names model, version and file" grep -Eq "^(error|info): .*'m/1/hurt\.bin'" "$T/out"
	check "fsck says damage was found" grep -Eq "^[0-9]+ errors? found" "$T/out"
	run fsck --full --json
	check "fsck --full --json: status 3, parses, not clean" sh -c 'test "$1" -eq 3' - "$rc"
	check "... and the finding names the file" test "$(jq_py "$T/out" '(d["clean"], any("m/1/hurt.bin" in f["message"] for f in d["findings"]))')" = "(False, True)"
fi

# Pushing the same bytes again heals the damaged chunk for every file
# that names it: the old version reads right again.
mreg push m "$T/hurt.bin" >/dev/null
mreg cat m/1/hurt.bin >"$T/healed.out"
check "pushing the same bytes again heals the old version" cmp -s "$T/hurt.bin" "$T/healed.out"
run fsck --full
check "fsck --full is clean after healing" test "$rc" -eq 0

# A name whose inode is gone (a damaged index): fsck reports it. The key
# of the names table is the parent inode (be64; models/ is 2) and the
# name; the value the inode, in host order (999999 here).
if [ -n "$PG" ]; then
	skip "a damaged index: fsck names what is wrong, reads fail with EIO" \
		"on PostgreSQL: these checks damage the LMDB environment by hand"
	finish
fi
printf '\\00\\00\\00\\00\\00\\00\\00\\02ghost\n\\3f\\42\\0f\\00\\00\\00\\00\\00\n' >"$T/ghost.txt"
check "a name pointing nowhere is written into the index" mdb_load -T -s names -f "$T/ghost.txt" "$T/store/index"
run fsck
check "fsck: status 3" test "$rc" -eq 3
check "fsck names the name and its missing inode" grep -q "^error: 'ghost' names inode 999999, which does not exist" "$T/out"

# A CHUNKS record whose length is not its extent's (a damaged index): the
# read fails with EIO before the store reads a byte into the reader's
# buffer, sized for the extent (also in the ASan run). A pack location is
# u32 pack, u32 length, u64 offset (little-endian), then u64 refs: every
# record's length is set to 4096. An s3 location is u64 object, u64
# offset, u32 length: the length at byte 16.
at=4
[ -z "$S3" ] || at=16
mdb_dump -s chunks "$T/store/index" >"$T/chunks.dump"
/usr/bin/python3 - "$T/chunks.dump" "$at" <<'PY'
import sys
p = sys.argv[1]
at = 2 * int(sys.argv[2])
lines = open(p).read().split('\n')
start = lines.index('HEADER=END') + 1
for i in range(start + 1, len(lines), 2):
    v = lines[i].strip()
    if v == 'DATA=END' or not v:
        break
    lines[i] = (' ' + v[:at] + (4096).to_bytes(4, 'little').hex() +
                v[at + 8:])
open(p, 'w').write('\n'.join(lines))
PY
check "chunk lengths made longer than their extents" mdb_load -s chunks -f "$T/chunks.dump" "$T/store/index"
expect 1 "mreg: cat: data damaged in 'other/1/fine.bin': run 'mreg fsck'" "cat with a chunk record of another length: EIO" cat other/1/fine.bin
run -v cat other/1/fine.bin
check "... found before reading: the record's length is not the extent's" grep -q "4096 bytes, where its file's extent has [0-9]" "$T/err"
finish
