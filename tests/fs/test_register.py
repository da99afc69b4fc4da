"""Registering through the mount (SPEC §2, issue 3 item 3): cp of one file
makes the next version, cp -r and rsync into drafts and model directories,
a zip writer that seeks back, mmap, the ordinary file operations of a
draft, sealing by chmod a-w and by mv .N.part N, ten concurrent cp, owner
and umask of new entries, .mreg/audit.log and .mreg/metrics, statfs.
"""
import errno
import json
import mmap
import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile
import zipfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mountlib import (Mount, Tap, file_sha, pattern, run, sha,  # noqa: E402
                      versions)

t = Tap()
m = Mount('register', args=['-o', 'allow_other'])
os.chmod(m.tmp, 0o755)  # another uid must reach the mount point
src = tempfile.mkdtemp(prefix='mreg-src-')


def write(path, data):
    with open(path, 'wb') as f:
        f.write(data)


def read(path):
    with open(path, 'rb') as f:
        return f.read()


def no_write_bits(path):
    return os.stat(path).st_mode & 0o222 == 0


def test_cp_one_file():
    churn = m.path('models', 'churn')
    os.mkdir(churn)
    t.eq(sorted(os.listdir(churn)), ['stages'], 'a new model holds stages/')
    a = pattern(3 << 20, 1)
    write(os.path.join(src, 'model.onnx'), a)
    r = run(['cp', os.path.join(src, 'model.onnx'), churn + '/'])
    t.eq(r.returncode, 0, 'cp model.onnx models/churn/ succeeds')
    t.eq(versions(churn), [1], 'cp of one file makes version 1')
    t.ok(read(os.path.join(churn, '1', 'model.onnx')) == a,
         'version 1 holds the bytes copied')
    t.ok('model.onnx' not in os.listdir(churn),
         'the name leaves the model root once registered')
    t.ok(no_write_bits(os.path.join(churn, '1')) and
         no_write_bits(os.path.join(churn, '1', 'model.onnx')),
         'the registered version is sealed (no write bits)')
    b = pattern(1 << 20, 2)
    write(os.path.join(src, 'model.onnx'), b)
    r = run(['cp', os.path.join(src, 'model.onnx'), churn + '/'])
    t.eq((r.returncode, versions(churn)), (0, [1, 2]),
         'cp of the same name again makes version 2')
    t.ok(read(os.path.join(churn, '2', 'model.onnx')) == b and
         read(os.path.join(churn, '1', 'model.onnx')) == a,
         'version 2 has the new bytes, version 1 the old')
    r = run(['cp', '-p', os.path.join(src, 'model.onnx'), churn + '/'])
    t.eq((r.returncode, versions(churn)), (0, [1, 2, 3]),
         'cp -p makes version 3')
    shutil.copyfile(os.path.join(src, 'model.onnx'),
                    os.path.join(churn, 'model.onnx'))
    t.eq(versions(churn), [1, 2, 3, 4], 'shutil.copyfile makes version 4')
    # an empty file registers too
    open(os.path.join(churn, 'empty.bin'), 'wb').close()
    t.eq(versions(churn), [1, 2, 3, 4, 5], 'an empty file makes version 5')
    t.eq(os.path.getsize(os.path.join(churn, '5', 'empty.bin')), 0,
         'and it is empty')
    t.ok(os.getxattr(os.path.join(churn, '1'), 'user.mreg.sealed') != b'',
         'user.mreg.sealed is set on a registered version')


def test_cp_r_draft():
    ckpt = os.path.join(src, 'ckpt')
    os.makedirs(os.path.join(ckpt, 'sub', 'deeper'))
    files = {
        'config.json': b'{"layers": 12}\n',
        'weights.bin': pattern(2 << 20, 3),
        'sub/tokenizer.txt': b'a b c\n' * 1000,
        'sub/deeper/x.bin': pattern(300000, 4),
    }
    for name, data in files.items():
        write(os.path.join(ckpt, name), data)
    dst = m.path('models', 'churn', '7')
    r = run(['cp', '-r', ckpt, dst])
    t.eq(r.returncode, 0, 'cp -r ckpt/ models/churn/7 succeeds', )
    t.ok(all(read(os.path.join(dst, n)) == d for n, d in files.items()),
         'cp -r: every file of the tree is in the draft')
    t.ok(not no_write_bits(dst), 'the version made by cp -r is a draft')
    t.eq(versions(m.path('models', 'churn')), [1, 2, 3, 4, 5, 7],
         'the draft is named as asked')


