"""Every errno the spec names, checked exactly with Python's os calls
(SPEC §1-§4, issue 3): EROFS on sealed content, EINVAL for bad names and
escaping symlinks, EPERM for hard links, device nodes, FIFOs and sockets,
ENAMETOOLONG for 256-byte names in every call that takes a name, EXDEV
across models; and the metadata as extended attributes (SPEC §4).
"""
import errno
import os
import shutil
import socket
import stat
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mountlib import Mount, Tap, pattern, run  # noqa: E402

t = Tap()
m = Mount('errno')
src = tempfile.mkdtemp(prefix='mreg-src-')
LONG = 'n' * 256
OK255 = 'k' * 255


def model(*p):
    return m.path('models', 'm', *p)


def write(path, data):
    with open(path, 'wb') as f:
        f.write(data)


def setup():
    os.mkdir(model())
    p = os.path.join(src, 'f.bin')
    write(p, pattern(100000, 7))
    r = run(['cp', p, model() + '/'])
    assert r.returncode == 0, r.stderr
    assert os.path.isfile(model('1', 'f.bin'))
    os.mkdir(model('d'))
    write(model('d', 'f'), b'draft file')
    os.mkdir(model('d', 'sub'))


def test_erofs():
    f = model('1', 'f.bin')
    for what, fn, args in (
            ('open O_WRONLY', os.open, (f, os.O_WRONLY)),
            ('open O_RDWR', os.open, (f, os.O_RDWR)),
            ('open O_TRUNC', os.open, (f, os.O_RDONLY | os.O_TRUNC)),
            ('create', os.open, (model('1', 'new'),
                                 os.O_CREAT | os.O_WRONLY, 0o644)),
            ('truncate', os.truncate, (f, 0)),
            ('unlink', os.unlink, (f,)),
            ('mkdir', os.mkdir, (model('1', 'sub'),)),
            ('rename inside', os.rename, (f, model('1', 'g.bin'))),
            ('symlink', os.symlink, ('f.bin', model('1', 'l'))),
            ('chmod of a file', os.chmod, (f, 0o644)),
            ('chmod u+w of the version', os.chmod, (model('1'), 0o755)),
            ('utime of a file', os.utime, (f, (1, 1))),
            ('setxattr param', os.setxattr, (model('1'),
                                             'user.mreg.param.lr', b'0.1')),
            ('setxattr lineage', os.setxattr, (
                model('1'), 'user.mreg.lineage.git_commit', b'abc'))):
        t.errno(errno.EROFS, 'sealed content: %s -> EROFS' % what, fn, *args)
    with open(f, 'rb') as fh:
        t.eq(fh.read(), pattern(100000, 7), 'the sealed bytes are unchanged')
    t.eq(stat.S_IMODE(os.stat(f).st_mode) & 0o222, 0,
         'sealed files show no write bits')


def test_einval_names():
    for name, what in (('bad name', 'a blank'), ('.hidden', 'a leading dot'),
                       ('-x', 'a leading dash'),
                       ('caf\u00e9', 'a non-ASCII byte'),
                       ('x' * 129, '129 bytes'), ('stages', '"stages"'),
                       ('a:b', 'a colon')):
        t.errno(errno.EINVAL, 'model name with %s: EINVAL' % what,
                os.mkdir, m.path('models', name))
    t.ok(os.mkdir(m.path('models', 'x' * 128)) is None,
         'a 128-byte model name is accepted')
    for name, what in (('bad name', 'a blank'), ('-1', 'a leading dash'),
                       ('v*', 'a star')):
        t.errno(errno.EINVAL, 'version name with %s: EINVAL' % what,
                os.mkdir, model(name))
    t.errno(errno.EEXIST, 'mkdir models/m/stages: EEXIST', os.mkdir,
            model('stages'))
    # names inside a version: anything the kernel accepts
    odd = 'weird name \u00fcn\u00efcode #1 (copy)'
    write(model('d', odd), b'odd')
    t.ok(os.path.exists(model('d', odd)), 'any kernel name works inside '
         'a draft')
    write(model('d', OK255), b'255')
    t.ok(os.path.exists(model('d', OK255)), 'a 255-byte name works')
    for target in ('/etc/passwd', '../../x', '../x', 'sub/../../x'):
        t.errno(errno.EINVAL, 'a symlink in a version -> %s: EINVAL' %
                target, os.symlink, target, model('d', 'l'))
    os.symlink('sub/../f', model('d', 'inside'))
    t.eq(os.readlink(model('d', 'inside')), 'sub/../f',
         'a symlink that stays inside lexically is allowed')


