"""Files rewritten in place in a draft (issue 11, "out-of-order writes cost
the whole file"): a 4 KiB pwrite into a sparse 2 GiB file and its close()
cut and hash a chunk or two (mreg_chunked_bytes_total), not the file; the
holes stay holes (they read as zeros, SEEK_DATA and SEEK_HOLE skip them);
and random writes, truncations and reads of a file give what the same
calls give on a native file, before and after the version is sealed.
"""
import errno
import json
import os
import random
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mountlib import Mount, Tap, run_suite  # noqa: E402

t = Tap()
m = Mount('sparse')
native_top = tempfile.mkdtemp(prefix='mreg-native-')
GIB = 1 << 30
AT = GIB + 123
WROTE = bytes((i * 7 + 1) & 0xff for i in range(4096))
MAX_CHUNK = 256 << 10


def metric(name):
    with open(m.path('.mreg', 'metrics')) as f:
        for line in f:
            if line.startswith(name + ' '):
                return int(line.split()[1])
    return None


def draft(*parts):
    return m.path('models', 'sp', '1', *parts)


def seek(fd, off, whence):
    try:
        return os.lseek(fd, off, whence)
    except OSError as e:
        return errno.errorcode[e.errno]


def sparse_ops(path):
    """A sparse 2 GiB file, then 4 KiB written at 1 GiB + 123."""
    fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o644)
    os.ftruncate(fd, 2 * GIB)
    os.close(fd)
    fd = os.open(path, os.O_RDWR)
    os.pwrite(fd, WROTE, AT)
    os.close(fd)


