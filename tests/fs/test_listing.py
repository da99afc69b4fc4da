"""Listings (issue 10, "Listings with duplicates"): a listing shows each
entry exactly once.

  - stages/ listed again and again while stages are made and removed
    (`ls stages` once showed ['Beta', 'Beta']: a resume cache keyed by the
    listing's position, never invalidated);
  - a large draft directory read in small pieces (getdents64 with a
    buffer of a few entries, so that the kernel starts each next request
    in the middle of the daemon's last reply) while entries before and
    after the reader's place are added and removed: every entry that is
    there throughout shows exactly once; and the same with seekdir-like
    restarts at an offset the listing gave (lseek to a d_off).
"""
import ctypes
import os
import platform
import random
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mountlib import Mount, Tap, run_suite  # noqa

t = Tap()
m = Mount('listing')

SYS_GETDENTS64 = {'x86_64': 217, 'aarch64': 61}.get(platform.machine())
libc = ctypes.CDLL(None, use_errno=True)


def getdents(fd, size):
    """One getdents64 call with a buffer of size bytes: [(name, d_off)]."""
    buf = ctypes.create_string_buffer(size)
    n = libc.syscall(SYS_GETDENTS64, fd, buf, size)
    if n < 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))
    out, pos, raw = [], 0, buf.raw[:n]
    while pos < n:
        _ino, off, reclen, _typ = struct.unpack_from('<QqHB', raw, pos)
        name = raw[pos + 19:pos + reclen].split(b'\0', 1)[0].decode()
        out.append((name, off))
        pos += reclen
    return out


def test_stages_relisted():
    os.mkdir(m.path('models', 'st'))
    os.mkdir(m.path('models', 'st', '1'))
    stages = m.path('models', 'st', 'stages')
    bad = []
    live = set()
    rounds = [['Alpha', 'Beta'], ['Beta'], ['Beta', 'Gamma', 'Delta'],
              ['Eps'], ['Aa', 'Ab', 'Ac', 'Eps'], ['Zz'], ['Beta', 'Zz'],
              []]
    for i in range(3):
        for want in rounds:
            for s in sorted(live - set(want)):
                os.unlink(os.path.join(stages, s))
            for s in sorted(set(want) - live):
                os.symlink('../1', os.path.join(stages, s))
            live = set(want)
            got = os.listdir(stages)
            if sorted(got) != sorted(want):
                bad.append('want %s, got %s' % (sorted(want), got))
    t.ok(not bad, 'stages/ listed after each change shows each stage '
         'once (%d listings)' % (3 * len(rounds)), '\n'.join(bad[:5]))


def test_large_in_pieces():
    if SYS_GETDENTS64 is None:
        t.skip('a large directory read in pieces', 'getdents64 number '
               'unknown on ' + platform.machine())
        return
    os.mkdir(m.path('models', 'big'))
    d = m.path('models', 'big', '1')
    os.mkdir(d)
    stable = ['s%04d' % i for i in range(600)]
    for n in stable:
        os.mkdir(os.path.join(d, n))
    rnd = random.Random(10)
    churn = []
    seen = []
    made = 0
    fd = os.open(d, os.O_RDONLY | os.O_DIRECTORY)
    try:
        calls = 0
        while calls < 1000:     # a listing that never ends fails below
            got = getdents(fd, 256)
            if not got:
                break
            seen.extend(n for n, _ in got)
            calls += 1
            if calls > 50:
                continue        # then let the reader reach the end
            # entries behind the reader, between the entries (behind and
            # ahead of it) and after everything; the oldest ones removed
            for name in ('a%04d' % made, 'z%04d' % made,
                         's%04d-%d' % (rnd.randrange(600), made),
                         's%04d-%d' % (rnd.randrange(600), made)):
                os.mkdir(os.path.join(d, name))
                churn.append(name)
            made += 1
            for name in churn[:3]:
                os.rmdir(os.path.join(d, name))
            del churn[:3]
    finally:
        os.close(fd)
    counts = {}
    for n in seen:
        counts[n] = counts.get(n, 0) + 1
    twice = sorted(n for n in stable if counts.get(n, 0) > 1)
    missing = sorted(n for n in stable if counts.get(n, 0) == 0)
    t.ok(50 < calls < 1000, 'the listing came in many small pieces, and '
         'ended (%d)' % calls)
    t.ok(not twice and not missing, 'each of %d entries there throughout '
         'shows exactly once while %d others come and go' %
         (len(stable), made * 4),
         'twice: %s\nmissing: %s' % (twice[:10], missing[:10]))
    t.ok(all(c == 1 for c in counts.values()),
         'no entry shows twice', [n for n, c in counts.items() if c > 1][:10])
    for name in churn:
        os.rmdir(os.path.join(d, name))

    # restarting at an offset the listing gave (seekdir to telldir)
    fd = os.open(d, os.O_RDONLY | os.O_DIRECTORY)
    try:
        first = getdents(fd, 4096)
        more = getdents(fd, 4096)
        mid = first[len(first) // 2]
        os.mkdir(os.path.join(d, 'a-new'))
        os.lseek(fd, mid[1], os.SEEK_SET)
        again = getdents(fd, 4096)
    finally:
        os.close(fd)
        os.rmdir(os.path.join(d, 'a-new'))
    names = [n for n, _ in first]
    want = names[names.index(mid[0]) + 1:] + [n for n, _ in more]
    got = [n for n, _ in again]
    t.ok(len(got) > 10 and got == want[:len(got)],
         'lseek to an offset the listing gave resumes after that entry',
         'got %s\nwant %s' % (got[:5], want[:5]))


def main():
    sys.exit(run_suite(t, m, 'listing', m.start, [
        ('stages/ listed while stages change', test_stages_relisted),
        ('a large directory read in pieces', test_large_in_pieces),
    ]))


if __name__ == '__main__':
    main()
