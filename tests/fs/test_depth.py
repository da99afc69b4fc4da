"""How deep directories nest in a version (issue 11): one limit,
REG_DEPTH_MAX = 1024 directories below the version's directory, for
mkdir, for a rename that moves a directory deeper, for seal and for
mreg push (a local tree, and through the mount), with ENAMETOOLONG beyond
it. A tree at the limit seals, and fsck of it is clean.
"""
import errno
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mountlib import Mount, Tap, run_suite  # noqa

LIMIT = 1024

t = Tap()
m = Mount('depth')


def chain(top_fd, n, name='x'):
    """Makes n directories, each in the one before, below top_fd;
    returns a descriptor of the deepest (the caller closes it)."""
    fd = os.dup(top_fd)
    for _ in range(n):
        os.mkdir(name, dir_fd=fd)
        nfd = os.open(name, os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
        os.close(fd)
        fd = nfd
    return fd


def opendir(path):
    return os.open(path, os.O_RDONLY | os.O_DIRECTORY)


def test_mkdir():
    os.mkdir(m.path('models', 'd'))
    os.mkdir(m.path('models', 'd', '1'))
    v = opendir(m.path('models', 'd', '1'))
    try:
        fd = chain(v, LIMIT)
    finally:
        os.close(v)
    try:
        t.errno(errno.ENAMETOOLONG, 'mkdir %d directories deep: '
                'ENAMETOOLONG' % (LIMIT + 1), os.mkdir, 'y', dir_fd=fd)
        f = os.open('f', os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd)
        os.write(f, b'deep')
        os.close(f)
        t.ok(True, 'a file in the deepest directory')
        os.symlink('../x', 'l', dir_fd=fd)
        t.ok(True, 'a symlink there that stays inside')
    finally:
        os.close(fd)
    r = m.mreg('seal', 'd', '1')
    t.eq(r.returncode, 0, 'a draft %d directories deep seals' % LIMIT)
    if r.returncode:
        t.diag(r.stderr)
    r = m.mreg('fsck', '--full')
    t.eq((r.returncode, r.stdout.strip()), (0, 'clean'),
         'fsck --full of it is clean')
    p = m.path('models', 'd', '1', *(['x'] * LIMIT), 'f')
    with open(p, 'rb') as f:
        t.eq(f.read(), b'deep', 'the deepest file reads back through one '
             'path')


def test_rename():
    d2 = m.path('models', 'd', '2')
    os.mkdir(d2)
    os.makedirs(os.path.join(d2, 'a', 'b', 'c'))
    v = opendir(d2)
    deep = chain(v, LIMIT - 2)                  # at depth 1022
    mid = os.open('..', os.O_RDONLY | os.O_DIRECTORY, dir_fd=deep)
    try:
        t.errno(errno.ENAMETOOLONG, 'rename of a/b/c into depth %d (c '
                'would be at %d): ENAMETOOLONG' % (LIMIT - 2, LIMIT + 1),
                os.rename, 'a', 'a', src_dir_fd=v, dst_dir_fd=deep)
        t.ok(os.path.isdir(os.path.join(d2, 'a', 'b', 'c')),
             'and the tree stays where it was')
        os.rename('a', 'a', src_dir_fd=v, dst_dir_fd=mid)
        t.ok(True, 'rename of it into depth %d (c at the limit) works' %
             (LIMIT - 3))
        c = os.open('a/b/c', os.O_RDONLY | os.O_DIRECTORY, dir_fd=mid)
        try:
            t.errno(errno.ENAMETOOLONG, 'mkdir in c then: ENAMETOOLONG',
                    os.mkdir, 'd', dir_fd=c)
        finally:
            os.close(c)
        os.rename('a', 'a', src_dir_fd=mid, dst_dir_fd=v)
        t.ok(os.path.isdir(os.path.join(d2, 'a', 'b', 'c')),
             'moving it up again works')
    finally:
        os.close(v)
        os.close(deep)
        os.close(mid)


def local_tree(n):
    top = os.path.join(m.tmp, 'tree%d' % n)
    path = os.path.join(top, *(['x'] * n))
    subprocess.run(['mkdir', '-p', path], check=True)
    with open(os.path.join(path, 'f'), 'w') as f:
        f.write('bottom')
    return top


def test_push():
    r = m.mreg('push', 'p', local_tree(LIMIT))
    t.eq((r.returncode, r.stdout.strip()), (0, '1'),
         'mreg push of a tree %d directories deep' % LIMIT)
    if r.returncode:
        t.diag(r.stderr)
    top = local_tree(LIMIT + 1)
    r = m.mreg('push', 'p', top)
    t.eq(r.returncode, 1, 'mreg push of a tree %d deep fails' % (LIMIT + 1))
    t.ok(r.stderr.startswith("mreg: push: '%s/" % top) and
         'is nested too deep (more than %d directories)' % LIMIT in
         r.stderr, 'and says why', r.stderr[-200:])
    r = m.mreg('--store', m.mnt, 'push', 'p', top)
    t.eq(r.returncode, 1, 'through the mount too')
    t.eq(sorted(os.listdir(m.path('models', 'p'))), ['1', 'stages'],
         'no version was made of it, no draft is left')
    for n in (LIMIT, LIMIT + 1):
        subprocess.run(['rm', '-rf', os.path.join(m.tmp, 'tree%d' % n)])


def main():
    # Each mkdir checks its depth by walking up its parents: 1,024 deep,
    # half a million index reads, minutes of round trips to PostgreSQL.
    # The rule and its code are the same on either index.
    if t.on_pg('directories 1,024 deep', 'a mkdir at depth d reads its '
               'd parents: minutes over PostgreSQL (the main run has it)'):
        sys.exit(t.done())
    sys.exit(run_suite(t, m, 'depth', m.start, [
        ('mkdir', test_mkdir),
        ('rename', test_rename),
        ('push', test_push),
    ]))


if __name__ == '__main__':
    main()
