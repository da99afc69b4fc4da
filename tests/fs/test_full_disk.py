"""A full disk through the mount (issue 11), on a small tmpfs that holds
the store:

  metadata   setxattr and mkdir on a full disk answer ENOSPC, never EIO
             (LMDB reports the short write of a page flush as EIO)
  pending    a copy that failed with ENOSPC leaves nothing at the model
             root (no 0-byte file)
  room       after that failure `mreg gc` makes room (the failed copy's
             chunks are a dead tail behind live data: cut off, no free
             space needed), the space is free as soon as gc returns
             although the daemon still has the pack open, and writes work
             again
  readers    gc removes a pack the daemon has open for reading (a removed
             version read through the mount): df shows the space back
             right after gc returns

Needs root (mount -t tmpfs); skipped otherwise.
"""
import errno
import json
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mountlib import (S3, Mount, Tap, fill_dir, file_sha, pattern,  # noqa
                      run_suite, sha, write_file)

MIB = 1 << 20
DISK_MIB = 48

t = Tap()
m = Mount('full')
disk = tempfile.mkdtemp(prefix='mreg-full-disk-')
m.store = os.path.join(disk, 'store')


def free_bytes():
    """Free bytes of the store's file system (what df shows)."""
    st = os.statvfs(disk)
    return st.f_bfree * st.f_frsize


def fill_disk(leave=0):
    """A file beside the store that takes every free byte but leave."""
    return fill_dir(disk, leave)


def fsck_clean(what):
    r = m.mreg('fsck', '--full')
    t.ok(r.returncode == 0 and 'error' not in r.stdout, what,
         r.stdout + r.stderr)


def full_disk_errors(change, n):
    """Runs change(i) for i in range(n) on a disk filled to a few pages
    (each time again: LMDB's page flush then fails or lands short, as a disk
    filling up meets it); the errnos of the failures."""
    errs = []
    for i in range(n):
        filler = fill_disk(leave=4096 * (i % 4))
        try:
            change(i)
        except OSError as e:
            errs.append(errno.errorcode.get(e.errno, e.errno))
        finally:
            os.unlink(filler)
    return errs


def test_statfs():
    """df of the mount is the store's file system (reg_statfs)."""
    a, b = os.statvfs(m.mnt), os.statvfs(disk)
    t.eq((a.f_blocks * a.f_frsize, a.f_namemax),
         (b.f_blocks * b.f_frsize, 255),
         'statvfs through the mount: the store disk\'s size, names of '
         'up to 255 bytes')


def test_metadata():
    os.mkdir(m.path('models', 'm'))
    errs = full_disk_errors(lambda i: os.setxattr(
        m.path('models', 'm'), 'user.mreg.tag.k%d' % i,
        pattern(6000, i).hex().encode()), 12)
    t.ok(errs, 'setxattr on a full disk fails (%d of 12)' % len(errs))
    t.eq(sorted(set(errs)), ['ENOSPC'],
         'setxattr on a full disk: ENOSPC, never EIO')
    os.mkdir(m.path('models', 'm', '9'))
    errs = full_disk_errors(lambda i: os.mkdir(
        m.path('models', 'm', '9', 'd%d-%s' % (i, 'x' * 200))), 40)
    t.ok(errs, 'mkdir on a full disk fails (%d of 40)' % len(errs))
    t.eq(sorted(set(errs)), ['ENOSPC'],
         'mkdir on a full disk: ENOSPC, never EIO')
    os.setxattr(m.path('models', 'm'), 'user.mreg.tag.after', b'1')
    t.eq(os.getxattr(m.path('models', 'm'), 'user.mreg.tag.after'), b'1',
         'with room again, setxattr works')


