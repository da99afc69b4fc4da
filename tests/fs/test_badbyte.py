"""Never wrong bytes (SPEC §5: "a chunk that fails the check makes the
read fail with EIO: never wrong bytes"), for every way to read a sealed
file, deterministically: one byte of a pack flipped under a file, then

  - read(2) through the mount, in 4 KiB pieces: each piece is right or
    fails with EIO, and the pieces over the damage fail;
  - mmap(2) through the mount, page by page: each page is right, and
    touching the damaged one kills the reader with SIGBUS;
  - `mreg cat` and `mreg get` on the store, and `mreg cat` through the
    mount (--store MNT): status 1 saying the data is damaged, and what they
    wrote is a prefix of the file;
  - `mreg fsck --full` finds it (status 3).

Each read path has a file of its own (the kernel's page cache keeps the
right pages one path read, so another path would not ask again); the
files are pushed by the CLI and damaged before the mount starts, so that
nothing of them is cached anywhere.
"""
import os
import signal
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mountlib import MREG, Mount, Tap, pattern, run_suite  # noqa: E402

t = Tap()
m = Mount('badbyte')
SIZE = 1 << 20
FLIP = 600000            # the damaged byte's offset in each file
PATHS = ('read', 'mmap', 'store', 'mount')
data = {}

MMAP_READER = r'''
import mmap, os, sys
want = open(sys.argv[2], 'rb').read()
fd = os.open(sys.argv[1], os.O_RDONLY)
mm = mmap.mmap(fd, 0, prot=mmap.PROT_READ)
for off in range(0, len(want), 4096):
    # one page at a time: a bad page is SIGBUS, never other bytes
    if mm[off:off + 4096] != want[off:off + 4096]:
        print('wrong bytes at %d' % off, flush=True)
        sys.exit(3)
    print('page %d right' % off, flush=True)
sys.exit(0)
'''


def flip_in_packs(snippet):
    """Flips the first byte of snippet where it is in a pack; True when
    found."""
    d = os.path.join(m.store, 'packs')
    for name in sorted(os.listdir(d)):
        path = os.path.join(d, name)
        with open(path, 'r+b') as f:
            buf = f.read()
            at = buf.find(snippet)
            if at >= 0:
                f.seek(at)
                f.write(bytes([buf[at] ^ 0x5a]))
                return True
    return False


def setup():
    for i, what in enumerate(PATHS):
        data[what] = pattern(SIZE, 80 + i)
        src = os.path.join(m.tmp, what + '.bin')
        with open(src, 'wb') as f:
            f.write(data[what])
        r = m.mreg('push', what, src)
        assert r.returncode == 0, r.stderr
        assert flip_in_packs(data[what][FLIP:FLIP + 64]), what
    m.start()


def path(what):
    return m.path('models', what, '1', what + '.bin')


def test_read():
    want = data['read']
    fd = os.open(path('read'), os.O_RDONLY)
    wrong, eio, other = [], [], []
    try:
        for off in range(0, SIZE, 4096):
            try:
                b = os.pread(fd, 4096, off)
            except OSError as e:
                (eio if e.errno == 5 else other).append(off)
                continue
            if b != want[off:off + 4096]:
                wrong.append(off)
    finally:
        os.close(fd)
    t.ok(not wrong, 'read(2) through the mount never returns wrong bytes',
         'wrong at %s' % wrong[:10])
    t.ok(not other, 'and fails with nothing but EIO', other[:10])
    t.ok(any(off <= FLIP < off + 4096 for off in eio),
         'the read over the damaged byte fails with EIO',
         'EIO at %s' % eio[:10])


def test_mmap():
    ref = os.path.join(m.tmp, 'mmap.bin')
    r = subprocess.run([sys.executable, '-c', MMAP_READER, path('mmap'),
                        ref], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True, timeout=120)
    t.ok('wrong' not in r.stdout, 'mmap through the mount never shows '
         'wrong bytes', r.stdout[-300:])
    t.eq(r.returncode, -signal.SIGBUS,
         'touching the damaged page is SIGBUS')
    pages = r.stdout.count(' right')
    t.ok(pages <= FLIP // 4096 + 1,
         'the reader got no further than the damaged page (%d pages)'
         % pages)


def cli(store, *args):
    return subprocess.run([MREG, '--store', store] + list(args),
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          env=m.env, timeout=120)


def check_cli(what, r, want):
    t.ok(r.returncode == 1 and b'data damaged' in r.stderr,
         '%s: status 1, saying the data is damaged' % what,
         'status %d: %r' % (r.returncode, r.stderr[-300:]))
    t.ok(want.startswith(r.stdout) and len(r.stdout) <= FLIP,
         '%s: what it wrote is the file up to the damage at most' % what,
         '%d bytes, %s' % (len(r.stdout), 'a prefix' if
                           want.startswith(r.stdout) else 'WRONG BYTES'))


def test_cli():
    for cmd in ('cat', 'get'):
        check_cli('mreg %s on the store' % cmd,
                  cli(m.store, cmd, 'store/1/store.bin'), data['store'])
    check_cli('mreg cat through the mount',
              cli(m.mnt, 'cat', 'mount/1/mount.bin'), data['mount'])
    r = cli(m.store, 'fsck', '--full')
    t.eq(r.returncode, 3, 'mreg fsck --full finds the damage: status 3')


def main():
    if t.on_s3('a byte of a pack flipped under a file', 'the chunks are '
               'objects in the bucket and this host\'s cache (a damaged '
               'copy of either: test-s3store, test-cache)'):
        m.close()
        sys.exit(t.done())
    sys.exit(run_suite(t, m, 'wrong bytes', setup, [
        ('read(2)', test_read),
        ('mmap(2)', test_mmap),
        ('mreg cat and get', test_cli),
    ]))


if __name__ == '__main__':
    main()
