"""mreg pointed at a mount (issue 4 item 3): a user who cannot read the
store gives --store the mount point, and every command works through the
file system, the daemon applying its rules: push (one file at the model
root, several files and metadata through a dot-named draft, --version),
ls, show, cat, meta, seal, promote, rollback, rm, history, audit (filters,
--verify), search, diff, stats; fsck, gc and init say they need the store.
Run as a throw-away user on an allow_other mount.
"""
import errno
import json
import os
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mountlib import MREG, Mount, Tap, run_suite  # noqa: E402
from userlib import Users, run_as  # noqa: E402

t = Tap()
m = Mount('climount', args=['-o', 'allow_other'])
os.chmod(m.tmp, 0o755)
users = Users()
src = os.path.join(m.tmp, 'src')
empty = os.path.join(m.tmp, 'empty.conf')
U = {}
DATA = {}


def mreg(*args):
    return run_as(U['u'], [MREG, '-c', empty, '--store', m.mnt] +
                  list(args))


def ok(r, what):
    return t.ok(r.returncode == 0, what, 'status %d\n%s%s' %
                (r.returncode, r.stdout, r.stderr))


def errno_of(fn, *args):
    """The errno fn(*args) fails with, 0 when it succeeds."""
    try:
        fn(*args)
        return 0
    except OSError as e:
        return e.errno


def fails(r, status, text, what):
    return t.ok(r.returncode == status and text in r.stderr, what,
                'status %d\n%s%s' % (r.returncode, r.stdout, r.stderr))


def write(name, data):
    p = os.path.join(src, name)
    os.makedirs(os.path.dirname(p), exist_ok=True)
    with open(p, 'wb') as f:
        f.write(data)
    DATA[name] = data
    return p


def setup():
    U['u'] = users.user('cli')
    os.mkdir(src)
    open(empty, 'w').close()
    write('f.bin', os.urandom(300000))
    write('a.bin', b'a' * 1000)
    write('b.bin', b'b' * 1000)
    write('ckpt/w.bin', os.urandom(70000))
    write('ckpt/sub/x.txt', b'x\n')
    os.symlink('w.bin', os.path.join(src, 'ckpt', 'link'))
    for d, dirs, files in os.walk(m.tmp):
        os.chmod(d, 0o755)
        for f in files:
            os.chmod(os.path.join(d, f), 0o644)
    m.start()