def test_eperm():
    t.errno(errno.EPERM, 'hard link: EPERM', os.link, model('d', 'f'),
            model('d', 'hard'))
    t.errno(errno.EPERM, 'mknod of a FIFO: EPERM', os.mkfifo,
            model('d', 'fifo'))
    t.errno(errno.EPERM, 'mknod of a character device: EPERM', os.mknod,
            model('d', 'cdev'), stat.S_IFCHR | 0o600, os.makedev(1, 3))
    t.errno(errno.EPERM, 'mknod of a block device: EPERM', os.mknod,
            model('d', 'bdev'), stat.S_IFBLK | 0o600, os.makedev(7, 0))
    s = socket.socket(socket.AF_UNIX)
    try:
        t.errno(errno.EPERM, 'bind of a unix socket: EPERM', s.bind,
                model('d', 'sock'))
    finally:
        s.close()
    t.errno(errno.EPERM, 'a file in models/: EPERM', os.open,
            m.path('models', 'f'), os.O_CREAT | os.O_WRONLY, 0o644)
    t.errno(errno.EPERM, 'mkdir at the top: EPERM', os.mkdir,
            m.path('x'))
    t.errno(errno.EACCES, 'writing .mreg/audit.log: EACCES', os.open,
            m.path('.mreg', 'audit.log'), os.O_WRONLY)


def test_enametoolong():
    d = model('d')
    for what, fn, args in (
            ('stat', os.stat, (os.path.join(d, LONG),)),
            ('create', os.open, (os.path.join(d, LONG),
                                 os.O_CREAT | os.O_WRONLY, 0o644)),
            ('mkdir', os.mkdir, (os.path.join(d, LONG),)),
            ('mknod', os.mknod, (os.path.join(d, LONG),
                                 stat.S_IFREG | 0o644)),
            ('mkfifo', os.mkfifo, (os.path.join(d, LONG),)),
            ('symlink', os.symlink, ('f', os.path.join(d, LONG))),
            ('rename', os.rename, (os.path.join(d, 'f'),
                                   os.path.join(d, LONG))),
            ('link', os.link, (os.path.join(d, 'f'),
                               os.path.join(d, LONG))),
            ('unlink', os.unlink, (os.path.join(d, LONG),)),
            ('rmdir', os.rmdir, (os.path.join(d, LONG),)),
            ('stage symlink', os.symlink, ('../1',
                                           model('stages', LONG))),
            ('model mkdir', os.mkdir, (m.path('models', LONG),))):
        t.errno(errno.ENAMETOOLONG, '256-byte name: %s -> ENAMETOOLONG' %
                what, fn, *args)


def test_exdev():
    os.mkdir(m.path('models', 'm2'))
    os.mkdir(m.path('models', 'm2', 'd'))
    t.errno(errno.EXDEV, 'rename between drafts of two models: EXDEV',
            os.rename, model('d', 'f'), m.path('models', 'm2', 'd', 'f'))
    os.mkdir(model('e'))
    t.errno(errno.EXDEV, 'rename between two drafts of one model: EXDEV',
            os.rename, model('d', 'f'), model('e', 'f'))
    t.errno(errno.EXDEV, 'a draft renamed into another model: EXDEV',
            os.rename, model('e'), m.path('models', 'm2', 'e2'))
    t.errno(errno.EXDEV, 'a version renamed into another model: EXDEV',
            os.rename, model('1'), m.path('models', 'm2', '1'))
    t.ok(os.path.isdir(model('e')) and os.path.isdir(model('1')) and
         sorted(os.listdir(m.path('models', 'm2'))) == ['d', 'stages'],
         'both stay where they were')
    t.errno(errno.ENOTEMPTY, 'rmdir of a model with versions: ENOTEMPTY',
            os.rmdir, model())
    t.ok(os.path.isdir(model('1')), 'its versions stay')