def test_rsync():
    churn = m.path('models', 'churn')
    w = pattern(1 << 20, 5)
    write(os.path.join(src, 'weights.bin'), w)
    before = versions(churn)
    r = run(['rsync', os.path.join(src, 'weights.bin'), churn + '/'])
    t.eq(r.returncode, 0, 'rsync weights.bin models/churn/ succeeds',)
    after = versions(churn)
    t.eq(after, before + [before[-1] + 1],
         'rsync into a model directory makes the next version')
    t.ok(read(os.path.join(churn, str(after[-1]), 'weights.bin')) == w,
         'with the bytes rsync sent')
    t.eq([n for n in os.listdir(churn) if not n.isdigit()], ['stages'],
         'rsync leaves no temporary file at the model root')
    draft = os.path.join(churn, 'rs')
    os.mkdir(draft)
    r = run(['rsync', '-a', os.path.join(src, 'ckpt') + '/', draft + '/'])
    t.eq(r.returncode, 0, 'rsync -a into a draft succeeds', )
    same = all(file_sha(os.path.join(draft, p)) ==
               file_sha(os.path.join(src, 'ckpt', p))
               for p in ('config.json', 'weights.bin', 'sub/tokenizer.txt',
                         'sub/deeper/x.bin'))
    t.ok(same, 'rsync -a: the draft holds the same tree')
    st = os.stat(os.path.join(draft, 'config.json'))
    t.eq(int(st.st_mtime),
         int(os.stat(os.path.join(src, 'ckpt', 'config.json')).st_mtime),
         'rsync -a keeps the mtime in a draft')
    # a second rsync with changes rewrites in place (temp file + rename)
    write(os.path.join(src, 'ckpt', 'config.json'), b'{"layers": 240}\n')
    r = run(['rsync', '-a', os.path.join(src, 'ckpt') + '/', draft + '/'])
    t.ok(r.returncode == 0 and
         read(os.path.join(draft, 'config.json')) == b'{"layers": 240}\n',
         'rsync -a again replaces a changed file in the draft')


def zip_into(path):
    with zipfile.ZipFile(path, 'w') as z:
        for i in range(3):
            zi = zipfile.ZipInfo('m/part%d.bin' % i, (2024, 1, 2, 3, 4, 6))
            zi.compress_type = zipfile.ZIP_STORED
            # open(.., 'w') writes the header, the data, then seeks back
            # to fill in sizes and CRC (what torch.save does)
            with z.open(zi, 'w') as f:
                f.write(pattern(700000 + i, 10 + i))
        zi = zipfile.ZipInfo('m/meta.json', (2024, 1, 2, 3, 4, 6))
        zi.compress_type = zipfile.ZIP_DEFLATED
        z.writestr(zi, json.dumps({'a': 1}) * 1000)


def test_zip_and_mmap():
    draft = m.path('models', 'churn', 'zipd')
    os.mkdir(draft)
    ref = os.path.join(src, 'ref.zip')
    zip_into(ref)
    zip_into(os.path.join(draft, 'model.pt'))
    t.eq(file_sha(os.path.join(draft, 'model.pt')), file_sha(ref),
         'a zipfile writer that seeks back writes identical bytes')
    with zipfile.ZipFile(os.path.join(draft, 'model.pt')) as z:
        t.eq(z.testzip(), None, 'the zip reads back with good CRCs')
    # mmap of a sealed file
    p = m.path('models', 'churn', '1', 'model.onnx')
    want = pattern(3 << 20, 1)
    with open(p, 'rb') as f:
        mm = mmap.mmap(f.fileno(), 0, prot=mmap.PROT_READ)
        try:
            t.ok(mm[:] == want and mm[12345:12350] == want[12345:12350],
                 'mmap of a sealed file reads its bytes')
        finally:
            mm.close()
    # mmap of a draft file, written through a shared mapping
    q = os.path.join(draft, 'mm.bin')
    write(q, b'\0' * 8192)
    with open(q, 'r+b') as f:
        mm = mmap.mmap(f.fileno(), 0)
        mm[100:105] = b'hello'
        mm.flush()
        mm.close()
        os.fsync(f.fileno())
    t.eq(read(q)[100:105], b'hello', 'a shared writable mmap of a draft '
         'file writes through after msync')