def test_push():
    f = os.path.join(src, 'f.bin')
    r = mreg('push', 'm1', f)
    t.eq((r.returncode, r.stdout.strip()), (0, '1'),
         'push of one file through the mount prints version 1')
    with open(m.path('models', 'm1', '1', 'f.bin'), 'rb') as g:
        t.ok(g.read() == DATA['f.bin'], 'the version holds the file')
    r = mreg('push', 'm1', f)
    t.eq(r.stdout.strip(), '2', 'the same file again: version 2')
    r = mreg('push', 'm1', os.path.join(src, 'ckpt'), '--metric',
             'auc=0.93', '--tag', 'team=risk', '--param', 'lr=0.1',
             '--lineage', 'git_commit=abc123', '--description', 'a ckpt')
    t.ok((r.returncode, r.stdout.strip()) == (0, '3'),
         'a directory with metadata: version 3', r.stderr)
    t.eq(sorted(os.listdir(m.path('models', 'm1', '3'))),
         ['link', 'sub', 'w.bin'], 'its content is the version\'s tree')
    t.eq(os.readlink(m.path('models', 'm1', '3', 'link')), 'w.bin',
         'a symlink inside is kept')
    t.eq(os.getxattr(m.path('models', 'm1', '3'), 'user.mreg.param.lr'),
         b'0.1', 'params are set before the version is sealed')
    t.ok(os.stat(m.path('models', 'm1', '3')).st_mode & 0o222 == 0,
         'and it is sealed')
    r = mreg('push', 'm1', os.path.join(src, 'a.bin'),
             os.path.join(src, 'b.bin'))
    t.eq(r.stdout.strip(), '4', 'two files: version 4')
    t.eq(sorted(os.listdir(m.path('models', 'm1', '4'))),
         ['a.bin', 'b.bin'], 'holding both')
    r = mreg('push', 'm1', f, '--version', 'v5')
    t.eq(r.stdout.strip(), 'v5', '--version v5')
    r = mreg('push', 'm1', f, '--version', 'v5')
    fails(r, 1, "version 'm1/v5' already exists",
          'pushing to an existing version fails')
    ok(mreg('rm', 'm1', '4'), 'rm of version 4')
    r = mreg('push', 'm1', f, '--tag', 'k=v')
    t.eq(r.stdout.strip(), '5', 'a removed number is not reused (a draft '
         'pushed after 4 was removed becomes 5)')
    ok(mreg('rm', 'm1', '5'), 'rm of version 5')
    r = mreg('push', 'm1', f)
    t.eq(r.stdout.strip(), '6', 'nor by the daemon (a file at the model '
         'root becomes 6)')
    bad = os.path.join(src, 'bad')
    os.mkdir(bad)
    os.chmod(bad, 0o755)
    os.symlink('/etc/passwd', os.path.join(bad, 'out'))
    r = mreg('push', 'm1', bad)
    fails(r, 1, "cannot push to 'm1': symlink '%s/out' points outside the "
          "version" % bad, 'a symlink leaving the version: refused, named')
    left = [n for n in os.listdir(m.path('models', 'm1')) if
            n.startswith('.')]
    t.eq(left, [], 'no temporary name is left at the model root')
    os.mkdir(m.path('models', 'rootmodel'))
    r = mreg('push', 'rootmodel', f)
    fails(r, 1, "'rootmodel': permission denied: '%s' is drwxr-xr-x, owned "
          "by root" % m.path('models', 'rootmodel'),
          'pushing to another user\'s model: the mode bits refuse')
    os.rmdir(m.path('models', 'rootmodel'))


def test_push_numbers():
    """The daemon numbers a pushed draft (user.mreg.register): pushers
    running side by side get distinct, consecutive numbers."""
    a, b = os.path.join(src, 'a.bin'), os.path.join(src, 'b.bin')
    procs = [subprocess.Popen(
        [MREG, '-c', empty, '--store', m.mnt, 'push', 'mp', a, b, '--tag',
         'k=%d' % i], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, preexec_fn=U['u'].preexec(0o022)) for i in range(3)]
    got = []
    for p in procs:
        out, err = p.communicate(timeout=120)
        got.append((p.returncode, out.strip()))
    t.eq(sorted(got), [(0, '1'), (0, '2'), (0, '3')],
         'three pushes side by side: versions 1, 2 and 3')
    t.eq(sorted(os.listdir(m.path('models', 'mp'))),
         ['1', '2', '3', 'stages'], 'no draft is left')
    d = m.path('models', 'mp', '.d')
    os.mkdir(d)
    t.eq(errno_of(os.getxattr, d, 'user.mreg.register'), errno.ENODATA,
         'the register control reads as no attribute')
    os.setxattr(d, 'user.mreg.register', b'')
    t.eq(sorted(os.listdir(m.path('models', 'mp'))),
         ['1', '2', '3', '4', 'stages'], 'setxattr register: .d is 4')
    t.ok(os.stat(m.path('models', 'mp', '4')).st_mode & 0o222 == 0,
         'and sealed')
    for path, what in ((m.path('models', 'mp', '4'), 'a version'),
                       (m.path('models', 'mp'), 'a model')):
        t.eq(errno_of(os.setxattr, path, 'user.mreg.register', b''),
             errno.EINVAL, 'register of %s is refused' % what)


