"""A store path inside an mregfs mount (issue 10, "The CLI must not create
or damage what it was not asked to"): `mreg --store MNT/models ls` once
opened LMDB there, and its files became versions of the registry. A path
inside a mount, other than the mount's root (which mreg uses through the
mount), is refused by every command, by init and by mregfs, and nothing is
made in the mount.
"""
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mountlib import (MREG, MREGFS, FUSERMOUNT, Mount, Tap,  # noqa: E402
                      mountinfo_has, run, run_suite)

t = Tap()
m = Mount('storepaths')
empty = os.path.join(m.tmp, 'empty.conf')
other = os.path.join(m.tmp, 'other')


def tree(top):
    out = []
    for root, dirs, files in os.walk(top):
        for n in sorted(dirs + files):
            out.append(os.path.relpath(os.path.join(root, n), top))
    return sorted(out)


def mreg(*args):
    return run([MREG, '-c', empty] + list(args))


def test_inside():
    open(empty, 'w').close()
    os.mkdir(m.path('models', 'm'))
    os.mkdir(m.path('models', 'm', '1'))
    before = tree(m.mnt)
    for where, args in (
            ('models', ('ls',)), ('models', ('push', 'x', empty)),
            ('models/m', ('ls',)), ('models/m/1', ('fsck',)),
            ('models/new', ('init',)), ('.mreg', ('stats',))):
        path = m.path(*where.split('/'))
        r = mreg('--store', path, *args)
        t.ok(r.returncode == 1 and
             r.stderr.startswith("mreg: %s: '%s' is inside the mregfs mount "
                                 "'%s'" % (args[0], path, m.mnt)),
             'mreg --store MNT/%s %s: refused, naming the mount' %
             (where, args[0]), r.stderr)
    t.eq(tree(m.mnt), before, 'nothing was made or registered in the mount')
    r = mreg('--store', m.mnt, 'ls', 'm')
    t.ok(r.returncode == 0 and r.stdout.split()[-1:] != [],
         'the mount\'s root works (through the mount)', r.stderr)
    os.mkdir(other)
    r = run([MREGFS, '--store', m.path('models', 'new'), other])
    if mountinfo_has(other):
        subprocess.run([FUSERMOUNT, '-u', '-z', other])
    t.ok(r.returncode == 1 and 'is inside the mregfs mount' in r.stderr,
         'mregfs --store MNT/models/new: refused', r.stderr)
    t.eq(tree(m.mnt), before, 'and nothing was made')


def main():
    sys.exit(run_suite(t, m, 'store paths', m.start, [
        ('store paths inside a mount', test_inside),
    ]))


if __name__ == '__main__':
    main()
