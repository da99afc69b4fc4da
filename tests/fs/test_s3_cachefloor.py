"""The host's chunk cache never fills its disk (issue 13), against the
radosgw of tests/services/rgw.sh, the store (index and default cache
directory) on a small tmpfs:

  floor      with [cache] size far above the disk (10G, the default),
             files larger than the disk together are written and read
             back through the mount: every close() succeeds (the index
             commits: the cache left it room), the disk keeps
             [cache] min_free free, and the cache still holds chunks
  give back  another writer fills the disk to 4 MiB free: the next
             write through the mount makes the cache give its room back
             (the disk has its floor free again), and every file reads
             back right
  full       a cache directory on a tmpfs out of inodes (a disk full in
             a way free space does not show): a read still gets its
             bytes, and the chunks it reads replace the oldest ones
             (the write that met ENOSPC evicted) instead of never being
             kept

Needs root (mount -t tmpfs); skipped otherwise, and where Ceph's packages
are not installed.
"""
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))), 'services'))
from mountlib import Mount, Tap, fill_dir, pattern, write_file  # noqa: E402
import services  # noqa: E402

MIB = 1 << 20
DISK_MIB = 64
FLOOR_MIB = 16      # [cache] min_free of the configs
SLACK_MIB = 4       # what the index and the chunks in flight may take

t = Tap()


def conf(path, env, prefix, cache=None):
    """A config naming the object store of env; the cache in cache, or
    the default (STORE/cache), of the default size (10G)."""
    pathlib.Path(path).write_text(
        '[store]\nbackend = s3\n'
        '[s3]\nendpoint = %s\nbucket = %s\nregion = %s\npath_style = yes\n'
        'key_prefix = %s\n'
        '[cache]\nmin_free = %dM\n%s'
        # no serving copies: every read goes through the store
        '[serve]\nsize = 0\n' %
        (env['MREG_S3_ENDPOINT'], env['MREG_S3_BUCKET'],
         env['MREG_S3_REGION'], prefix, FLOOR_MIB,
         'path = %s\n' % cache if cache else ''))
    return path


def tmpfs(path, opts):
    """Mounts a tmpfs at path: '' or why it cannot."""
    r = subprocess.run(['mount', '-t', 'tmpfs', '-o', opts, 'tmpfs', path],
                       stderr=subprocess.PIPE, text=True)
    return r.stderr.strip() or 'mount failed' if r.returncode else ''


def untmpfs(path):
    """Unmounts the tmpfs at path (a daemon just stopped may still hold
    it: tries again, then detaches it lazily)."""
    for _ in range(50):
        if subprocess.run(['umount', path],
                          stderr=subprocess.DEVNULL).returncode == 0:
            return
        time.sleep(0.1)
    subprocess.run(['umount', '-l', path], stderr=subprocess.DEVNULL)


def free_mib(path):
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize / MIB


def cached(d):
    """The names of the chunk files under the cache directory d."""
    names = set()
    for _, _, fs in os.walk(d):
        names.update(f for f in fs if not f.startswith('tmp.'))
    return names


def test_floor(env, tmp, disk, creds):
    prefix = 't-fs-s3floor-%d/' % os.getpid()
    c = conf(os.path.join(tmp, 'floor.conf'), env, prefix)
    m = Mount('s3floor', args=['-c', c], env=creds)
    m.store = os.path.join(disk, 'store')
    cache = os.path.join(m.store, 'cache')
    try:
        m.start()
        d = m.path('models', 'floor')
        os.mkdir(d)
        # 4 x 20 MiB through a 64 MiB disk: written through to the cache
        data = [pattern(20 * MIB, 40 + i) for i in range(4)]
        errs = [write_file(os.path.join(d, 'f%d.bin' % i), data[i])
                for i in range(3)]
        t.eq(errs, [0, 0, 0], 'three 20 MiB files written through a '
             'mount whose store is on a %d MiB disk, [cache] size 10G: '
             'every close succeeds' % DISK_MIB)
        t.ok(free_mib(disk) >= FLOOR_MIB - SLACK_MIB,
             '... the disk keeps about [cache] min_free (%d MiB) free '
             '(%.1f MiB)' % (FLOOR_MIB, free_mib(disk)))
        t.ok(len(cached(cache)) > 0, '... and the cache holds chunks '
             '(%d files)' % len(cached(cache)))
        good = [open(os.path.join(d, str(i + 1), 'f%d.bin' % i),
                     'rb').read() == data[i] for i in range(3)]
        t.eq(good, [True] * 3, 'the files read back right')
        t.ok(free_mib(disk) >= FLOOR_MIB - SLACK_MIB,
             '... and the disk keeps its floor free (%.1f MiB)' %
             free_mib(disk))

        filler = fill_dir(disk, 4 * MIB)
        t.diag('another writer left %.1f MiB free' % free_mib(disk))
        err = write_file(os.path.join(d, 'f3.bin'), data[3])
        t.eq(err, 0, 'with the disk filled by another writer to 4 MiB '
             'free, a 20 MiB file is written through the mount')
        t.ok(free_mib(disk) >= FLOOR_MIB - SLACK_MIB,
             '... the cache gave its room back: %.1f MiB free' %
             free_mib(disk))
        os.unlink(filler)
        good = [open(os.path.join(d, str(i + 1), 'f%d.bin' % i),
                     'rb').read() == data[i] for i in range(4)]
        t.eq(good, [True] * 4, 'the four files read back right')
    finally:
        m.close()