def test_read():
    r = mreg('ls', '--json')
    d = json.loads(r.stdout) if r.returncode == 0 else []
    t.eq([(x['model'], x['versions']) for x in d], [('m1', 5)],
         'ls --json: the model and its versions')
    r = mreg('ls', 'm1')
    t.ok(r.returncode == 0 and '\n3 ' in r.stdout and 'sealed' in r.stdout,
         'ls MODEL lists the versions', r.stdout)
    r = mreg('ls', 'm1/3', '--json')
    d = json.loads(r.stdout) if r.returncode == 0 else []
    t.eq(sorted(x['path'] for x in d),
         ['link', 'sub', 'sub/x.txt', 'w.bin'], 'ls MODEL/VERSION: the tree')
    t.ok(all(len(x.get('digest', 'x' * 32)) == 32 for x in d),
         'files with their digests', r.stdout)
    r = mreg('show', 'm1/3', '--json')
    d = json.loads(r.stdout) if r.returncode == 0 else {}
    t.eq((d.get('metrics'), d.get('tags'), d.get('params'),
          d.get('lineage'), d.get('description'), d.get('files')),
         ({'auc': 0.93}, {'team': 'risk'}, {'lr': '0.1'},
          {'git_commit': 'abc123'}, 'a ckpt', 2),
         'show --json: metadata and facts')
    t.ok(d.get('facts', {}).get('digest', '').startswith('xxh128:'),
         'with the version digest')
    r = mreg('cat', 'm1/3/sub/x.txt')
    t.eq(r.stdout, 'x\n', 'cat MODEL/VERSION/PATH')
    r = mreg('cat', 'm1/3/nope')
    fails(r, 1, "file 'm1/3/nope' does not exist", 'cat of a missing file')
    r = mreg('ls', 'nomodel')
    fails(r, 1, "model 'nomodel' does not exist", 'ls of a missing model')
    r = mreg('diff', 'm1/1', 'm1/2')
    t.ok(r.returncode == 0 and r.stdout.startswith(
        '0 added, 0 removed, 0 changed, 1 unchanged'),
        'diff through the mount', r.stdout + r.stderr)
    r = mreg('stats', '--json')
    d = json.loads(r.stdout) if r.returncode == 0 else {}
    s = json.loads(m.mreg('-c', empty, 'stats', '--json').stdout)
    t.eq((d.get('models'), d.get('total')), (s['models'], s['total']),
         'stats --json through the mount: the numbers of the store')
    r = mreg('stats')
    store = m.mreg('-c', empty, 'stats')
    t.ok(r.returncode == 0 and r.stdout.startswith('MODEL ') and
         r.stdout.split('\n\n')[0] == store.stdout.split('\n\n')[0] and
         '\nstore %s\n' % m.mnt in r.stdout,
         'stats through the mount prints the table, as on the store',
         r.stdout + r.stderr + '\n--- on the store:\n' + store.stdout)


def test_meta_seal():
    ok(mreg('meta', 'm1', 'set', 'description', 'the churn model'),
       'meta set on the model (its owner may write it)')
    r = mreg('meta', 'm1', 'list', '--json')
    t.eq(json.loads(r.stdout).get('description') if r.returncode == 0
         else None, 'the churn model', 'meta list')
    r = mreg('meta', 'm1/3', 'set', 'tag.x', 'y')
    fails(r, 1, 'permission denied', 'a sealed version shows no write '
          'bits: the kernel refuses its metadata to a user')
    os.makedirs(m.path('models', 'm1', 'd1'))  # root's draft
    os.chmod(m.path('models', 'm1', 'd1'), 0o777)
    ok(mreg('meta', 'm1/d1', 'set', 'param.a', '1'), 'meta set on a draft')
    ok(mreg('meta', 'm1/d1', 'unset', 'param.a'), 'meta unset on a draft')
    r = mreg('meta', 'm1/d1', 'unset', 'param.a')
    fails(r, 1, "has no 'param.a'", 'unset of a missing key')
    r = mreg('seal', 'm1', 'd1')
    fails(r, 1, 'not permitted', 'seal (chmod a-w) of another user\'s '
          'draft is refused')
    r = run_as(U['u'], ['mkdir', m.path('models', 'm1', 'd2')])
    ok(mreg('seal', 'm1/d2'), 'seal of one\'s own draft')
    t.ok(os.stat(m.path('models', 'm1', 'd2')).st_mode & 0o222 == 0,
         'it shows no write bits')
    ok(mreg('seal', 'm1/d2'), 'sealing it again succeeds')


