"""What a new user sees (issue 10, "Smaller things seen by a new user"):

  - .mreg/audit.log reports its real size, and a reader that polls it (as
    tail -f does: fstat, then read from where it was) sees new lines as
    they are appended; `tail -f` itself shows them and never says "file
    truncated";
  - .mreg/metrics reports its real size and passes `promtool check
    metrics` (HELP and TYPE lines, families not interleaved);
  - drafts show their real size and file count in `mreg ls` and
    `mreg show`, on the store and through the mount;
  - `mreg cat -o FILE` through the mount on damaged data leaves no FILE.
"""
import json
import os
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mountlib import MREG, Mount, Tap, run, run_suite  # noqa: E402

t = Tap()
m = Mount('mregdir')
empty = os.path.join(m.tmp, 'empty.conf')


def setup():
    open(empty, 'w').close()
    m.start()


def mnt_mreg(*args):
    return run([MREG, '-c', empty, '--store', m.mnt] + list(args))


def poll(fn, timeout=15):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = fn()
        if v:
            return v
        time.sleep(0.1)
    return fn()


def read_to(pid, path, size):
    """Whether process pid has path open at offset size (fdinfo's pos)."""
    d = '/proc/%d/fd' % pid
    try:
        for fd in os.listdir(d):
            if os.readlink(os.path.join(d, fd)) == path:
                with open('/proc/%d/fdinfo/%s' % (pid, fd)) as f:
                    pos = int(f.readline().split()[1])
                if pos == size:
                    return True
    except OSError:
        pass
    return False


def test_audit_log():
    log = m.path('.mreg', 'audit.log')
    os.mkdir(m.path('models', 'first'))
    with open(log, 'rb') as f:
        data = f.read()
    t.eq(os.stat(log).st_size, len(data), 'stat shows the size of '
         'audit.log (%d bytes)' % len(data))
    # a reader that polls, as tail -f does
    fd = os.open(log, os.O_RDONLY)
    try:
        pos = len(os.read(fd, 1 << 20))
        sizes = [os.fstat(fd).st_size]
        os.mkdir(m.path('models', 'appended'))
        grown = poll(lambda: os.fstat(fd).st_size > pos)
        sizes.append(os.fstat(fd).st_size)
        t.ok(grown, 'fstat of the open file shows it grow', sizes)
        os.lseek(fd, pos, os.SEEK_SET)
        new = os.read(fd, 1 << 20)
        t.ok(b'"model":"appended"' in new and new.endswith(b'\n') and
             new.count(b'\n') == 1,
             'reading on from where it was gives the new line', new)
        t.eq(os.fstat(fd).st_size, pos + len(new),
             'and ends where the size says')
    finally:
        os.close(fd)
    # tail -f itself
    p = subprocess.Popen(['tail', '-n', '0', '-f', log],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        # tail must have read to the end before the new line comes (a
        # line before where it starts is not shown): wait until its
        # descriptor of the log stands at the end
        t.ok(poll(lambda: read_to(p.pid, log, os.stat(log).st_size), 60),
             'tail -f reads audit.log to its end')
        os.mkdir(m.path('models', 'tailed'))
        os.set_blocking(p.stdout.fileno(), False)
        got = b''

        def more():
            nonlocal got
            try:
                got += os.read(p.stdout.fileno(), 65536)
            except BlockingIOError:
                pass
            return b'"model":"tailed"' in got
        t.ok(poll(more, 60), 'tail -f shows the new line', got)
    finally:
        p.terminate()
        _, err = p.communicate(timeout=10)
    t.ok(b'truncated' not in err, 'and never says "file truncated"', err)


def test_metrics():
    met = m.path('.mreg', 'metrics')
    with open(met, 'rb') as f:
        data = f.read()
    t.eq(os.stat(met).st_size, len(data), 'stat shows the size of metrics '
         '(%d bytes)' % len(data))
    promtool = shutil.which('promtool')
    if not promtool:
        t.skip('promtool check metrics', 'promtool is not installed '
               '(Debian package prometheus)')
        return
    r = subprocess.run([promtool, 'check', 'metrics'], input=data,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    t.ok(r.returncode == 0 and not r.stdout.strip() and
         not r.stderr.strip(), 'promtool check metrics accepts it, without '
         'a lint', (r.stdout + r.stderr).decode())


def test_drafts():
    d = m.path('models', 'dr', '3')
    os.makedirs(os.path.join(d, 'sub'))
    for name, size in (('a.bin', 1000), (os.path.join('sub', 'b.bin'), 234)):
        with open(os.path.join(d, name), 'wb') as f:
            f.write(b'x' * size)
    want = (1234, 2)
    for what, route in (('on the store', lambda *a: m.mreg('-c', empty, *a)),
                        ('through the mount', mnt_mreg)):
        r = route('--json', 'ls', 'dr')
        v = json.loads(r.stdout)[0] if r.returncode == 0 else {}
        t.eq((v.get('size'), v.get('files')), want,
             'mreg ls of a draft %s: its size and files' % what)
        r = route('--json', 'show', 'dr/3')
        v = json.loads(r.stdout) if r.returncode == 0 else {}
        t.eq((v.get('size'), v.get('files')), want,
             'mreg show of a draft %s: its size and files' % what)
        r = route('show', 'dr/3')
        t.ok(' files ' in r.stdout and ' 2\n' in r.stdout.split(' files ')
             [1][:40], 'mreg show prints the files %s' % what, r.stdout)
    t.eq(os.getxattr(d, 'user.mreg.size'), b'1234',
         'user.mreg.size of a draft')


def test_cat_damaged():
    src = os.path.join(m.tmp, 'hurt.bin')
    with open(src, 'wb') as f:
        f.write(os.urandom(1 << 20))
    r = m.mreg('-c', empty, 'push', 'hurt', src)
    t.eq(r.returncode, 0, 'push a file')
    if t.on_s3('cat -o of data damaged in a pack file', 'the chunks are '
               'objects in the bucket and this host\'s cache (a damaged '
               'copy of either: test-s3store, test-cache)'):
        return
    packs = sorted(os.listdir(os.path.join(m.store, 'packs')))
    pack = os.path.join(m.store, 'packs', packs[-1])
    with open(pack, 'r+b') as f:
        f.seek(os.path.getsize(pack) - 1000)
        b = f.read(1)
        f.seek(-1, os.SEEK_CUR)
        f.write(bytes([b[0] ^ 0xff]))
    out = os.path.join(m.tmp, 'got.bin')
    r = mnt_mreg('cat', 'hurt/1/hurt.bin', '-o', out)
    t.ok(r.returncode == 1 and 'damaged' in r.stderr,
         'cat -o through the mount of damaged data fails', r.stderr)
    t.eq(sorted(n for n in os.listdir(m.tmp) if 'got' in n), [],
         'and leaves no FILE (nor a temporary one)')


def main():
    sys.exit(run_suite(t, m, 'mregdir', setup, [
        ('audit.log', test_audit_log),
        ('metrics', test_metrics),
        ('drafts', test_drafts),
        ('cat -o of damaged data', test_cat_damaged),
    ]))


if __name__ == '__main__':
    main()
