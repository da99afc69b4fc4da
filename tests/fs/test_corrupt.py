"""Damaged stores (SPEC §5, issue 6 item 6): never a crash, never wrong
bytes, and fsck names what is damaged.

The index (LMDB's data.mdb):
  - meta pages overwritten, the file truncated (to nothing, to half, by one
    page) or removed while packs hold data: mregfs refuses to start, exits
    1 (not by a signal), names the file, and leaves no mount; the CLI too;
  - every page zeroed in turn: no mregfs, `mreg ls`, `mreg fsck` or
    `mreg cat` dies by a signal, and a daemon that starts serves the rest.
The packs:
  - a flipped byte in a chunk's data: reads of that file through the mount
    fail with EIO (and every byte that is returned is right), other files
    read right, `mreg fsck --full` names the chunk and the
    model/version/file; pushing the same bytes again (`mreg push` of the
    original file, or `cp` of it into the model through the mount) heals
    the chunk: the old version reads right again and fsck --full is clean;
  - a pack cut short: EIO for the file whose chunks it held (right bytes
    before), fsck --full names the pack and the file; a damaged pack
    header: its chunks still verify, so its file reads right or fails with
    EIO (never wrong bytes), and fsck --full names the pack.
"""
import errno
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mountlib import (MREG, MREGFS, Mount, Tap, mountinfo_has,  # noqa: E402
                      pattern)

t = Tap()
src = tempfile.mkdtemp(prefix='mreg-src-')
SIZE = 1 << 20
REC = 24          # a pack record's header: magic, length, chunk id
HDR = 16          # a pack's header


def write(path, data):
    with open(path, 'wb') as f:
        f.write(data)


def packs(store):
    d = os.path.join(store, 'packs')
    if not os.path.isdir(d):
        return []
    return sorted(n for n in os.listdir(d) if n.endswith('.pack'))


def records(path):
    """(offset of the record, chunk id hex, data offset, length) for each
    record of a pack."""
    out = []
    with open(path, 'rb') as f:
        data = f.read()
    off = HDR
    while off + REC <= len(data):
        magic, n = struct.unpack_from('<II', data, off)
        if magic != 0x4b4e4843:
            break
        out.append((off, data[off + 8:off + 24].hex(), off + REC, n))
        off += REC + n
    return out


def flip(path, off):
    with open(path, 'r+b') as f:
        f.seek(off)
        b = f.read(1)
        f.seek(off)
        f.write(bytes([b[0] ^ 0x5a]))


def push(m, model, path):
    """mreg push of one file; returns the version and the pack it made."""
    before = set(packs(m.store))
    r = m.mreg('push', model, path)
    assert r.returncode == 0, r.stderr
    new = sorted(set(packs(m.store)) - before)
    return r.stdout.strip(), new


def read_all(path, chunk=1 << 16):
    """Reads path in pieces: (bytes read in order until the first error,
    the errno of that error or None)."""
    got = bytearray()
    fd = os.open(path, os.O_RDONLY)
    try:
        while True:
            try:
                b = os.pread(fd, chunk, len(got))
            except OSError as e:
                return bytes(got), e.errno
            if not b:
                return bytes(got), None
            got += b
    finally:
        os.close(fd)


def check_reads(what, path, want, bad_lo, bad_hi):
    """Reads of path: those that succeed return want's bytes; the damaged
    range [bad_lo, bad_hi) fails with EIO; a whole-file read fails with
    EIO."""
    fd = os.open(path, os.O_RDONLY)
    wrong = []
    eio = 0
    errs = []
    try:
        for off in range(0, len(want), 4096):
            try:
                b = os.pread(fd, 4096, off)
            except OSError as e:
                if e.errno == errno.EIO:
                    eio += 1
                    if not (bad_lo - 4096 < off < bad_hi):
                        errs.append('EIO at %d, outside the damaged '
                                    'chunk [%d, %d)' % (off, bad_lo, bad_hi))
                else:
                    errs.append('%s at %d' % (e, off))
                continue
            if b != want[off:off + len(b)]:
                wrong.append(off)
            if bad_lo - 4096 < off < bad_hi:
                errs.append('read at %d (in the damaged chunk) succeeded' %
                            off)
    finally:
        os.close(fd)
    t.eq(wrong, [], '%s: every read that succeeds returns the right bytes'
         % what)
    t.ok(eio > 0 and not errs, '%s: reads of the damaged chunk fail with '
         'EIO, reads elsewhere in the file succeed' % what,
         '\n'.join(errs[:10]) + '\n%d EIO' % eio)
    got, err = read_all(path, 1 << 20)
    t.eq(err, errno.EIO, '%s: reading the whole file fails with EIO' % what)
    t.ok(want.startswith(got), '%s: what a whole-file read returned before '
         'the error is right' % what)