def test_stages():
    ok(mreg('promote', 'm1', '3', 'Staging'), 'promote a new stage')
    ok(mreg('promote', 'm1/2', 'Staging'), 'promote over it')
    t.eq(os.readlink(m.path('models', 'm1', 'stages', 'Staging')), '../2',
         'Staging -> ../2')
    t.eq([n for n in os.listdir(m.path('models', 'm1', 'stages'))],
         ['Staging'], 'no temporary stage is left')
    r = mreg('promote', 'm1', '99', 'Staging')
    fails(r, 1, "version 'm1/99' does not exist",
          'promote of a missing version')
    r = mreg('history', 'm1', 'Staging', '--json')
    h = json.loads(r.stdout) if r.returncode == 0 else []
    t.eq([(x['from'], x['to'], x['user']) for x in h],
         [(None, '3', U['u'].name), ('3', '2', U['u'].name)],
         'history MODEL STAGE from the audit trail')
    r = mreg('rollback', 'm1', 'Staging')
    t.eq((r.returncode, r.stdout.strip()), (0, '3'),
         'rollback prints the version rolled back to')
    t.eq(os.readlink(m.path('models', 'm1', 'stages', 'Staging')), '../3',
         'Staging -> ../3 again')
    r = mreg('rollback', 'm1', 'Nope')
    fails(r, 1, "stage 'Nope' of model 'm1' does not exist",
          'rollback of a missing stage')
    r = mreg('cat', 'm1/stages/Staging/sub/x.txt')
    t.eq(r.stdout, 'x\n', 'cat through a stage')
    r = mreg('search', 'metric.auc >= 0.9 and tag.team = risk and '
             'stage = Staging')
    t.eq(r.stdout, 'm1/3\n', 'search evaluates through the mount')
    r = mreg('search', 'metric.auc >=')
    t.eq(r.returncode, 2, 'a malformed query is a usage error')
    r = mreg('rm', 'm1', '3')
    fails(r, 1, 'in use: a stage points at it (Staging)',
          'rm of a staged version: in use')
    ok(mreg('rm', 'm1', '--stage', 'Staging'), 'rm --stage')
    ok(mreg('rm', 'm1', '3'), 'then rm of the version')