def test_failed_copy():
    model = m.path('models', 'c')
    os.mkdir(model)
    small = pattern(MIB, 1)
    t.eq(write_file(os.path.join(model, 'small.bin'), small), 0,
         'a 1 MiB file fits')
    big = pattern((DISK_MIB + 16) * MIB, 2)
    e = write_file(os.path.join(model, 'big.bin'), big)
    t.eq(errno.errorcode.get(e, e), 'ENOSPC',
         'a copy larger than the disk fails with ENOSPC')
    del big
    t.eq(sorted(os.listdir(model)), ['1', 'stages'],
         'the failed copy left nothing at the model root')
    before = free_bytes()
    t.ok(before < 4 * MIB, 'the disk is full (%d bytes free)' % before)
    r = m.mreg('gc')
    t.eq(r.returncode, 0, 'mreg gc on the full disk succeeds')
    if r.returncode:
        t.diag(r.stderr)
    after = free_bytes()
    t.ok(after - before > (DISK_MIB - 12) * MIB,
         'the failed copy\'s space is free when gc returns, the mount '
         'still open (%d -> %d bytes free)' % (before, after), r.stdout)
    more = pattern(8 * MIB, 3)
    t.eq(write_file(os.path.join(model, 'more.bin'), more), 0,
         'and the next copy works')
    t.eq(file_sha(os.path.join(model, '1', 'small.bin')),
         sha(small), 'version 1 reads right')
    t.eq(file_sha(os.path.join(model, '2', 'more.bin')),
         sha(more), 'version 2 reads right')
    fsck_clean('fsck --full is clean')


def test_readers():
    src = os.path.join(m.tmp, 'v.bin')
    with open(src, 'wb') as f:
        f.write(pattern(16 * MIB, 4))
    r = m.mreg('push', 'r', src)
    t.eq(r.returncode, 0, 'mreg push of 16 MiB (a pack of its own)')
    path = m.path('models', 'r', '1', 'v.bin')
    t.eq(file_sha(path), file_sha(src), 'read through the mount (the '
         'daemon opens the pack)')
    r = m.mreg('rm', 'r', '1')
    t.eq(r.returncode, 0, 'mreg rm r 1')
    # the daemon lets go of its pin on the version within a few seconds
    for _ in range(100):
        before = free_bytes()
        r = m.mreg('--json', 'gc')
        after = free_bytes()
        if r.returncode or json.loads(r.stdout)['versions_freed']:
            break
        time.sleep(0.1)
    t.eq(r.returncode, 0, 'mreg gc')
    t.eq(json.loads(r.stdout)['packs_removed'] if r.returncode == 0 else
         None, 1, 'gc freed the version and removed its pack')
    t.ok(after - before >= 15 * MIB,
         'df shows the space back right after gc returns, the daemon '
         'having had the pack open (%d -> %d bytes free)' %
         (before, after))


def cleanup():
    """Unmounts the tmpfs (a daemon that was just stopped may still let go
    of it: tries again, then detaches it lazily) and removes its mount
    point."""
    for _ in range(50):
        if subprocess.run(['umount', disk],
                          stderr=subprocess.DEVNULL).returncode == 0:
            break
        time.sleep(0.1)
    else:
        subprocess.run(['umount', '-l', disk], stderr=subprocess.DEVNULL)
    try:
        os.rmdir(disk)
    except OSError:
        pass


def main():
    r = subprocess.run(['mount', '-t', 'tmpfs', '-o',
                        'size=%dm,mode=0700' % DISK_MIB, 'tmpfs', disk],
                       stderr=subprocess.PIPE, text=True)
    if r.returncode:
        t.skip('a full disk through the mount', 'cannot mount a tmpfs: ' +
               r.stderr.strip())
        m.close()
        cleanup()
        sys.exit(t.done())
    sys.exit(run_suite(t, m, 'a full disk', m.start, [
        ('statfs', test_statfs),
        ('metadata on a full disk', test_metadata),
        ('a copy that fails on a full disk', test_failed_copy),
        ('gc and the daemon\'s readers', test_readers),
    ] if not S3 else [
        ('copies and gc', lambda: t.on_s3(
            'a copy that fails on a full disk, gc making room', 'the '
            'chunks go to the bucket: this disk holds the index and the '
            'cache, and gc frees objects, not its space')),
    ], cleanup=[cleanup]))


if __name__ == '__main__':
    main()