def test_draft_ops():
    d = m.path('models', 'churn', 'ops')
    os.mkdir(d)
    p = os.path.join(d, 'f.bin')
    fd = os.open(p, os.O_CREAT | os.O_RDWR, 0o644)
    try:
        os.write(fd, b'A' * 10000)
        os.pwrite(fd, b'BBBB', 5000)           # seek back and rewrite
        os.lseek(fd, 20000, os.SEEK_SET)       # past the end: a hole
        os.write(fd, b'C')
        t.eq(os.fstat(fd).st_size, 20001, 'fstat of an open file counts '
             'unflushed writes')
        t.eq(os.stat(p).st_size, 20001, 'stat(path) of a file being '
             'written shows what was written')
        t.eq(os.pread(fd, 4, 5000), b'BBBB', 'reads see the rewrite')
    finally:
        os.close(fd)
    data = read(p)
    t.ok(len(data) == 20001 and data[:5000] == b'A' * 5000 and
         data[5000:5004] == b'BBBB' and data[10000:20000] == b'\0' * 10000
         and data[-1:] == b'C', 'after close: content with rewrite and hole')
    os.truncate(p, 4096)
    t.eq(os.path.getsize(p), 4096, 'truncate shrinks a draft file')
    with open(p, 'ab') as f:
        f.write(b'Z')
    t.eq(read(p)[-2:], b'AZ', 'O_APPEND writes at the end')
    os.mkdir(os.path.join(d, 'sub'))
    os.rename(p, os.path.join(d, 'sub', 'g.bin'))
    t.ok(os.path.exists(os.path.join(d, 'sub', 'g.bin')) and
         not os.path.exists(p), 'rename inside a draft')
    os.symlink('sub/g.bin', os.path.join(d, 'link'))
    t.eq(read(os.path.join(d, 'link'))[-1:], b'Z',
         'a relative symlink inside the version resolves')
    os.symlink('../g.bin', os.path.join(d, 'sub', 'up'))
    t.eq(os.readlink(os.path.join(d, 'sub', 'up')), '../g.bin',
         'a symlink that goes up but stays inside is allowed')
    os.unlink(os.path.join(d, 'link'))
    os.unlink(os.path.join(d, 'sub', 'up'))
    os.unlink(os.path.join(d, 'sub', 'g.bin'))
    os.rmdir(os.path.join(d, 'sub'))
    t.eq(os.listdir(d), [], 'unlink and rmdir inside a draft')
    write(os.path.join(d, 'x'), b'x')
    fd = os.open(os.path.join(d, 'x'), os.O_WRONLY | os.O_TRUNC)
    os.close(fd)
    t.eq(os.path.getsize(os.path.join(d, 'x')), 0, 'O_TRUNC empties a '
         'draft file')
    os.unlink(os.path.join(d, 'x'))
    os.rmdir(d)
    t.ok(not os.path.exists(d), 'an empty draft is removed with rmdir')