def fsck_full(m):
    r = m.mreg('fsck', '--full')
    return r.returncode, r.stdout + r.stderr


# ---- the index ------------------------------------------------------------

def start_fails(m, what):
    """mregfs -f on a damaged store: exits 1 within 10 s, says which file
    and leaves no mount."""
    p = subprocess.Popen([MREGFS, '-f', '--store', m.store, m.mnt],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True, env=m.env)
    try:
        out, err = p.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        p.kill()
        out, err = p.communicate()
        m.unmount()
        t.ok(False, '%s: mregfs refuses to start' % what, 'it started')
        return
    data = os.path.join(m.store, 'index', 'data.mdb')
    t.ok(p.returncode == 1 and data in err,
         '%s: mregfs refuses to start, exit 1, naming %s' %
         (what, 'index/data.mdb'), 'exit %d: %s' % (p.returncode, err))
    t.ok(not mountinfo_has(m.mnt), '%s: no mount is left' % what)
    r = m.mreg('ls')
    t.ok(r.returncode == 1 and data in r.stderr,
         '%s: mreg ls exits 1 naming the file' % what,
         'exit %d: %s' % (r.returncode, r.stderr))


def index_cases():
    m = Mount('corrupt-ix')
    try:
        a = os.path.join(src, 'ix.bin')
        write(a, pattern(300000, 1))
        for i in range(3):
            m.mreg('push', 'm%d' % i, a, '--tag', 'k=%d' % i, check=True)
        m.mreg('promote', 'm0', '1', 'Production', check=True)
        good = m.store + '.good'
        shutil.copytree(m.store, good)
        data = os.path.join(m.store, 'index', 'data.mdb')
        size = os.path.getsize(data)

        def fresh():
            shutil.rmtree(m.store)
            shutil.copytree(good, m.store)

        def meta(f):
            f.write(b'\xa5' * 8192)

        def meta_bodies(f):
            for pg in (0, 1):
                f.seek(pg * 4096 + 16)
                f.write(b'\xff' * 128)

        for what, damage in (
                ('both meta pages overwritten', meta),
                ('both meta pages damaged past their header', meta_bodies)):
            fresh()
            with open(data, 'r+b') as f:
                damage(f)
            start_fails(m, what)
        for what, n in (('data.mdb truncated to nothing', 0),
                        ('data.mdb truncated to one page', 4096),
                        ('data.mdb truncated to half', size // 2 // 4096 *
                         4096),
                        ('data.mdb one page short', size - 4096)):
            fresh()
            os.truncate(data, n)
            start_fails(m, what)
        fresh()
        os.unlink(data)
        start_fails(m, 'data.mdb removed (packs remain)')

        # every page zeroed in turn: errors, never a signal
        npages = size // 4096
        died = []
        refused = served = 0
        for pg in range(2, npages):
            fresh()
            with open(data, 'r+b') as f:
                f.seek(pg * 4096)
                f.write(bytes(4096))
            for cmd in (['ls'], ['ls', 'm0'], ['fsck', '--full'],
                        ['cat', 'm0/1/ix.bin']):
                r = subprocess.run([MREG] + cmd, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL, timeout=60,
                                   env=dict(m.env, MREG_STORE=m.store))
                if r.returncode < 0:
                    died.append('page %d: mreg %s: signal %d' %
                                (pg, ' '.join(cmd), -r.returncode))
            p = subprocess.Popen([MREGFS, '-f', '--store', m.store, m.mnt],
                                 stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL, env=m.env)
            end = time.monotonic() + 10
            while (p.poll() is None and not mountinfo_has(m.mnt) and
                   time.monotonic() < end):
                time.sleep(0.02)
            if p.poll() is None:
                served += 1
                subprocess.run(['sh', '-c', 'ls -R "$1"; cat "$1"/models/'
                                '*/[0-9]*/*', 'walk', m.mnt],
                               stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, timeout=60)
                m.unmount()
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
            else:
                refused += 1
            if p.returncode < 0:
                died.append('page %d: mregfs: signal %d' %
                            (pg, -p.returncode))
        t.eq(died, [], 'each of %d index pages zeroed in turn: no process '
             'dies by a signal (%d starts refused, %d served)' %
             (npages - 2, refused, served))
    finally:
        m.close()


