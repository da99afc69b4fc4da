"""Reading well from S3 (issue 13): a registry with [store] backend = s3
on the radosgw of tests/services/rgw.sh (started here and stopped at the
end; MREG_RGW_DIR=DIR uses one already running in DIR), reached through
tests/services/faultproxy.py, whose request count says what went to the
object store and which refuses requests on demand:

  - a cold sequential read through a mount fetches the chunks ahead of
    it, neighbours in one GET: far fewer GETs than chunks; with [cache]
    readahead = 0, one GET per chunk;
  - mreg prefetch MODEL STAGE on the store, with an empty cache, fills it:
    a mount on that cache then reads the version with the object store
    refusing every GET; the same through a mount (the daemon fills its
    own cache; the CLI says what was done, --json too);
  - [cache] prefetch_on_promote = yes: a promotion makes the daemon fill
    its cache with the version in the background (and a mount without the
    switch does not);
  - the refusals: an unknown model, stage or version, a draft, a version
    larger than the cache (on the store and through a mount), a local
    store (no chunk cache), the object store failing.

Skipped, with the reason, where Ceph's packages are not installed.
"""
import json
import os
import pathlib
import shutil
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))), 'services'))
from mountlib import MREG, Mount, Tap, pattern, run  # noqa: E402
import services  # noqa: E402

t = Tap()
FAULTPROXY = os.path.join(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))), 'services', 'faultproxy.py')
MB = 1 << 20