def test_seal_chmod_and_rename():
    churn = m.path('models', 'churn')
    d = os.path.join(churn, '20')
    os.mkdir(d)
    write(os.path.join(d, 'a.bin'), b'a' * 5000)
    os.chmod(d, 0o555)
    t.ok(no_write_bits(d), 'chmod a-w: the version shows no write bits')
    t.errno(errno.EROFS, 'chmod a-w seals: writing a file fails with EROFS',
            os.open, os.path.join(d, 'a.bin'), os.O_WRONLY)
    t.errno(errno.EROFS, 'chmod a-w seals: creating a file fails with '
            'EROFS', os.open, os.path.join(d, 'b.bin'),
            os.O_CREAT | os.O_WRONLY, 0o644)
    t.eq(read(os.path.join(d, 'a.bin')), b'a' * 5000,
         'the sealed bytes read back')
    part = os.path.join(churn, '.21.part')
    os.mkdir(part)
    write(os.path.join(part, 'w.bin'), b'w' * 7000)
    t.ok(not no_write_bits(part), 'a dot-named draft stays writable')
    os.rename(part, os.path.join(churn, '21'))
    v = os.path.join(churn, '21')
    t.ok(os.path.isdir(v) and not os.path.exists(part),
         'mv .21.part 21 renames the draft')
    t.errno(errno.EROFS, 'mv .21.part 21 seals: writing fails with EROFS',
            os.open, os.path.join(v, 'w.bin'), os.O_WRONLY)
    t.ok(no_write_bits(v), 'and the version shows no write bits')
    # sealing while a file is open for writing: EBUSY, or later writes fail
    d = os.path.join(churn, '22')
    os.mkdir(d)
    fd = os.open(os.path.join(d, 'open.bin'), os.O_CREAT | os.O_WRONLY,
                 0o644)
    os.write(fd, b'1234')
    try:
        os.chmod(d, 0o555)
        sealed = True
    except OSError as e:
        sealed = False
        t.eq(e.errno, errno.EBUSY, 'sealing with a writer open: EBUSY')
    if sealed:
        try:
            os.write(fd, b'5678')
            os.close(fd)
            fd = -1
            t.ok(False, 'sealing with a writer open: later writes fail')
        except OSError as e:
            t.ok(e.errno in (errno.EROFS, errno.EBUSY),
                 'sealing with a writer open: later writes fail')
    if fd >= 0:
        try:
            os.close(fd)
        except OSError:
            pass


def test_concurrent_cp():
    par = m.path('models', 'par')
    os.mkdir(par)
    srcs = []
    for i in range(10):
        p = os.path.join(src, 'par%d.bin' % i)
        write(p, pattern(300000 + i * 1000, 100 + i))
        srcs.append(p)
    procs = [subprocess.Popen(['cp', p, par + '/']) for p in srcs]
    rcs = [p.wait(120) for p in procs]
    t.eq(rcs, [0] * 10, 'ten concurrent cp succeed')
    t.eq(versions(par), list(range(1, 11)),
         'ten concurrent cp make versions 1..10, no gap')
    got = set()
    for v in range(1, 11):
        names = os.listdir(os.path.join(par, str(v)))
        if len(names) == 1:
            got.add(file_sha(os.path.join(par, str(v), names[0])))
    t.eq(got, set(file_sha(p) for p in srcs),
         'each version holds one of the files, each file once')


def test_owner_umask():
    shared = m.path('models', 'shared')
    os.mkdir(shared)
    os.chmod(shared, 0o777)
    script = r'''
import os, sys
os.umask(0o027)
mnt = sys.argv[1]
os.mkdir(os.path.join(mnt, "5"), 0o777)
fd = os.open(os.path.join(mnt, "5", "w.bin"), os.O_CREAT | os.O_WRONLY, 0o666)
os.write(fd, b"data")
os.close(fd)
fd = os.open(os.path.join(mnt, "x.bin"), os.O_CREAT | os.O_WRONLY, 0o666)
os.write(fd, b"root file")
os.close(fd)
'''

    def become_nobody():
        os.setgroups([])
        os.setgid(65534)
        os.setuid(65534)

    r = subprocess.run(['/usr/bin/python3', '-c', script, shared],
                       preexec_fn=become_nobody, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True, timeout=60)
    t.eq(r.returncode, 0, 'uid 65534 makes a draft, a file in it and a '
         'version through an allow_other mount')
    if r.returncode:
        t.diag(r.stderr)
        return
    d = os.stat(os.path.join(shared, '5'))
    f = os.stat(os.path.join(shared, '5', 'w.bin'))
    t.eq((d.st_uid, d.st_gid, stat.S_IMODE(d.st_mode)),
         (65534, 65534, 0o750), 'a new draft: caller uid/gid, umask applied')
    t.eq((f.st_uid, f.st_gid, stat.S_IMODE(f.st_mode)),
         (65534, 65534, 0o640), 'a new file: caller uid/gid, umask applied')
    vs = versions(shared)
    ok = False
    for v in vs:
        p = os.path.join(shared, str(v), 'x.bin')
        if os.path.exists(p):
            st = os.stat(p)
            ok = (st.st_uid, st.st_gid) == (65534, 65534)
    t.ok(ok, 'a version registered by uid 65534 belongs to it')


