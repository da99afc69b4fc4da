"""Namespace integrity through the mount (issue 10, "Namespace integrity").

  - symlink escape by rename: a symlink made deep in a draft, moved (itself
    or a directory holding it) to a shallower place, would point outside
    its version: the rename is EINVAL, and no reader of the stage ever
    reads a host file through it;
  - errno: `mv stages/Staging stages/Production` (no -T) moves the stage
    into the sealed version: EROFS, and both stages stay; atime set with
    utimensat in a draft is kept;
  - stage names: a stage that differs from an existing one only in case
    is refused (EEXIST), by every route;
  - rollback walks back through the stage's history, each step recorded
    as a rollback whatever route made it; history and hooks never show
    the temporary stage names of `ln -sfn` and of mreg through a mount.
"""
import errno
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mountlib import MREG, Mount, Tap, run, run_suite  # noqa

t = Tap()
m = Mount('namespace')
hooks_out = os.path.join(m.tmp, 'hooks.out')
empty = os.path.join(m.tmp, 'empty.conf')


def setup():
    hook = os.path.join(m.tmp, 'hook.sh')
    with open(hook, 'w') as f:
        f.write('#!/bin/sh\necho "$MREG_MODEL $MREG_STAGE $MREG_VERSION '
                '$MREG_PREVIOUS" >>%s\n' % hooks_out)
    os.chmod(hook, 0o755)
    with open(os.path.join(m.tmp, 'mreg.conf'), 'w') as f:
        f.write('[stage Production]\nprotect = true\n'
                '[hooks]\non_promote = %s\n' % hook)
    open(empty, 'w').close()
    m.args = ['-c', os.path.join(m.tmp, 'mreg.conf')]
    m.start()


def mnt_mreg(*args):
    """mreg through the mount (the daemon applies every rule)."""
    return run([MREG, '-c', empty, '--store', m.mnt] + list(args))


def hook_lines(model):
    try:
        with open(hooks_out) as f:
            return [ln.split() for ln in f if ln.split()[0] == model]
    except OSError:
        return []


def wait_hook(model, stage, version, timeout=60):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if [model, stage, version] in [x[:3] for x in hook_lines(model)]:
            return True
        time.sleep(0.05)
    return False


def test_link_escape():
    model = m.path('models', 'esc')
    os.mkdir(model)
    d = os.path.join(model, '1')
    deep = os.path.join(d, 'a', 'b', 'c', 'd', 'e', 'f', 'g', 'h')
    os.makedirs(deep)
    os.symlink('../../../../../../../../etc/hostname',
               os.path.join(deep, 'link'))
    t.ok(True, 'a link with 8 .. made 8 levels deep')
    t.errno(errno.EINVAL, 'the link renamed to the version root: EINVAL',
            os.rename, os.path.join(deep, 'link'), os.path.join(d, 'link'))
    t.errno(errno.EINVAL, 'the directory holding it renamed to the root: '
            'EINVAL', os.rename, os.path.join(d, 'a', 'b', 'c', 'd'),
            os.path.join(d, 'd'))
    r = run(['mv', os.path.join(d, 'a', 'b'), os.path.join(d, 'b')])
    t.ok(r.returncode != 0 and os.path.isdir(os.path.join(d, 'a', 'b')),
         'mv of a directory further up fails', r.stderr)
    t.eq(os.readlink(os.path.join(deep, 'link')),
         '../../../../../../../../etc/hostname', 'the link stays where it '
         'was')
    os.mkdir(os.path.join(d, 'a', 'b', 'y'))
    os.rename(os.path.join(d, 'a', 'b', 'c'),
              os.path.join(d, 'a', 'b', 'y', 'c'))
    t.ok(True, 'a move deeper is fine')
    t.errno(errno.EINVAL, 'and a move out from there is refused',
            os.rename, os.path.join(d, 'a', 'b', 'y', 'c'),
            os.path.join(d, 'x'))
    os.symlink('../1', m.path('models', 'esc', 'stages', 'Production'))
    leaked = []
    for root, dirs, files in os.walk(m.path('models', 'esc', 'stages',
                                            'Production')):
        for n in files + dirs:
            p = os.path.join(root, n)
            if os.path.islink(p):
                target = os.path.realpath(p)
                if not target.startswith(m.mnt + os.sep):
                    leaked.append('%s -> %s' % (p, target))
    t.ok(not leaked, 'promoted, no link of the version points outside the '
         'mount', '\n'.join(leaked))
    r = m.mreg('fsck')
    t.eq(r.returncode, 0, 'fsck is clean')


def test_errno_times():
    model = m.path('models', 'mv')
    os.mkdir(model)
    for v in ('1', '2'):
        os.mkdir(os.path.join(model, v))
        with open(os.path.join(model, v, 'w.bin'), 'wb') as f:
            f.write(v.encode())
    stages = os.path.join(model, 'stages')
    os.symlink('../1', os.path.join(stages, 'Staging'))
    os.symlink('../2', os.path.join(stages, 'Production'))
    t.errno(errno.EROFS, 'rename of a stage into the sealed version a '
            'stage points at: EROFS', os.rename,
            os.path.join(stages, 'Staging'),
            os.path.join(stages, 'Production', 'Staging'))
    r = run(['mv', os.path.join(stages, 'Staging'),
             os.path.join(stages, 'Production')])
    t.ok(r.returncode != 0 and 'Read-only file system' in r.stderr,
         'mv without -T onto a stage says "Read-only file system"',
         r.stderr)
    t.eq((os.readlink(os.path.join(stages, 'Staging')),
          os.readlink(os.path.join(stages, 'Production'))),
         ('../1', '../2'), 'and leaves both stages as they were')

    os.mkdir(os.path.join(model, '3'))
    f = os.path.join(model, '3', 'f')
    with open(f, 'wb') as fh:
        fh.write(b'data')
    os.utime(f, ns=(1000000000123456789, 1500000000987654321))
    st = os.stat(f)
    t.eq((st.st_atime_ns, st.st_mtime_ns),
         (1000000000123456789, 1500000000987654321),
         'utimensat in a draft: stat shows the atime and mtime set')