# ---- the packs -------------------------------------------------------------

def pack_cases():
    m = Mount('corrupt-pk')
    try:
        files = {}
        for name, seed in (('hurt', 11), ('hurt2', 12), ('fine', 13),
                           ('head', 14), ('cut', 15)):
            files[name] = pattern(SIZE, seed)
            write(os.path.join(src, name + '.bin'), files[name])
        made = {}
        for name in files:
            v, new = push(m, name, os.path.join(src, name + '.bin'))
            assert v == '1' and len(new) == 1, (v, new)
            made[name] = new[0]
        r = m.mreg('fsck', '--full')
        t.eq(r.returncode, 0, 'fsck --full is clean before any damage')

        # a flipped byte in the data of a chunk in the middle of hurt.bin
        # and of hurt2.bin
        bad = {}
        for name in ('hurt', 'hurt2'):
            path = os.path.join(m.store, 'packs', made[name])
            recs = records(path)
            off, cid, doff, n = recs[len(recs) // 2]
            with open(path, 'rb') as f:
                f.seek(doff)
                chunk = f.read(n)
            lo = files[name].find(chunk)
            assert lo >= 0
            flip(path, doff + n // 2)
            bad[name] = (cid, lo, lo + n)
        # a damaged pack header; a pack cut short in its third record
        path = os.path.join(m.store, 'packs', made['head'])
        with open(path, 'r+b') as f:
            f.write(b'XXXXXXXX')
        path = os.path.join(m.store, 'packs', made['cut'])
        recs = records(path)
        os.truncate(path, recs[2][2] + 10)

        m.start()
        # cat (128 KiB reads, the kernel's readahead in front): a short
        # read would tell the kernel the file ends there, and cat would
        # copy a truncated file and exit 0
        for name in ('hurt', 'cut'):
            r = subprocess.run(['cat', m.path('models', name, '1',
                                              name + '.bin')],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            t.ok(r.returncode == 1 and b'Input/output error' in r.stderr and
                 files[name].startswith(r.stdout),
                 'cat of %s (damaged) fails with EIO after right bytes only'
                 % name, 'exit %d, %d of %d bytes, %r' % (
                     r.returncode, len(r.stdout), len(files[name]),
                     r.stderr[-200:]))
        for name in ('hurt', 'hurt2'):
            cid, lo, hi = bad[name]
            check_reads('a flipped byte in %s' % name,
                        m.path('models', name, '1', name + '.bin'),
                        files[name], lo, hi)
        with open(m.path('models', 'fine', '1', 'fine.bin'), 'rb') as f:
            t.ok(f.read() == files['fine'], 'another file reads right')
        # the chunks of a pack whose header is damaged still verify: their
        # bytes may be served (right), or refused with EIO
        got, err = read_all(m.path('models', 'head', '1', 'head.bin'))
        t.ok(files['head'].startswith(got) and
             (err == errno.EIO or (err is None and got == files['head'])),
             'a damaged pack header: its file reads right or fails with EIO, '
             'never wrong bytes', 'errno %r after %d bytes' % (err, len(got)))
        got, err = read_all(m.path('models', 'cut', '1', 'cut.bin'))
        t.ok(err == errno.EIO and files['cut'].startswith(got),
             'a pack cut short: reading its file fails with EIO, the bytes '
             'before are right',
             'errno %r after %d bytes' % (err, len(got)))
        t.ok(m.proc.poll() is None, 'the daemon still serves')

        rc, out = fsck_full(m)
        t.eq(rc, 3, 'fsck --full exits 3')
        for name in ('hurt', 'hurt2'):
            cid = bad[name][0]
            t.ok(cid in out, 'fsck --full names the damaged chunk of %s '
                 '(%s)' % (name, cid), out[-3000:])
            t.ok("'%s/1/%s.bin'" % (name, name) in out,
                 'fsck --full names %s/1/%s.bin' % (name, name), out[-3000:])
        for name in ('head', 'cut'):
            num = made[name][len('pack-'):-len('.pack')]
            t.ok('pack %s' % num in out,
                 'fsck --full names the damaged pack %s' % made[name],
                 out[-3000:])
        t.ok("'cut/1/cut.bin'" in out, 'fsck --full names cut/1/cut.bin, '
             'whose chunks the cut took', out[-3000:])
        t.ok("'fine/1/fine.bin'" not in out, 'fsck --full does not name the '
             'intact file')

        # healing: the same bytes again, by mreg push and by cp
        r = m.mreg('push', 'hurt', os.path.join(src, 'hurt.bin'))
        t.ok(r.returncode == 0, 'mreg push of the same bytes succeeds',
             r.stderr)
        r = subprocess.run(['cp', os.path.join(src, 'hurt2.bin'),
                            m.path('models', 'hurt2') + '/'],
                           stderr=subprocess.PIPE, text=True)
        t.ok(r.returncode == 0, 'cp of the same bytes into the model '
             'succeeds', r.stderr)
        for name, how in (('hurt', 'mreg push'), ('hurt2', 'cp')):
            got, err = read_all(m.path('models', name, '1', name + '.bin'))
            t.ok(err is None and got == files[name],
                 'after %s of the same bytes the old version %s/1 reads '
                 'right again' % (how, name),
                 'errno %r after %d bytes, right: %s' % (
                     err, len(got), files[name].startswith(got)))
            got, err = read_all(m.path('models', name, '2', name + '.bin'))
            t.ok(err is None and got == files[name],
                 'and the new version %s/2 reads right' % name)
        rc, out = fsck_full(m)
        t.ok(bad['hurt'][0] not in out and bad['hurt2'][0] not in out,
             'fsck --full no longer names the healed chunks', out[-3000:])
        # the damaged packs: push their files again too, then all is clean
        for name in ('head', 'cut'):
            m.mreg('push', name, os.path.join(src, name + '.bin'))
        rc, out = fsck_full(m)
        for name in ('head', 'cut'):
            got, err = read_all(m.path('models', name, '1', name + '.bin'))
            t.ok(err is None and got == files[name],
                 'the file of the damaged pack (%s) reads right after its '
                 'bytes were pushed again' % name,
                 'errno %r after %d bytes' % (err, len(got)))
        t.ok(rc == 0 or all(("'%s/" % n) not in out for n in files),
             'fsck --full names no file after the bytes were pushed again',
             out[-3000:])
        t.eq(m.stop(), 0, 'the daemon exits 0 on unmount')
    finally:
        m.close()


def main():
    t0 = time.monotonic()
    try:
        if not t.on_pg('a damaged index', 'the cases damage the LMDB '
                       'environment by hand'):
            t.run('a damaged index', index_cases)
        if not t.on_s3('damaged packs', 'the chunks are objects in the '
                       'bucket and this host\'s cache (a damaged copy of '
                       'either: test-s3store, test-cache)'):
            t.run('damaged packs', pack_cases)
    finally:
        shutil.rmtree(src, ignore_errors=True)
    t.diag('%.1f s' % (time.monotonic() - t0))
    return t.done()


if __name__ == '__main__':
    sys.exit(main())