def test_mreg_dir():
    with open(m.path('.mreg', 'audit.log'), 'rb') as f:
        lines = f.read().splitlines()
    bad = []
    for ln in lines:
        try:
            if not isinstance(json.loads(ln), dict):
                bad.append(ln)
        except ValueError:
            bad.append(ln)
    t.ok(len(lines) > 10, '.mreg/audit.log has records (%d)' % len(lines))
    t.ok(not bad, 'every line of .mreg/audit.log is a JSON object',
         b'\n'.join(bad[:3]).decode(errors='replace'))
    with open(m.path('.mreg', 'metrics')) as f:
        text = f.read()
    sample = re.compile(r'^[a-zA-Z_:][a-zA-Z0-9_:]*(\{[^}]*\})? '
                        r'[-+0-9.eEnaNInf]+( [0-9]+)?$')
    lines = [ln for ln in text.splitlines() if ln]
    badm = [ln for ln in lines
            if not (ln.startswith('# HELP ') or ln.startswith('# TYPE ') or
                    sample.match(ln))]
    t.ok(lines and not badm, '.mreg/metrics is Prometheus text',
         '\n'.join(badm[:5]))
    t.ok(any(ln.startswith('# TYPE ') for ln in lines),
         '.mreg/metrics declares metric types')
    st = os.statvfs(m.mnt)
    t.eq(st.f_namemax, 255, 'statfs reports a 255-byte name limit')
    t.ok(st.f_blocks > 0 and st.f_bavail > 0 and st.f_frsize > 0,
         'statfs reports real byte counts')


def test_listing_attributes():
    """ls -l on a fresh mount: the attributes come with the listing
    (readdirplus) and must be the entries' own; an entry being written
    shows the bytes written so far."""
    m.stop()
    m.start()
    dst = m.path('models', 'churn', '7')
    want = {'config.json': 15, 'weights.bin': 2 << 20, 'sub': None}
    got = {}
    with os.scandir(dst) as it:
        for e in it:
            st = e.stat(follow_symlinks=False)
            got[e.name] = (e.inode() == st.st_ino, stat.S_ISDIR(st.st_mode),
                           None if stat.S_ISDIR(st.st_mode) else st.st_size)
    t.eq(got, {n: (True, n == 'sub', v) for n, v in want.items()},
         'a listing on a fresh mount: inode, type and size of each entry')
    r = run(['ls', '-ln', dst])
    sizes = {ln.split()[-1]: int(ln.split()[4]) for ln in
             r.stdout.splitlines()[1:] if not ln.startswith('d')}
    t.eq(sizes, {'config.json': 15, 'weights.bin': 2 << 20},
         'ls -l shows the sizes')
    with open(os.path.join(dst, 'growing.bin'), 'wb') as f:
        f.write(pattern(3 << 20, 9))
        f.flush()
        n = {e.name: e.stat().st_size for e in os.scandir(dst)}
        t.eq(n.get('growing.bin'), 3 << 20,
             'a file still open for writing is listed with its bytes '
             'written so far')
    os.unlink(os.path.join(dst, 'growing.bin'))


def main():
    try:
        m.start()
        t.run('cp of one file', test_cp_one_file)
        t.run('cp -r', test_cp_r_draft)
        t.run('listing attributes', test_listing_attributes)
        t.run('rsync', test_rsync)
        t.run('zip and mmap', test_zip_and_mmap)
        t.run('draft operations', test_draft_ops)
        t.run('sealing', test_seal_chmod_and_rename)
        t.run('concurrent cp', test_concurrent_cp)
        t.run('owner and umask', test_owner_umask)
        t.run('.mreg', test_mreg_dir)
        rc = m.stop()
        t.eq(rc, 0, 'the daemon exits 0 on unmount')
    except Exception as e:
        t.ok(False, 'mount', str(e))
    finally:
        m.close()
        shutil.rmtree(src, ignore_errors=True)
    return t.done()


if __name__ == '__main__':
    sys.exit(main())
