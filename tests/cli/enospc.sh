#!/bin/sh
# ENOSPC on a small tmpfs: a push that does not fit fails with status 1
# and "no space left on the store", the store stays intact (fsck clean,
# earlier versions read right, no partial version), and once space is
# freed pushes work again. Needs root (mount); skipped otherwise.
. "$(dirname "$0")/lib.sh"

if [ -n "$PG" ]; then
	skip "ENOSPC on a 64 MiB tmpfs" "on PostgreSQL: the store's disk \
holds neither the index nor the chunks (S3), only this host's cache, \
which a full disk does not stop"
	finish
fi
mnt="$T/mnt"
mkdir -p "$mnt"
if ! mount -t tmpfs -o size=64m tmpfs "$mnt" 2>/dev/null; then
	skip "ENOSPC on a 64 MiB tmpfs" "cannot mount a tmpfs (needs root)"
	finish
fi
at_exit='umount "$mnt" 2>/dev/null || umount -l "$mnt" 2>/dev/null'
S="$mnt/store"

mreg --store "$S" init >/dev/null
mkfile "$T/v1" 2048
mkfile "$T/big" 102400
mkfile "$T/v2" 8192
expect_out "a first version fits" "1" push m "$T/v1" --store "$S"
on_s3 "a push too large for the disk: status 1, ENOSPC message" "the \
chunks go to the bucket, not to this disk" ||
expect 1 "mreg: push: no space left on the store" "a push too large for the disk: status 1, ENOSPC message" push m "$T/big" --store "$S"
run fsck --store "$S"
check "the store is intact: fsck is clean" sh -c 'test "$1" -eq 0 && ! grep -q "^error" "$2"' - "$rc" "$T/out"
run ls m --json --store "$S"
check "no partial version was left" test "$(jq_py "$T/out" '[v["version"] for v in d]')" = "['1']"
mreg cat m/1/v1 --store "$S" | cmp -s - "$T/v1"
check "the earlier version reads right" test $? -eq 0

# Fill what is left, then free it: a push fails, then works.
run gc --store "$S"
check "gc on a full disk: status 0" test "$rc" -eq 0
dd if=/dev/zero of="$mnt/filler" bs=1M 2>/dev/null
expect 1 "mreg: push: no space left on the store" "a push onto a full disk" push m "$T/v2" --store "$S"
# Metadata on a full disk (filled to a few pages, so that the index's
# page flush fails or lands short): ENOSPC, never an I/O error.
desc=$(head -c 4500 /dev/urandom | od -An -tx1 | tr -d ' \n')
fails=0 others=
for leave in 0 4 8 12 0 4 8 12; do
	rm -f "$mnt/filler"
	dd if=/dev/zero of="$mnt/filler" bs=1M 2>/dev/null
	dd if=/dev/zero of="$mnt/filler" bs=4k oflag=append conv=notrunc 2>/dev/null
	[ "$leave" -gt 0 ] && truncate -s -"${leave}K" "$mnt/filler"
	run meta m/1 set "tag.t$leave$fails" "$desc" --store "$S"
	if [ "$rc" -ne 0 ]; then
		fails=$((fails + 1))
		grep -qx "mreg: meta: no space left on the store" "$T/err" ||
			others="$others $(cat "$T/err")"
	fi
done
check "meta set on a full disk fails ($fails of 8)" test "$fails" -gt 0
check "always with 'no space left on the store'" test -z "$others"
[ -z "$others" ] || diag "$others"
rm -f "$mnt/filler"
expect_out "after space is freed, the push works" "2" push m "$T/v2" --store "$S"
mreg cat m/2/v2 --store "$S" | cmp -s - "$T/v2"
check "and reads back right" test $? -eq 0
mreg cat m/1/v1 --store "$S" | cmp -s - "$T/v1"
check "version 1 is still right" test $? -eq 0
run fsck --full --store "$S"
check "fsck --full at the end is clean" sh -c 'test "$1" -eq 0 && ! grep -q "^error" "$2"' - "$rc" "$T/out"
finish
