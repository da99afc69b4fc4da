"""Faults of the object store through the mount (issue 13), a store with
backend = s3 whose endpoint is tests/services/faultproxy.py in front of
radosgw (tests/services/rgw.sh; MREG_RGW_DIR=DIR uses one running in
DIR), [s3] timeout = 5 s a request:

  - 503 SlowDown a few times: a read is retried and gets its bytes;
  - 500 on every GET, GETs that answer after the deadline, radosgw
    stopped, radosgw killed in the middle of a read: reads of content
    this host cached go on with the right bytes; an uncached read fails
    with EIO, within a bound (loose: retries are bounded by the
    deadline), never with wrong bytes; when the fault is gone the same
    read works, on the same mount;
  - 500 on every PUT, radosgw stopped before a write and in the middle of
    a large one (multipart parts in flight): the write fails at the
    write() or the close() that meets it, with EIO, and nothing is
    registered (no version); when the store is back the same copy works,
    on the same mount, and fsck --full is clean.

Skipped, with the reason, where Ceph's packages are not installed.
"""
import errno
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))), 'services'))
from mountlib import MREG, Mount, Tap, pattern, versions  # noqa: E402
import services  # noqa: E402

t = Tap()
TIMEOUT = 5          # [s3] timeout of the config
BOUND = 60           # an uncached read fails within this (loose)
MiB = 1 << 20


def conf(path, env, endpoint, prefix, cache):
    pathlib.Path(path).write_text(
        '[store]\nbackend = s3\n'
        '[s3]\nendpoint = %s\nbucket = %s\nregion = %s\n'
        'path_style = yes\nkey_prefix = %s\ntimeout = %d\n'
        '[cache]\npath = %s\nsize = 256M\n'
        # no serving copies: every read goes through the chunk store
        '[serve]\nsize = 0\n' %
        (endpoint, env['MREG_S3_BUCKET'], env['MREG_S3_REGION'], prefix,
         TIMEOUT, cache))
    return path