def test_full(env, tmp, disk, creds):
    prefix = 't-fs-s3full-%d/' % os.getpid()
    cdisk = os.path.join(tmp, 'cdisk')
    os.mkdir(cdisk)
    # 256 HH directories and the root, and room for ~40 chunk files
    why = tmpfs(cdisk, 'size=64m,nr_inodes=300,mode=0700')
    if why:
        t.skip('a cache out of inodes', 'cannot mount a tmpfs: ' + why)
        return
    store = os.path.join(disk, 'store2')
    c = conf(os.path.join(tmp, 'full.conf'), env, prefix,
             os.path.join(cdisk, 'c'))
    try:
        # written by the CLI: the cache fills, the mount then reads cold
        m = Mount('s3full', args=['-c', c], env=creds)
        m.store = store
        a, b = pattern(8 * MIB, 50), pattern(2 * MIB, 51)
        for name, x in (('a.bin', a), ('b.bin', b)):
            os.mkdir(os.path.join(tmp, name[0]))
            pathlib.Path(tmp, name[0], name).write_bytes(x)
            r = m.mreg('-c', c, 'push', 'full', os.path.join(tmp, name[0]))
            t.ok(r.returncode == 0, 'mreg push of %s' % name, r.stderr)
        shutil.rmtree(os.path.join(cdisk, 'c'), ignore_errors=True)
        m.start()
        got = open(m.path('models', 'full', '1', 'a.bin'), 'rb').read()
        t.ok(got == a, 'an 8 MiB file read cold with the cache\'s disk out '
             'of inodes: the right bytes')
        before = cached(os.path.join(cdisk, 'c'))
        got = open(m.path('models', 'full', '2', 'b.bin'), 'rb').read()
        after = cached(os.path.join(cdisk, 'c'))
        t.ok(got == b, 'then a 2 MiB file: the right bytes')
        t.ok(len(after - before) > 0 and len(before - after) > 0,
             '... its chunks replaced the oldest ones in the cache (%d '
             'kept, %d evicted, %d files)' %
             (len(after - before), len(before - after), len(after)))
    finally:
        m.close()
        untmpfs(cdisk)


def run(env):
    creds = {k: env[k] for k in ('AWS_ACCESS_KEY_ID',
                                 'AWS_SECRET_ACCESS_KEY')}
    tmp = tempfile.mkdtemp(prefix='mreg-s3floor-')
    disk = os.path.join(tmp, 'disk')
    os.mkdir(disk)
    try:
        why = tmpfs(disk, 'size=%dm,mode=0700' % DISK_MIB)
        if why:
            t.skip('a cache on a small disk', 'cannot mount a tmpfs: ' + why)
            return
        try:
            t.run('the floor', test_floor, env, tmp, disk, creds)
            t.run('a full cache disk', test_full, env, tmp, disk, creds)
        finally:
            untmpfs(disk)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main():
    why = services.unavailable('rgw')
    if why:
        t.skip('the cache\'s floor of free space', why)
        return t.done()
    services.with_rgw(run)
    return t.done()


if __name__ == '__main__':
    sys.exit(main())