def test_stage_case():
    model = m.path('models', 'iris')
    os.mkdir(model)
    os.mkdir(os.path.join(model, '1'))
    stages = os.path.join(model, 'stages')
    os.symlink('../1', os.path.join(stages, 'Production'))
    t.errno(errno.EEXIST, 'ln -s ../1 stages/production beside Production: '
            'EEXIST', os.symlink, '../1', os.path.join(stages, 'production'))
    r = run(['ln', '-sfn', '../1', os.path.join(stages, 'PRODUCTION')])
    t.ok(r.returncode != 0, 'ln -sfn to PRODUCTION fails', r.stderr)
    r = mnt_mreg('promote', 'iris', '1', 'production')
    t.eq((r.returncode, r.stderr.strip()),
         (1, "mreg: promote: stage 'production' of model 'iris' would "
          "differ from an existing stage only in case (stage names are "
          "unique regardless of case)"),
         'mreg promote iris 1 production through the mount: refused')
    r = m.mreg('-c', empty, 'promote', 'iris', '1', 'production')
    t.eq(r.returncode, 1, 'and on the store')
    t.eq(sorted(os.listdir(stages)), ['Production'], 'one stage only')
    os.mkdir(m.path('models', 'iris2'))
    os.mkdir(m.path('models', 'iris2', '1'))
    os.symlink('../1', m.path('models', 'iris2', 'stages', 'production'))
    t.errno(errno.EACCES, "'production' falls under [stage Production] "
            "(protect): rm is EACCES", os.unlink,
            m.path('models', 'iris2', 'stages', 'production'))


def history(route, model, stage):
    r = route('--json', 'history', model, stage)
    if r.returncode != 0:
        return r.stderr
    return ['%s %s>%s' % (e['action'], e['from'] or '', e['to'] or '')
            for e in json.loads(r.stdout)]


def test_rollback():
    model = m.path('models', 'rb')
    os.mkdir(model)
    for v in '1234':
        os.mkdir(os.path.join(model, v))
    stages = os.path.join(model, 'stages')
    prod = os.path.join(stages, 'Production')
    os.symlink('../1', prod)
    for v in '23':
        r = run(['ln', '-sfn', '../' + v, prod])
        t.eq(r.returncode, 0, 'ln -sfn ../%s stages/Production' % v)
    r = mnt_mreg('rollback', 'rb', 'Production')
    t.eq((r.returncode, r.stdout.strip()), (0, '2'),
         'mreg rollback through the mount: 2')
    r = mnt_mreg('rollback', 'rb', 'Production')
    t.eq((r.returncode, r.stdout.strip()), (0, '1'),
         'again: 1 (it walks back)')
    r = mnt_mreg('rollback', 'rb', 'Production')
    t.eq(r.returncode, 1, 'again: nothing earlier')
    want = ['promote >1', 'promote 1>2', 'promote 2>3', 'rollback 3>2',
            'rollback 2>1']
    t.eq(history(mnt_mreg, 'rb', 'Production'), want,
         'history through the mount: one record each, rollbacks as such')
    t.eq(history(m.mreg, 'rb', 'Production'), want,
         'the same on the store')
    # ln -sfn back to where the latest promotion came from: a rollback
    r = run(['ln', '-sfn', '../4', prod])
    r = run(['ln', '-sfn', '../1', prod])
    t.eq(history(m.mreg, 'rb', 'Production')[-2:],
         ['promote 1>4', 'rollback 4>1'],
         'ln -sfn back to the previous target is recorded as a rollback')
    r = m.mreg('rollback', 'rb', 'Production')
    t.ok(r.returncode == 1, 'so a rollback on the store finds nothing '
         'earlier than 1 either', r.stdout + r.stderr)
    # promotions over an existing stage by mreg: its temporary name
    os.symlink('../2', os.path.join(stages, 'Staging'))
    r = mnt_mreg('promote', 'rb', '3', 'Staging')
    t.eq(r.returncode, 0, 'mreg promote over an existing stage through the '
         'mount')
    everything = m.mreg('--json', 'history', 'rb')
    names = sorted(set(e['stage'] for e in json.loads(everything.stdout)))
    t.eq(names, ['Production', 'Staging'], 'no temporary stage name in the '
         'history on the store')
    r = mnt_mreg('--json', 'history', 'rb')
    names = sorted(set(e['stage'] for e in json.loads(r.stdout)))
    t.eq(names, ['Production', 'Staging'], 'nor through the mount')
    os.symlink('../4', os.path.join(stages, 'Marker'))
    t.ok(wait_hook('rb', 'Marker', '4'), 'the hooks ran (up to the last)')
    lines = hook_lines('rb')
    t.eq([x[1] for x in lines if x[1] not in ('Production', 'Staging',
                                              'Marker')], [],
         'no hook ran for a temporary stage name')
    t.eq(len([x for x in lines if x[1] == 'Production']), 7,
         'one hook per change of Production')


def main():
    sys.exit(run_suite(t, m, 'namespace', setup, [
        ('symlink escape by rename', test_link_escape),
        ('errno and times', test_errno_times),
        ('stage names', test_stage_case),
        ('rollback and history', test_rollback),
    ]))


if __name__ == '__main__':
    main()