def test_xattrs():
    v = model('1')
    os.setxattr(v, 'user.mreg.description', b'churn model, v1')
    os.setxattr(v, 'user.mreg.tag.team', b'risk')
    os.setxattr(v, 'user.mreg.metric.auc', b'0.93')
    os.setxattr(model(), 'user.mreg.description', b'the churn model')
    t.eq(os.getxattr(v, 'user.mreg.metric.auc'), b'0.93',
         'a metric set on a sealed version reads back')
    t.eq(os.getxattr(v, 'user.mreg.tag.team'), b'risk', 'a tag reads back')
    t.eq(os.getxattr(model(), 'user.mreg.description'), b'the churn model',
         'a model carries a description')
    names = os.listxattr(v)
    t.ok({'user.mreg.description', 'user.mreg.tag.team',
          'user.mreg.metric.auc', 'user.mreg.created',
          'user.mreg.sealed', 'user.mreg.digest'} <= set(names),
         'listxattr shows what was set and the facts', repr(names))
    t.errno(errno.EINVAL, 'a non-numeric metric: EINVAL', os.setxattr, v,
            'user.mreg.metric.loss', b'low')
    t.errno(errno.EROFS, 'a param after sealing: EROFS', os.setxattr, v,
            'user.mreg.param.lr', b'0.01')
    t.errno(errno.EPERM, 'setting a read-only fact: EPERM', os.setxattr, v,
            'user.mreg.created', b'0')
    t.errno(errno.ENODATA, 'a missing key: ENODATA', os.getxattr, v,
            'user.mreg.tag.nope')
    d = model('d')
    os.setxattr(d, 'user.mreg.param.lr', b'0.01')
    os.setxattr(d, 'user.mreg.lineage.git_commit', b'0123abc')
    t.eq(os.getxattr(d, 'user.mreg.param.lr'), b'0.01',
         'a param on a draft reads back')
    os.removexattr(v, 'user.mreg.tag.team')
    t.errno(errno.ENODATA, 'a removed tag is gone', os.getxattr, v,
            'user.mreg.tag.team')
    t.errno(errno.EEXIST, 'XATTR_CREATE of an existing key: EEXIST',
            os.setxattr, v, 'user.mreg.metric.auc', b'1', os.XATTR_CREATE)
    dg = os.getxattr(model('1', 'f.bin'), 'user.mreg.digest')
    t.ok(len(dg) >= 32, 'a file of a version carries user.mreg.digest')
    r = subprocess.run(['getfattr', '-d', '-m', '^user.mreg', v],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       text=True)
    t.ok(r.returncode == 0 and 'user.mreg.metric.auc="0.93"' in r.stdout,
         'getfattr -d -m ^user.mreg shows the metadata', r.stdout + r.stderr)
    r = m.mreg('show', 'm/1', '--json')
    t.ok(r.returncode == 0 and '0.93' in r.stdout,
         'mreg show sees the metric set through the mount', r.stderr)


def main():
    try:
        m.start()
        setup()
        t.run('EROFS', test_erofs)
        t.run('EINVAL', test_einval_names)
        t.run('EPERM', test_eperm)
        t.run('ENAMETOOLONG', test_enametoolong)
        t.run('EXDEV', test_exdev)
        t.run('xattrs', test_xattrs)
        t.eq(m.stop(), 0, 'the daemon exits 0 on unmount')
    except Exception as e:
        t.ok(False, 'errno', '%s\n%s' % (e, m.log_tail()))
    finally:
        m.close()
        shutil.rmtree(src, ignore_errors=True)
    return t.done()


if __name__ == '__main__':
    sys.exit(main())
