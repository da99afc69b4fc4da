"""gc keeps what a live process has open (SPEC §3 "a file already open
keeps reading the bytes of the version it opened until it is closed",
§5 gc "safe while the filesystem is mounted and in use"): a version
removed while a file of it is open through the mount, then gc'ed by
another process (the CLI on the store), still reads right through the
open descriptor; once it is closed, gc frees it.

A gc that skipped the pin check would free the version's tree and
chunks and remove their pack: the reads would fail with EIO.
"""
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mountlib import Mount, Tap, pattern, run_suite  # noqa: E402

t = Tap()
m = Mount('gcpin')
SIZE = 3 << 20


def read_fd(fd):
    """Reads fd from the start in 64 KiB pieces: (bytes, errno or None)."""
    got = bytearray()
    while True:
        try:
            b = os.pread(fd, 1 << 16, len(got))
        except OSError as e:
            return bytes(got), e.errno
        if not b:
            return bytes(got), None
        got += b


def gc():
    """mreg gc on the store: (status, its JSON result or None, output)."""
    r = m.mreg('--json', 'gc')
    try:
        res = json.loads(r.stdout)
    except ValueError:
        res = None
    return r.returncode, res, r.stdout + r.stderr


def test_pin():
    data = pattern(SIZE, 61)
    src = os.path.join(m.tmp, 'w.bin')
    with open(src, 'wb') as f:
        f.write(data)
    # pushed by the CLI: the daemon has none of its bytes in any cache
    r = m.mreg('push', 'p', src)
    t.eq((r.returncode, r.stdout.strip()), (0, '1'), 'mreg push p w.bin')
    fd = os.open(m.path('models', 'p', '1', 'w.bin'), os.O_RDONLY)
    try:
        r = m.mreg('rm', 'p', '1')
        t.eq(r.returncode, 0, 'mreg rm p 1 while w.bin is open')
        # a change by the CLI shows through the mount within a second
        end = time.monotonic() + 3
        while os.path.exists(m.path('models', 'p', '1')) and \
                time.monotonic() < end:
            time.sleep(0.1)
        t.ok(not os.path.exists(m.path('models', 'p', '1')),
             'the version left the namespace')
        rc, res, out = gc()
        t.ok(rc == 0 and res and res['versions_freed'] == 0,
             'mreg gc (another process) while it is open frees nothing',
             out)
        got, err = read_fd(fd)
        t.ok(err is None and got == data,
             'the open descriptor reads every byte of the removed version',
             'errno %r after %d of %d bytes, %s' % (
                 err, len(got), SIZE,
                 'right' if data.startswith(got) else 'WRONG'))
        r = m.mreg('fsck', '--full')
        t.eq(r.returncode, 0, 'fsck --full is clean while it is open')
    finally:
        os.close(fd)
    # the daemon drops released pins lazily (registry_tick, every 2 s): gc
    # frees the version within a few seconds of the close (waited for up
    # to 60 s on a loaded machine)
    freed = False
    end = time.monotonic() + 60
    while not freed and time.monotonic() < end:
        rc, res, out = gc()
        freed = rc == 0 and res and res['versions_freed'] == 1
        if not freed:
            time.sleep(0.5)
    t.ok(freed, 'after the close, gc frees the version', out)
    r = m.mreg('fsck', '--full')
    t.eq(r.returncode, 0, 'fsck --full is clean')


def main():
    sys.exit(run_suite(t, m, 'gc and pins', m.start, [
        ('gc keeps an open removed version', test_pin),
    ]))


if __name__ == '__main__':
    main()