class Proxy:
    """faultproxy.py in front of radosgw, stopped by its pid."""

    def __init__(self, upstream, tmp):
        ports = os.path.join(tmp, 'proxy.ports')
        self.proc = subprocess.Popen(
            ['/usr/bin/python3', FAULTPROXY, '--upstream', upstream,
             '--port-file', ports], stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        end = time.monotonic() + 30
        while not os.path.exists(ports):
            if time.monotonic() > end or self.proc.poll() is not None:
                self.close()
                raise RuntimeError('faultproxy.py did not start')
            time.sleep(0.05)
        self.port, self.ctl = (int(x) for x in
                               pathlib.Path(ports).read_text().split())

    def cmd(self, line):
        with socket.create_connection(('127.0.0.1', self.ctl), 10) as s:
            s.sendall(line.encode() + b'\n')
            reply = s.recv(128).decode()
        if not reply.startswith('ok'):
            raise RuntimeError('faultproxy: %s: %s' % (line, reply))
        return reply

    def count(self):
        """Requests seen so far."""
        return int(self.cmd('count').split()[1])

    def close(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait()


def write(path, data):
    pathlib.Path(path).write_bytes(data)


def read(path):
    return pathlib.Path(path).read_bytes()


def conf(path, endpoint, env, prefix, cache, size='64M', extra=''):
    write(path, ('[store]\nbackend = s3\n'
                 '[s3]\nendpoint = %s\nbucket = %s\nregion = %s\n'
                 'path_style = yes\nkey_prefix = %s\n'
                 '[cache]\npath = %s\nsize = %s\n%s'
                 # no serving copies: every read goes through the store
                 '[serve]\nsize = 0\n' %
                 (endpoint, env['MREG_S3_BUCKET'], env['MREG_S3_REGION'],
                  prefix, cache, size, extra)).encode())
    return path


def files_under(d):
    n = 0
    for _, _, fs in os.walk(d):
        n += len(fs)
    return n


def wait_for(cond, timeout=60):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.1)
    return cond()


class Ctx:
    pass


def run_in(env, tmp):
    c = Ctx()
    c.env = env
    c.tmp = tmp
    c.creds = {k: env[k] for k in ('AWS_ACCESS_KEY_ID',
                                   'AWS_SECRET_ACCESS_KEY')}
    c.proxy = Proxy(env['MREG_S3_ENDPOINT'].split('//', 1)[1], tmp)
    c.mounts = []
    try:
        setup(c)
        for name, fn in (('sequential reads', block_readahead),
                         ('mreg prefetch on the store', block_store),
                         ('mreg prefetch through a mount', block_mount),
                         ('prefetch on promotion', block_promote),
                         ('refusals', block_refusals)):
            t.run(name, fn, c)
    finally:
        for m in c.mounts:
            m.close()
        c.proxy.close()


def setup(c):
    c.endpoint = 'http://127.0.0.1:%d' % c.proxy.port
    c.prefix = 't-fs-s3p-%d/' % os.getpid()
    c.n = 0
    c.wconf = new_conf(c)
    c.store = os.path.join(c.tmp, 'store')
    c.big = pattern(8 * MB, 31)
    c.small = pattern(1000, 32)
    src = os.path.join(c.tmp, 'v1')
    os.mkdir(src)
    write(os.path.join(src, 'big.bin'), c.big)
    write(os.path.join(src, 'small.txt'), c.small)
    r = cli(c, c.wconf, 'init')
    r = cli(c, c.wconf, 'push', 'p', src + '/')
    t.ok(r.returncode == 0, 'a version of two files pushed into an s3 store',
         r.stderr)
    r = cli(c, c.wconf, 'promote', 'p', '1', 'Production')
    t.ok(r.returncode == 0, '... and promoted to Production', r.stderr)


def new_conf(c, size='64M', extra=''):
    """A config of its own cache directory (empty): (path, cache)."""
    c.n += 1
    cache = os.path.join(c.tmp, 'cache%d' % c.n)
    path = conf(os.path.join(c.tmp, 's3-%d.conf' % c.n), c.endpoint, c.env,
                c.prefix, cache, size, extra)
    return path, cache


def cli(c, cf, *args, store=None):
    return run([MREG, '-c', cf[0], '--store', store or c.store] +
               list(args), env=dict(os.environ, **c.creds), timeout=300)


def mount(c, cf):
    m = Mount('s3p', args=['-c', cf[0]], env=c.creds, tmp=tempfile.mkdtemp(
        prefix='mnt', dir=c.tmp))
    m.store = c.store
    m.cache = cf[1]
    c.mounts.append(m)
    return m.start()


def block_readahead(c):
    cf = new_conf(c)
    m = mount(c, cf)
    n0 = c.proxy.count()
    data = read(m.path('models', 'p', 'stages', 'Production', 'big.bin'))
    gets = c.proxy.count() - n0
    c.chunks = files_under(cf[1])
    t.ok(data == c.big, 'a cold read of an 8 MiB file through a mount: '
         'the right bytes')
    t.ok(c.chunks >= 40 and gets * 4 <= c.chunks,
         'read ahead: its %d chunks came in %d GETs' % (c.chunks, gets))
    t.eq(m.stop(), 0, 'the mount stops cleanly')

    cf = new_conf(c, extra='readahead = 0\n')
    m = mount(c, cf)
    n0 = c.proxy.count()
    data = read(m.path('models', 'p', '1', 'big.bin'))
    gets = c.proxy.count() - n0
    t.ok(data == c.big and gets >= files_under(cf[1]) == c.chunks,
         'with [cache] readahead = 0: one GET per chunk (%d GETs)' % gets)
    t.eq(m.stop(), 0, '... that mount stops cleanly')


def refused_reads(c, m, what):
    """Reads version 1 through m with every GET refused: the right bytes,
    and no request."""
    c.proxy.cmd('status 503 100000 on=GET')
    try:
        n0 = c.proxy.count()
        ok = (read(m.path('models', 'p', '1', 'big.bin')) == c.big and
              read(m.path('models', 'p', '1', 'small.txt')) == c.small)
        sent = c.proxy.count() - n0
    except OSError as e:
        ok, sent = False, str(e)
    finally:
        c.proxy.cmd('clear')
    t.ok(ok and sent == 0, what + ': the version reads right with the '
         'object store refusing every GET (%s requests)' % sent)


def block_store(c):
    cf = new_conf(c)
    r = cli(c, cf, 'prefetch', 'p', 'Production')
    t.ok(r.returncode == 0 and r.stdout.startswith(
        'cached: p/Production (version 1), 2 files (8.0 MiB) in this '
        "host's chunk cache, 8.0 MiB fetched"),
        'mreg prefetch MODEL STAGE on the store, an empty cache',
        r.stdout + r.stderr)
    t.ok(files_under(cf[1]) >= c.chunks + 1, '... its chunks are in the '
         'cache (%d files)' % files_under(cf[1]))
    r = cli(c, cf, '--json', 'prefetch', 'p', '1')
    j = json.loads(r.stdout) if r.returncode == 0 else {}
    t.ok(j.get('files') == 2 and j.get('bytes') == len(c.big) +
         len(c.small) and j.get('chunk_cache', {}).get('fetched') == 0,
         'again, by version, --json: nothing fetched', r.stdout + r.stderr)
    m = mount(c, cf)
    refused_reads(c, m, 'a mount on that cache')
    t.eq(m.stop(), 0, 'the mount stops cleanly')


def block_mount(c):
    cf = new_conf(c)
    m = mount(c, cf)
    c.plain = m     # no prefetch_on_promote: block_promote looks at it
    r = run([MREG, '--store', m.mnt, 'prefetch', 'p', 'Production'])
    t.ok(r.returncode == 0 and r.stdout.startswith(
        'cached: p/Production, 2 files (8.0 MiB) in this host\'s chunk '
        'cache, 8.0 MiB fetched'), 'mreg prefetch through a mount: the '
        'daemon fills its cache', r.stdout + r.stderr)
    refused_reads(c, m, 'then')
    r = run([MREG, '--store', m.mnt, '--json', 'prefetch', 'p', '1'])
    j = json.loads(r.stdout) if r.returncode == 0 else {}
    t.ok(j.get('chunk_cache', {}).get('fetched') == 0 and
         j.get('chunk_cache', {}).get('chunks', 0) > c.chunks,
         'again by version, --json: nothing fetched', r.stdout + r.stderr)
    os.mkdir(m.path('models', 'p', 'draft'))
    r = run([MREG, '--store', m.mnt, 'prefetch', 'p', 'draft'])
    t.ok(r.returncode == 1 and 'is a draft' in r.stderr,
         'through the mount: a draft is refused', r.stderr)
    os.rmdir(m.path('models', 'p', 'draft'))
    r = run([MREG, '--store', m.mnt, 'prefetch', 'p', 'Nope'])
    t.ok(r.returncode == 1 and "no stage or version 'Nope' of model 'p'"
         in r.stderr, 'through the mount: a missing stage', r.stderr)
    small = mount(c, new_conf(c, size='2M'))
    r = run([MREG, '--store', small.mnt, 'prefetch', 'p', 'Production'])
    t.ok(r.returncode == 1 and "does not fit in the mount's chunk cache"
         in r.stderr, 'through a mount whose cache is smaller than the '
         'version: refused', r.stderr)
    t.eq(small.stop(), 0, 'that mount stops cleanly')


def block_promote(c):
    cf = new_conf(c, extra='prefetch_on_promote = yes\n')
    m = mount(c, cf)
    src = os.path.join(c.tmp, 'v2')
    os.mkdir(src)
    c.v2 = pattern(4 * MB, 33)
    write(os.path.join(src, 'model.bin'), c.v2)
    r = cli(c, c.wconf, 'push', 'p', src + '/')
    t.ok(r.returncode == 0, 'version 2 pushed on the store', r.stderr)
    before = files_under(cf[1])
    plain = files_under(c.plain.cache)
    r = run([MREG, '--store', m.mnt, 'promote', 'p', '2', 'Staging'])
    t.ok(r.returncode == 0, 'promoted through the mount', r.stderr)
    t.ok(wait_for(lambda: files_under(cf[1]) >= before + 40),
         'with prefetch_on_promote the daemon fills its cache with the '
         'version (%d files)' % files_under(cf[1]))
    c.proxy.cmd('status 503 100000 on=GET')
    try:
        n0 = c.proxy.count()
        ok = read(m.path('models', 'p', 'stages', 'Staging',
                         'model.bin')) == c.v2
        sent = c.proxy.count() - n0
    finally:
        c.proxy.cmd('clear')
    t.ok(ok and sent == 0, '... which then reads with the object store '
         'refusing every GET (%d requests)' % sent)
    t.ok(files_under(c.plain.cache) == plain,
         'a mount without the switch fetched nothing on that promotion')
    t.eq(m.stop(), 0, 'the mount stops cleanly')
    t.eq(c.plain.stop(), 0, 'the other mount stops cleanly')


def block_refusals(c):
    cf = new_conf(c)
    r = cli(c, cf, 'prefetch', 'nope', 'Production')
    t.ok(r.returncode == 1 and "model 'nope' does not exist" in r.stderr,
         'an unknown model', r.stderr)
    r = cli(c, cf, 'prefetch', 'p', 'Nope')
    t.ok(r.returncode == 1 and "no stage or version 'Nope' of model 'p'"
         in r.stderr, 'an unknown stage or version', r.stderr)
    r = cli(c, cf, 'prefetch', 'p', 'a/b')
    t.ok(r.returncode == 1 and 'invalid stage or version name' in r.stderr,
         'a bad name', r.stderr)
    r = cli(c, new_conf(c, size='2M'), 'prefetch', 'p', 'Production')
    t.ok(r.returncode == 1 and 'does not fit in this host\'s chunk cache'
         in r.stderr and '[cache] size' in r.stderr,
         'a version larger than the cache', r.stderr)
    c.proxy.cmd('status 503 100000 on=/packs/')
    try:
        r = cli(c, cf, 'prefetch', 'p', 'Production')
    finally:
        c.proxy.cmd('clear')
    t.ok(r.returncode == 1 and "cannot fetch the chunks of 'p/Production'"
         in r.stderr, 'the object store refusing: a clear failure',
         r.stderr)
    r = cli(c, cf, 'prefetch', 'p', 'Production')
    t.ok(r.returncode == 0, '... and once it is back, it works', r.stderr)
    if t.on_s3('a local store: no chunk cache to fill, said', 'every store '
               'of this run is on S3'):
        return
    local = os.path.join(c.tmp, 'local')
    run([MREG, '--store', local, 'init'])
    src = os.path.join(c.tmp, 'l.bin')
    write(src, pattern(100000, 34))
    r1 = run([MREG, '--store', local, 'push', 'l', src])
    r = run([MREG, '--store', local, 'prefetch', 'l', '1'])
    t.ok(r1.returncode == 0 and r.returncode == 1 and
         'needs a mount: the store keeps its chunks on this host' in
         r.stderr, 'a local store: no chunk cache to fill, said',
         r1.stderr + r.stderr)


def main():
    why = services.unavailable('rgw')
    if why:
        t.skip('reading from S3', why)
        return t.done()
    tmp = tempfile.mkdtemp(prefix='mreg-s3p-')
    try:
        services.with_rgw(lambda env: run_in(env, tmp))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return t.done()


if __name__ == '__main__':
    sys.exit(main())
