"""Refusals through the mount are audited (SPEC §3, issue 11): cp onto a
sealed version (a new name: create; an existing file: open for writing),
append to a file in it and rm of one (EROFS), mkdir and chmod in it, rmdir
of a staged version (EBUSY); each record names the op, the model, the
version, the caller's pid and the reason. Identical refusals from one
process are coalesced: rm -rf over a sealed tree of 300 files writes a
handful of records whose counts add up to every refusal it met.
"""
import errno
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mountlib import Mount, Tap, run_suite  # noqa: E402

FILES = 100   # per directory, three directories

t = Tap()
m = Mount('refusals')
empty = os.path.join(m.tmp, 'empty.conf')


def v1(*p):
    return m.path('models', 'big', '1', *p)


def audit():
    """The records, read on the store (the daemon stopped: every
    coalesced count written)."""
    r = m.mreg('-c', empty, 'audit')
    return [json.loads(ln) for ln in r.stdout.splitlines() if ln.strip()]


def setup():
    open(empty, 'w').close()
    m.start()
    os.makedirs(v1())
    for d in range(3):
        os.mkdir(v1('d%d' % d))
        for i in range(FILES):
            with open(v1('d%d' % d, 'f%d' % i), 'wb') as f:
                f.write(b'%d %d\n' % (d, i))
    with open(v1('top'), 'wb') as f:
        f.write(b'top\n')
    os.symlink('../1', m.path('models', 'big', 'stages', 'Production'))


def err(fn, *args):
    try:
        fn(*args)
    except OSError as e:
        return errno.errorcode[e.errno]
    return 'ok'


def test_each():
    t.eq(err(open, v1('new.bin'), 'wb'), 'EROFS',
         'cp onto the sealed version: EROFS')
    t.eq(err(open, v1('top'), 'ab'), 'EROFS', 'append to a file in it')
    t.eq(err(os.unlink, v1('d0', 'f0')), 'EROFS', 'rm of a file in it')
    t.eq(err(os.mkdir, v1('x')), 'EROFS', 'mkdir in it')
    t.eq(err(os.chmod, v1('top'), 0o644), 'EROFS', 'chmod u+w of a file')
    t.eq(err(os.rmdir, v1()), 'EBUSY', 'rmdir of the staged version')
    t.eq(m.stop(), 0, 'the daemon stops (and writes what it coalesced)')
    me = os.getpid()
    got = {(x['op'], x.get('reason')) for x in audit()
           if x.get('result') == 'refused' and x['pid'] == me and
           x.get('model') == 'big' and x.get('version') == '1'}
    want = {('create', 'Read-only file system'),
            ('open', 'Read-only file system'),
            ('unlink', 'Read-only file system'),
            ('mkdir', 'Read-only file system'),
            ('chmod', 'Read-only file system'),
            ('rmdir', 'Device or resource busy')}
    t.eq(got, want, 'each refusal is audited with op, model, version, pid '
         'and reason')
    m.start()


def test_rm_rf():
    p = subprocess.Popen(['rm', '-rf', v1()], stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE, text=True)
    _, e = p.communicate(timeout=120)
    t.ok(p.returncode != 0 and 'Read-only file system' in e,
         'rm -rf over the sealed, staged tree fails', e[-300:])
    t.eq(len(os.listdir(v1('d1'))), FILES, 'and removed nothing')
    m.stop()
    recs = [x for x in audit() if x['pid'] == p.pid]
    unlinks = [x for x in recs if x['op'] == 'unlink']
    n = sum(x.get('count', 1) for x in unlinks)
    t.ok(n == 3 * FILES + 1, 'the unlink records count every file rm met '
         '(%d of %d)' % (n, 3 * FILES + 1), json.dumps(unlinks, indent=1))
    t.ok(len(recs) <= 8, 'in a bounded number of records (%d for %d '
         'refusals)' % (len(recs), sum(x.get('count', 1) for x in recs)),
         json.dumps(recs, indent=1))
    t.ok(any(x.get('count', 0) > 1 for x in unlinks) and
         all(x.get('model') == 'big' and x.get('version') == '1' and
             x['result'] == 'refused' for x in recs),
         'a record with a count stands for the identical refusals after '
         'the first', json.dumps(recs, indent=1))
    m.start()


def main():
    return run_suite(t, m, 'refusals through the mount', setup, [
        ('each refusal', test_each),
        ('rm -rf over a sealed tree', test_rm_rf),
    ])


if __name__ == '__main__':
    sys.exit(main())
