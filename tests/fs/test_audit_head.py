"""The head of the audit chain (SPEC §3, issue 4): .mreg/audit.log carries
user.mreg.head ("SEQ SHA256") so that `mreg audit --verify` pointed at a
mount also catches an edit of the LAST record, which no later record's
"prev" covers.
"""
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mountlib import MREG, Mount, Tap, pattern, run_suite  # noqa

t = Tap()
m = Mount('head')


def verify_mount():
    env = dict(os.environ, MREG_STORE=m.mnt)
    return subprocess.run([MREG, 'audit', '--verify'], env=env, text=True,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          timeout=60)


def test_head():
    os.mkdir(m.path('models', 'h'))
    with open(m.path('models', 'h', 'w.bin'), 'wb') as f:
        f.write(pattern(100000, 7))
    log = m.path('.mreg', 'audit.log')
    head = os.getxattr(log, 'user.mreg.head').decode()
    seq, digest = head.split()
    with open(log) as f:
        last = f.read().splitlines()[-1]
    t.ok('"seq":%s,' % seq in last, 'the head names the last record (%s)'
         % seq)
    t.eq(len(digest), 64, 'with a SHA-256')
    t.ok('user.mreg.head' in os.listxattr(log), 'listed by listxattr')
    r = verify_mount()
    t.eq(r.returncode, 0, 'verify through the mount: intact')
    if t.on_pg('an edited last record fails verify through the mount',
               'the check edits the LMDB environment by hand (cli/verify.sh '
               'edits the PostgreSQL row)'):
        return
    m.stop()
    db = os.path.join(m.store, 'index', 'data.mdb')
    with open(db, 'r+b') as f:
        data = f.read()
        pos = data.rfind(last.encode())
        t.ok(pos >= 0, 'the last record found in data.mdb')
        i = pos + last.index('"op":"') + 6
        f.seek(i)
        f.write(bytes([data[i] ^ 0x20]))
    m.start()
    r = verify_mount()
    t.eq(r.returncode, 3, 'an edited last record fails verify through '
         'the mount')
    t.ok('record %s is the first bad one' % seq in r.stderr,
         'and is named', r.stdout + r.stderr)


def main():
    sys.exit(run_suite(t, m, 'audit head', m.start, [
        ('the head of the chain', test_head),
    ]))


if __name__ == '__main__':
    main()
