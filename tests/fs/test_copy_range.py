"""cp inside the mount (issue 5: "copies inside the mount should cost
metadata only"): cp uses copy_file_range, and a whole committed file
copied into a new file shares its chunks — nothing is read, written or
stored again. Other copies fall back to read and write and stay right.
"""
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mountlib import Mount, Tap, file_sha, pattern, run_suite  # noqa

t = Tap()
m = Mount('copy')


def total_stored():
    r = m.mreg('--json', 'stats')
    return json.loads(r.stdout)['total']['stored_bytes']


def test_copy():
    os.mkdir(m.path('models', 'a'))
    os.mkdir(m.path('models', 'b'))
    src = os.path.join(m.tmp, 'src.bin')
    with open(src, 'wb') as f:
        f.write(pattern(24 << 20, 3))
    subprocess.run(['cp', src, m.path('models', 'a') + '/'], check=True)
    os.symlink('../1', m.path('models', 'a', 'stages', 'Production'))
    before = total_stored()
    t.ok(before and before >= 24 << 20, 'one copy stored (%s bytes)'
         % before)
    # the daemon's own counts of bytes read and written: a copy the
    # kernel made by read and write (its fallback when copy_file_range
    # fails) stores nothing more either, since the chunks are the same
    io = (m.metric('mreg_read_bytes_total'),
          m.metric('mreg_written_bytes_total'))
    r = subprocess.run(['strace', '-f', '-e', 'trace=copy_file_range', 'cp',
                        m.path('models', 'a', 'stages', 'Production',
                               'src.bin'), m.path('models', 'b') + '/'],
                       stderr=subprocess.PIPE, text=True)
    t.eq(r.returncode, 0, 'cp inside the mount')
    t.ok('= %d' % (24 << 20) in r.stderr,
         'cp copied the whole file with one copy_file_range',
         r.stderr[-500:])
    t.eq((m.metric('mreg_read_bytes_total'),
          m.metric('mreg_written_bytes_total')), io,
         'the daemon read and wrote no byte for it (metadata only)')
    got = m.path('models', 'b', '1', 'src.bin')
    t.eq(file_sha(got), file_sha(src), 'the copy has every byte')
    t.eq(total_stored(), before, 'and stored nothing more')
    t.eq(os.getxattr(m.path('models', 'b', '1', 'src.bin'),
                     'user.mreg.digest'),
         os.getxattr(m.path('models', 'a', '1', 'src.bin'),
                     'user.mreg.digest'), 'with the same digest')
    # a partial copy falls back to read and write
    os.mkdir(m.path('models', 'b', '7'))
    dst = m.path('models', 'b', '7', 'part.bin')
    with open(m.path('models', 'a', '1', 'src.bin'), 'rb') as fi, \
            open(dst, 'wb', buffering=0) as fo:
        fo.write(b'head')
        try:
            n = os.copy_file_range(fi.fileno(), fo.fileno(), 1 << 20,
                                   4096)
        except OSError as e:
            n = -e.errno
            fo.write(fi.read())  # what cp does on EOPNOTSUPP
    with open(dst, 'rb') as f:
        data = f.read()
    t.ok(n == (1 << 20) or n < 0, 'a partial copy_file_range copies or '
         'says to fall back (%d)' % n)
    if n > 0:
        with open(src, 'rb') as f:
            f.seek(4096)
            want = b'head' + f.read(1 << 20)
        t.ok(data == want, 'and the bytes are right')
    r = m.mreg('fsck', '--full')
    t.eq(r.returncode, 0, 'fsck --full is clean')


def main():
    sys.exit(run_suite(t, m, 'copy_file_range', m.start, [
        ('copy_file_range', test_copy),
    ]))


if __name__ == '__main__':
    main()