def uncache(d, path):
    """Makes path uncached on this host: the chunk files of its cache d
    removed (the mount finds them gone and fetches again), and the
    kernel's pages of the file dropped."""
    for dp, _, fs in os.walk(d):
        for f in fs:
            os.unlink(os.path.join(dp, f))
    fd = os.open(path, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def read_all(path):
    """(bytes, None) or (None, errno), and the seconds it took."""
    t0 = time.monotonic()
    try:
        with open(path, 'rb') as f:
            return f.read(), None, time.monotonic() - t0
    except OSError as e:
        return None, e.errno, time.monotonic() - t0


def fails_eio(what, path, want):
    """An uncached read fails with EIO within BOUND, never wrong bytes."""
    data, err, took = read_all(path)
    if data is not None:
        t.ok(data == want, what + ': read whole (the bytes are right)')
        t.ok(False, what + ': fails with EIO', 'it succeeded')
        return
    t.eq(errno.errorcode.get(err, err), 'EIO', what + ': fails with EIO')
    t.ok(took < BOUND, what + ': within %d s (%.1f s)' % (BOUND, took))


def reads(what, path, want):
    data, err, took = read_all(path)
    t.ok(data == want, what, 'errno %s after %.1f s' % (
        errno.errorcode.get(err, err), took) if err else
        'wrong bytes' if data != want else None)


def copy_in(path, data, step=MiB, hook=None):
    """Writes data to path in steps (hook(done) after each): None, or
    (errno, 'write' or 'close')."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    except OSError as e:
        return e.errno, 'open'
    try:
        for off in range(0, len(data), step):
            os.write(fd, data[off:off + step])
            if hook:
                hook(off + step)
    except OSError as e:
        try:
            os.close(fd)
        except OSError:
            pass
        return e.errno, 'write'
    try:
        os.close(fd)
    except OSError as e:
        return e.errno, 'close'
    return None


def write_fails(what, m, model, name, data, hook=None):
    """Copying data into models/model/name fails with EIO at a write or
    the close, and leaves no version."""
    d = m.path('models', model)
    os.makedirs(d, exist_ok=True)
    before = versions(d)
    r = copy_in(os.path.join(d, name), data, hook=hook)
    t.ok(r is not None and r[0] == errno.EIO,
         what + ': fails with EIO at the %s that meets it' %
         (r[1] if r else 'close'), 'succeeded' if r is None else
         '%s at %s' % (errno.errorcode.get(r[0], r[0]), r[1]))
    t.eq(versions(d), before, what + ': nothing registered')
    t.ok(not os.path.exists(os.path.join(d, name)),
         what + ': no file left at the model root')


def write_works(what, m, model, name, data):
    d = m.path('models', model)
    os.makedirs(d, exist_ok=True)
    before = versions(d)
    r = copy_in(os.path.join(d, name), data)
    after = versions(d)
    t.ok(r is None and len(after) == len(before) + 1, what,
         'errno %s at %s' % (errno.errorcode.get(r[0], r[0]), r[1])
         if r else 'versions %r' % after)
    if r is None and after:
        reads(what + ': reads back', os.path.join(d, str(after[-1]), name),
              data)


def run(env):
    tmp = tempfile.mkdtemp(prefix='mreg-s3f-conf-')
    try:
        with services.FaultProxy(env) as proxy:
            run_in(env, proxy, tmp)
    finally:
        services.start('rgw', env.dir)   # whatever happened
        shutil.rmtree(tmp, ignore_errors=True)


def run_in(env, proxy, tmp):
    creds = {k: env[k] for k in ('AWS_ACCESS_KEY_ID',
                                 'AWS_SECRET_ACCESS_KEY')}
    prefix = 't-fs-s3f-%d/' % os.getpid()
    c1 = conf(os.path.join(tmp, 'w.conf'), env, proxy.endpoint, prefix,
              os.path.join(tmp, 'cache-w'))
    c2 = conf(os.path.join(tmp, 'r.conf'), env, proxy.endpoint, prefix,
              os.path.join(tmp, 'cache-r'))
    files = {'a.bin': pattern(3 * MiB, 31), 'b.bin': pattern(12 * MiB, 32),
             'c.bin': pattern(12 * MiB, 33), 'd.bin': pattern(48 * MiB, 34)}

    # host W writes the files; host R (an empty cache) reads them
    w = Mount('s3f', args=['-c', c1], env=creds)
    w.start()
    os.mkdir(w.path('models', 'm'))
    for n in sorted(files):
        copy_in(w.path('models', 'm', n), files[n])
    t.eq(versions(w.path('models', 'm')), [1, 2, 3, 4],
         'four files written through a mount (versions 1-4)')
    t.eq(w.stop(), 0, 'the writing mount stops cleanly')
    m = Mount('s3f', args=['-c', c2], env=creds, tmp=w.tmp)
    m.start()
    ver = {n: m.path('models', 'm', str(i + 1), n)
           for i, n in enumerate(sorted(files))}
    reads('a.bin read on a host with an empty cache (now cached)',
          ver['a.bin'], files['a.bin'])

    def cached_ok(what):
        reads('%s: a.bin, cached, reads right' % what, ver['a.bin'],
              files['a.bin'])

    # 503 SlowDown, a few times: retried
    proxy.cmd('status 503 3 on=/packs/')
    reads('503 SlowDown on 3 GETs: b.bin is read after retries',
          ver['b.bin'], files['b.bin'])
    proxy.cmd('clear')

    # 500 on every GET of a chunk
    proxy.cmd('status 500 100000 on=/packs/')
    cached_ok('500 on every GET')
    fails_eio('500 on every GET: c.bin, uncached', ver['c.bin'],
              files['c.bin'])
    proxy.cmd('clear')
    reads('500s gone: c.bin reads right, same mount', ver['c.bin'],
          files['c.bin'])

    # GETs that answer after the deadline
    proxy.cmd('delay %d 100000 on=/packs/' % ((TIMEOUT + 3) * 1000))
    cached_ok('GETs past the deadline')
    fails_eio('GETs past the deadline: d.bin, uncached', ver['d.bin'],
              files['d.bin'])
    proxy.cmd('clear')
    reads('delays gone: d.bin reads right, same mount', ver['d.bin'],
          files['d.bin'])

    # 500 on every PUT: the write fails, nothing registered
    proxy.cmd('status 500 100000 on=PUT')
    write_fails('500 on every PUT', m, 'w', 'x.bin', pattern(MiB, 41))
    proxy.cmd('clear')
    write_works('500s gone: the same copy works, same mount', m, 'w',
                'x.bin', pattern(MiB, 41))

    # radosgw stopped
    services.halt('rgw', env.dir)
    cached_ok('radosgw stopped')
    uncache(os.path.join(tmp, 'cache-r'), ver['b.bin'])
    fails_eio('radosgw stopped: b.bin, no longer cached', ver['b.bin'],
              files['b.bin'])
    write_fails('radosgw stopped', m, 'w', 'y.bin', pattern(2 * MiB, 42))
    services.start('rgw', env.dir)
    reads('radosgw back: b.bin reads right, same mount', ver['b.bin'],
          files['b.bin'])
    write_works('radosgw back: the same copy works, same mount', m, 'w',
                'y.bin', pattern(2 * MiB, 42))

    # radosgw killed in the middle of a read of a large uncached file
    uncache(os.path.join(tmp, 'cache-r'), ver['d.bin'])
    t0 = time.monotonic()
    got, err = b'', None
    try:
        with open(ver['d.bin'], 'rb') as f:
            got = f.read(MiB)
            services.kill(env.dir)
            while True:
                b = f.read(MiB)
                if not b:
                    break
                got += b
    except OSError as e:
        err = e.errno
    took = time.monotonic() - t0
    t.diag('killed after 1 MiB: %s after %d MiB' % (
        errno.errorcode.get(err, err) if err else 'read whole',
        len(got) >> 20))
    t.ok(err == errno.EIO or (err is None and got == files['d.bin']),
         'radosgw killed in the middle of a read: EIO, or the right bytes',
         'errno %s, %d bytes' % (errno.errorcode.get(err, err), len(got)))
    t.ok(files['d.bin'].startswith(got), '... and what was read is right')
    t.ok(took < BOUND, '... within %d s (%.1f s)' % (BOUND, took))
    services.start('rgw', env.dir)
    reads('radosgw back: d.bin reads right, same mount', ver['d.bin'],
          files['d.bin'])

    # radosgw killed in the middle of a large write (parts in flight)
    big = pattern(40 * MiB, 43)

    def kill_at(done):
        if done == 20 * MiB:
            services.kill(env.dir)
    write_fails('radosgw killed in the middle of a 40 MiB write', m, 'w2',
                'big.bin', big, hook=kill_at)
    services.start('rgw', env.dir)
    write_works('radosgw back: the same 40 MiB copy works, same mount', m,
                'w2', 'big.bin', big)
    t.eq(m.stop(), 0, 'the mount stops cleanly')
    r = subprocess.run([MREG, '-c', c2, '--store', m.store, 'fsck',
                        '--full'], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True, timeout=300,
                       env=dict(os.environ, **creds))
    t.ok(r.returncode == 0, 'fsck --full is clean', r.stdout + r.stderr)
    m.close()


def main():
    why = services.unavailable('rgw')
    if why:
        t.skip('faults of the object store through a mount', why)
        return t.done()
    services.with_rgw(run)
    return t.done()


if __name__ == '__main__':
    sys.exit(main())