def read_ranges(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        return [os.fstat(fd).st_size, os.pread(fd, 8192, 0),
                os.pread(fd, 8192, AT - 100), os.pread(fd, 8192, GIB),
                os.pread(fd, 8192, 2 * GIB - 100), os.pread(fd, 10, 2 * GIB)]
    finally:
        os.close(fd)


def test_sparse():
    native = os.path.join(native_top, 'sparse.bin')
    before = metric('mreg_chunked_bytes_total')
    t.ok(before is not None, '.mreg/metrics has mreg_chunked_bytes_total')
    fd = os.open(draft('sparse.bin'), os.O_CREAT | os.O_RDWR, 0o644)
    os.ftruncate(fd, 2 * GIB)
    os.close(fd)
    mid = metric('mreg_chunked_bytes_total')
    t.eq(mid - before, 0, 'extending a file to 2 GiB chunks nothing')
    fd = os.open(draft('sparse.bin'), os.O_RDWR)
    os.pwrite(fd, WROTE, AT)
    os.close(fd)
    cost = metric('mreg_chunked_bytes_total') - mid
    t.ok(cost <= 2 * MAX_CHUNK, 'a 4 KiB pwrite and close() cut and hashed '
         '%d bytes: a chunk or two, not the file' % cost)
    sparse_ops(native)
    got, want = read_ranges(draft('sparse.bin')), read_ranges(native)
    t.eq(got[0], 2 * GIB, 'the size is 2 GiB')
    t.ok(got == want, 'ranges read back as from a native file: zeros in '
         'the holes, the 4 KiB where written')
    t.eq(got[2][100:100 + 4096], WROTE, 'the 4 KiB are there')
    fd = os.open(draft('sparse.bin'), os.O_RDONLY)
    try:
        t.eq(seek(fd, 0, os.SEEK_DATA), AT, 'SEEK_DATA from 0: the 4 KiB')
        t.eq(seek(fd, AT, os.SEEK_HOLE), AT + 4096, 'SEEK_HOLE: after them')
        t.eq(seek(fd, AT + 4096, os.SEEK_DATA), 'ENXIO',
             'SEEK_DATA after them: ENXIO, as natively')
        t.eq(seek(fd, 2 * GIB, os.SEEK_HOLE), 'ENXIO',
             'SEEK_HOLE at the end: ENXIO, as natively')
        t.eq(seek(fd, 10, os.SEEK_HOLE), 10, 'SEEK_HOLE in a hole: there')
    finally:
        os.close(fd)


def next_data(fd, pos, size):
    d = seek(fd, pos, os.SEEK_DATA)
    return d if isinstance(d, int) else size  # ENXIO: a hole to the end


def compare_files(a, b):
    """Same size and bytes; only where either has data is read."""
    sa, sb = os.stat(a).st_size, os.stat(b).st_size
    if sa != sb:
        return 'sizes %d and %d' % (sa, sb)
    fa, fb = os.open(a, os.O_RDONLY), os.open(b, os.O_RDONLY)
    try:
        pos = 0
        while pos < sa:
            d = min(next_data(fa, pos, sa), next_data(fb, pos, sa))
            if d >= sa:
                return None
            x, y = os.pread(fa, 1 << 20, d), os.pread(fb, 1 << 20, d)
            if x != y or not x:
                return 'bytes differ at %d' % d
            pos = d + len(x)
        return None
    finally:
        os.close(fa)
        os.close(fb)


def random_ops(seed, paths):
    """The same random operations on each of paths (mount, native),
    reading through the writer's descriptor and through a reader's: what
    each call gave, for every path."""
    rng = random.Random(seed)
    fds = [os.open(p, os.O_CREAT | os.O_RDWR, 0o644) for p in paths]
    rfds = [os.open(p, os.O_RDONLY) for p in paths]  # another reader
    out = []

    def each(fn):
        res = []
        for i, p in enumerate(paths):
            try:
                res.append(fn(i, p))
            except OSError as e:
                res.append(errno.errorcode[e.errno])
        out.append(res)
        return res

    for _ in range(80):
        op = rng.randrange(10)
        size = os.fstat(fds[1]).st_size
        if op <= 3:
            far = rng.randrange(4) == 0
            off = rng.randrange(size + ((48 << 20) if far else (1 << 20)))
            data = rng.randbytes(rng.randrange(1, 200 << 10)) \
                if rng.randrange(5) else bytes(rng.randrange(1, 70000))
            each(lambda i, p: os.pwrite(fds[i], data, off))
        elif op == 4:
            n = rng.randrange(size + (2 << 20))
            each(lambda i, p: os.ftruncate(fds[i], n))
        elif op == 5:
            n = rng.randrange(size + (2 << 20))
            each(lambda i, p: os.truncate(p, n))
        elif op <= 7:
            off, n = rng.randrange(size + 1000), rng.randrange(1, 300 << 10)
            by = fds if op == 6 else rfds
            each(lambda i, p: os.pread(by[i], n, off))
        elif op == 8:
            each(lambda i, p: os.fsync(fds[i]))
        else:
            each(lambda i, p: os.close(fds[i]))
            fds = [os.open(p, os.O_RDWR) for p in paths]
        each(lambda i, p: os.fstat(fds[i]).st_size)
    for fd in fds + rfds:
        os.close(fd)
    return out


def test_random():
    for seed in (1, 2, 3):
        name = 'r%d.bin' % seed
        native = os.path.join(native_top, name)
        out = random_ops(seed, [draft(name), native])
        bad = [(i, r) for i, r in enumerate(out) if r[0] != r[1]]
        t.ok(not bad, 'seed %d: %d calls give what they give natively'
             % (seed, len(out)), bad[:3])
        t.eq(compare_files(draft(name), native), None,
             'seed %d: the file equals the native one' % seed)


def test_sealed():
    # a draft's listing computes the digest a file rewritten in place has
    r = m.mreg('--json', 'ls', 'sp/1')
    listed = {f['path']: f['digest'] for f in json.loads(r.stdout)} \
        if r.returncode == 0 else {}
    r = subprocess.run(['chmod', 'a-w', m.path('models', 'sp', '1')])
    t.eq(r.returncode, 0, 'chmod a-w seals the draft')
    native = os.path.join(native_top, 'sparse.bin')
    t.ok(read_ranges(draft('sparse.bin')) == read_ranges(native),
         'the sealed sparse file reads as the native one')
    fd = os.open(draft('sparse.bin'), os.O_RDONLY)
    try:
        t.eq((seek(fd, 0, os.SEEK_DATA), seek(fd, AT, os.SEEK_HOLE)),
             (AT, AT + 4096), 'SEEK_DATA and SEEK_HOLE on it')
    finally:
        os.close(fd)
    for seed in (1, 2, 3):
        name = 'r%d.bin' % seed
        t.eq(compare_files(draft(name), os.path.join(native_top, name)),
             None, 'sealed %s equals the native one' % name)
    # its digest, computed at the seal, is that of the same bytes pushed
    r = m.mreg('push', 'ref', os.path.join(native_top, 'r1.bin'))
    t.ok(r.returncode == 0, 'mreg push of the native file', r.stderr)
    t.eq(os.getxattr(draft('r1.bin'), 'user.mreg.digest'),
         os.getxattr(m.path('models', 'ref', '1', 'r1.bin'),
                     'user.mreg.digest'),
         'a file rewritten in place has the digest of its bytes')
    t.eq(os.getxattr(draft('r1.bin'), 'user.mreg.digest').decode(),
         'xxh128:' + listed.get('r1.bin', '?'),
         'mreg ls of the draft showed that digest before the seal')


def setup():
    m.start()
    os.mkdir(m.path('models', 'sp'))
    os.mkdir(m.path('models', 'sp', '1'))


def fsck():
    r = m.mreg('fsck')
    t.ok(r.returncode == 0, 'mreg fsck is clean', r.stdout + r.stderr)


def cleanup():
    subprocess.run(['rm', '-rf', native_top])


if __name__ == '__main__':
    sys.exit(run_suite(t, m, 'sparse files', setup,
                       [('sparse', test_sparse), ('random', test_random),
                        ('sealed', test_sealed), ('fsck', fsck)],
                       cleanup=[cleanup]))
