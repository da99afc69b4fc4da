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
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mountlib import MREG, Mount, Tap, run, run_suite  # noqa

t = Tap()
m = Mount('namespace')


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


def main():
    sys.exit(run_suite(t, m, 'namespace', m.start, [
        ('symlink escape by rename', test_link_escape),
        ('errno and times', test_errno_times),
    ]))


if __name__ == '__main__':
    main()