def test_history_is_the_daemons():
    """The CLI through a mount decides nothing the daemon decides: the
    history it shows is .mreg/history/M, the store's own records."""
    stages = m.path('models', 'm1', 'stages')
    ok(mreg('promote', 'm1', '2', 'Canary'), 'promote Canary')
    ok(mreg('promote', 'm1', '1', 'Prod'), 'promote Prod')
    # mv -T: a stage renamed over another is a move on the store (the
    # history that the audit trail gave said remove)
    run_as(U['u'], ['mv', '-T', os.path.join(stages, 'Canary'),
                    os.path.join(stages, 'Prod')])
    t.eq(os.readlink(os.path.join(stages, 'Prod')), '../2',
         'mv -T Canary Prod: Prod -> ../2')
    via = mreg('history', 'm1', '--json')
    on = subprocess.run([MREG, '-c', empty, '--store', m.store, 'history',
                         'm1', '--json'], capture_output=True, text=True)
    hv = json.loads(via.stdout) if via.returncode == 0 else None
    hs = json.loads(on.stdout) if on.returncode == 0 else []
    t.ok(hv == hs and len(hs) >= 5, 'history through the mount equals the '
         "store's", 'mount %s\nstore %s\n%s' % (via.stdout, on.stdout,
                                                 via.stderr))
    t.eq([(x['stage'], x['action']) for x in hs[-2:]],
         [('Prod', 'promote'), ('Canary', 'move')],
         'the last change: Canary moved (over Prod; the trail said remove)')
    p = m.path('.mreg', 'history', 'm1')
    with open(p) as f:
        lines = [json.loads(x) for x in f]
    t.eq([(x['stage'], x['from'], x['to'], x['action']) for x in lines],
         [(x['stage'], x['from'] or '', x['to'] or '', x['action'])
          for x in hs], '.mreg/history/m1 holds those records, a line each')
    with open(p, 'rb') as f:
        data = f.read()
    t.eq(os.stat(p).st_size, len(data), 'stat gives the size read')
    t.ok('m1' in os.listdir(m.path('.mreg', 'history')),
         '.mreg/history lists the model')
    t.ok(not os.path.exists(m.path('.mreg', 'history', 'nope')),
         'no history file for a model that does not exist')
    try:
        open(p, 'w')
        t.ok(False, 'a history file cannot be written')
    except PermissionError:
        t.ok(True, 'a history file cannot be written')
    # the rollback control: the daemon decides, nothing is stored
    r = mreg('rollback', 'm1', 'Prod')
    t.eq((r.returncode, r.stdout.strip()), (0, '1'),
         "rollback through the mount: the daemon's walk back (1)")
    h = json.loads(mreg('history', 'm1', 'Prod', '--json').stdout)
    t.eq([(x['from'], x['to'], x['action']) for x in h[-1:]],
         [('2', '1', 'rollback')], 'recorded by the daemon as a rollback')
    r = mreg('rollback', 'm1', 'Prod')
    t.eq(r.returncode, 1, 'no earlier version to go back to: refused')
    t.ok('no earlier version' in r.stderr, 'it says so', r.stderr)
    t.eq(errno_of(os.getxattr, stages, 'user.mreg.rollback'),
         errno.ENODATA, 'the rollback control reads as no attribute')
    t.ok('user.mreg.rollback' not in os.listxattr(stages),
         'and is not listed')
    t.eq(errno_of(os.setxattr, m.path('models', 'm1', '2'),
                  'user.mreg.rollback', b'Prod'), errno.EINVAL,
         'the control on a version is EINVAL')


def test_audit_and_store_only():
    r = mreg('audit', '--model', 'm1', '--user', U['u'].name)
    recs = [json.loads(x) for x in r.stdout.splitlines()]
    t.ok(r.returncode == 0 and len(recs) > 10 and
         all(x['model'] == 'm1' and x['uid'] == U['u'].uid for x in recs),
         'audit --model --user filter the trail', r.stderr)
    r2 = mreg('audit', '--since', str(recs[-1]['seq']))
    t.eq([json.loads(x)['seq'] for x in r2.stdout.splitlines()][:1],
         [recs[-1]['seq']], 'audit --since SEQ starts there')
    r = mreg('audit', '--verify')
    t.ok(r.returncode == 0 and r.stdout.startswith('intact: '),
         'audit --verify through the mount', r.stdout + r.stderr)
    for cmd in ('fsck', 'gc', 'init'):
        fails(mreg(cmd), 1, 'needs the store', cmd + ' says it needs the '
              'store')


def main():
    return run_suite(t, m, 'cli through a mount', setup, [
        ('push', test_push),
        ('reading', test_read),
        ('metadata and seal', test_meta_seal),
        ('stages', test_stages),
        ('history', test_history_is_the_daemons),
        ('audit', test_audit_and_store_only),
        ('push numbers', test_push_numbers),
    ], cleanup=(users.close,
                lambda: shutil.rmtree(src, ignore_errors=True)))


if __name__ == '__main__':
    sys.exit(main())
