"""A registry whose chunks are in S3 (issue 13: [store] backend = s3),
against the radosgw of tests/services/rgw.sh (started here and stopped at
the end; MREG_RGW_DIR=DIR uses one already running in DIR):

  - a mount of a new store with backend = s3 takes a copied file; its
    chunks are pack objects under the configured key prefix of the
    bucket and in the host's cache, and no pack file is in the store;
  - a second mount of the store with an empty cache directory reads the
    file back (its chunks fetched from the object store into that cache);
  - a store made with one backend refuses to open with the other, saying
    which ("was made with [store] backend = s3, the config asks for
    local"), and mregfs refuses to mount it;
  - wrong credentials stop mregfs at start with a one-line reason; the
    CLI, which asks the object store only for a chunk, lists with them
    and fails a read of an uncached file saying why;
  - gc on S3, where a pack object cannot be cut: a removed version whose
    chunks end a pack object another version still uses (a dead tail) is
    reclaimed by a rewrite of the object, never by a cut; what stays
    reads back and fsck --full finds nothing.

Skipped, with the reason, where Ceph's packages are not installed.
"""
import os
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))), 'services'))
from mountlib import MREG, MREGFS, Mount, Tap, pattern  # noqa: E402
import services  # noqa: E402

t = Tap()
GRACE = 60   # [s3] gc_grace of the configs, the least it may be


def write(path, data):
    pathlib.Path(path).write_bytes(data)


def read(path):
    return pathlib.Path(path).read_bytes()


def conf(path, env, prefix, cache, backend='s3'):
    """A config naming the object store of env, under key prefix."""
    write(path, ('[store]\nbackend = %s\n'
                 '[s3]\nendpoint = %s\nbucket = %s\nregion = %s\n'
                 'path_style = yes\nkey_prefix = %s\ngc_grace = %d\n'
                 '[cache]\npath = %s\nsize = 64M\n'
                 # no serving copies: every read goes through the store
                 '[serve]\nsize = 0\n' %
                 (backend, env['MREG_S3_ENDPOINT'], env['MREG_S3_BUCKET'],
                  env['MREG_S3_REGION'], prefix, GRACE, cache)).encode())
    return path


def listing(env, prefix):
    """The keys of the bucket under prefix (a signed LIST by curl)."""
    enc = prefix.replace('/', '%2F')
    r = subprocess.run(
        ['curl', '-sf', '--aws-sigv4', 'aws:amz:%s:s3' % env['MREG_S3_REGION'],
         '--user', '%s:%s' % (env['AWS_ACCESS_KEY_ID'],
                              env['AWS_SECRET_ACCESS_KEY']),
         '-H', 'x-amz-content-sha256: UNSIGNED-PAYLOAD',
         '%s/%s?list-type=2&prefix=%s' % (env['MREG_S3_ENDPOINT'],
                                         env['MREG_S3_BUCKET'], enc)],
        stdout=subprocess.PIPE, text=True, timeout=60)
    return re.findall(r'<Key>([^<]*)</Key>', r.stdout)


def files_under(d):
    n = 0
    for _, _, fs in os.walk(d):
        n += len(fs)
    return n


def run(env):
    tmp = tempfile.mkdtemp(prefix='mreg-s3-conf-')
    try:
        run_in(env, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def run_in(env, tmp):
    creds = {k: env[k] for k in ('AWS_ACCESS_KEY_ID',
                                 'AWS_SECRET_ACCESS_KEY')}
    prefix = 't-fs-s3-%d/' % os.getpid()
    cache1 = os.path.join(tmp, 'cache1')
    cache2 = os.path.join(tmp, 'cache2')
    c1 = conf(os.path.join(tmp, 's3-1.conf'), env, prefix, cache1)
    c2 = conf(os.path.join(tmp, 's3-2.conf'), env, prefix, cache2)
    big = pattern(3 << 20, 13)
    small = pattern(1000, 14)
    write(os.path.join(tmp, 'model.onnx'), big)
    write(os.path.join(tmp, 'vocab.txt'), small)

    m = Mount('s3', args=['-c', c1], env=creds)
    m.start()
    churn = m.path('models', 'churn')
    os.mkdir(churn)
    r = subprocess.run(['cp', os.path.join(tmp, 'model.onnx'),
                        os.path.join(tmp, 'vocab.txt'), churn + '/'])
    t.eq(r.returncode, 0, 'cp of two files into a model of an s3 store')
    t.ok(read(os.path.join(churn, '1', 'model.onnx')) == big and
         read(os.path.join(churn, '2', 'vocab.txt')) == small,
         'versions 1 and 2 read back through the mount')
    keys = listing(env, prefix)
    objs = [k for k in keys if k.startswith(prefix + 'packs/')]
    t.ok(len(objs) >= 2, 'the chunks are pack objects under %spacks/ '
         '(%d objects)' % (prefix, len(objs)), keys)
    t.ok(not os.path.exists(os.path.join(m.store, 'packs')),
         'no pack file in the store')
    t.ok(files_under(cache1) >= 20, 'the chunks written are in the '
         'cache (%d files)' % files_under(cache1))
    t.eq(m.stop(), 0, 'the first mount stops cleanly')

    m2 = Mount('s3', args=['-c', c2], env=creds, tmp=m.tmp)
    m2.start()
    t.eq(files_under(cache2), 0, 'a second mount with an empty cache')
    t.ok(read(m2.path('models', 'churn', '1', 'model.onnx')) == big and
         read(m2.path('models', 'churn', '2', 'vocab.txt')) == small,
         '... reads both files back: the right bytes')
    t.ok(files_under(cache2) == files_under(cache1),
         '... fetched from the object store '
         'into its cache (%d files, as many as the first)' %
         files_under(cache2))
    t.eq(m2.stop(), 0, 'the second mount stops cleanly')

    # for gc: version 1 of gcm is a.bin then b.bin, in one pack object;
    # version 2 is a.bin alone (its chunks found in that object)
    def cli(*a):
        return subprocess.run([MREG, '-c', c1, '--store', m.store] + list(a),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              timeout=300, env=dict(os.environ, **creds))
    for d, names in (('v1', ('a.bin', 'b.bin')), ('v2', ('a.bin',))):
        os.mkdir(os.path.join(tmp, d))
        for n in names:
            write(os.path.join(tmp, d, n),
                  pattern(2 << 20, 21) if n == 'a.bin' else
                  pattern(1 << 20, 22))
    r1 = cli('push', 'gcm', os.path.join(tmp, 'v1'))
    r2 = cli('push', 'gcm', os.path.join(tmp, 'v2'))
    t.ok(r1.returncode == 0 and r2.returncode == 0,
         'two versions pushed by the CLI into the s3 store',
         r1.stderr + r2.stderr)
    written = time.monotonic()

    # one backend per store
    local = os.path.join(tmp, 'local.conf')
    write(local, b'[store]\nbackend = local\n')
    r = subprocess.run([MREG, '-c', local, '--store', m.store, 'ls'],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       text=True, timeout=60)
    t.ok(r.returncode != 0 and 'was made with [store] backend = s3, the '
         'config asks for local' in r.stderr,
         'an s3 store refuses to open with backend = local', r.stderr)
    r = subprocess.run([MREGFS, '-f', '-c', local, '--store', m.store,
                        m.mnt], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True, timeout=60)
    t.ok(r.returncode != 0 and 'backend = s3' in r.stderr,
         '... and mregfs does not mount it', r.stderr)
    lstore = os.path.join(tmp, 'lstore')
    subprocess.run([MREG, '-c', local, '--store', lstore, 'init'], check=True,
                   stdout=subprocess.DEVNULL, timeout=60)
    r = subprocess.run([MREG, '-c', c1, '--store', lstore, 'ls'],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       text=True, timeout=60, env=dict(os.environ, **creds))
    t.ok(r.returncode != 0 and 'was made with [store] backend = local, '
         'the config asks for s3' in r.stderr,
         'a local store refuses to open with backend = s3', r.stderr)

    # wrong credentials: a one-line reason at start
    r = subprocess.run([MREGFS, '-f', '-c', c2, '--store', m.store, m.mnt],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       text=True, timeout=120,
                       env=dict(os.environ, AWS_ACCESS_KEY_ID=creds[
                           'AWS_ACCESS_KEY_ID'], AWS_SECRET_ACCESS_KEY='x'))
    t.ok(r.returncode != 0 and 'wrong secret key' in r.stderr,
         'wrong credentials: mregfs stops at start saying so', r.stderr)
    # the CLI asks the object store only when it needs a chunk: with
    # the wrong key, ls reads the index, cat of what no cache holds says
    # why (c3: a third, empty cache)
    c3 = conf(os.path.join(tmp, 's3-3.conf'), env, prefix,
              os.path.join(tmp, 'cache3'))
    bad = dict(os.environ, AWS_ACCESS_KEY_ID=creds['AWS_ACCESS_KEY_ID'],
               AWS_SECRET_ACCESS_KEY='x')
    r = subprocess.run([MREG, '-c', c3, '--store', m.store, 'ls'],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       text=True, timeout=120, env=bad)
    t.ok(r.returncode == 0 and 'churn' in r.stdout and not r.stderr,
         'wrong credentials: mreg ls reads the index alone and works',
         r.stdout + r.stderr)
    r = subprocess.run([MREG, '-c', c3, '--store', m.store, 'cat',
                        'churn/2/vocab.txt'], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True, timeout=120,
                       env=bad)
    t.ok(r.returncode != 0 and 'wrong secret key' in r.stderr and
         not r.stdout and len(r.stderr.splitlines()) <= 2,
         '... mreg cat of an uncached file fails, saying why', r.stderr)
    t.diag(r.stderr.strip())
    # gc: objects are never cut (no STORE_CAN_CUT): dead tails go by a
    # rewrite, or with their object
    before = set(k for k in listing(env, prefix)
                 if k.startswith(prefix + 'packs/'))
    r = cli('rm', 'gcm/1')
    t.ok(r.returncode == 0, 'mreg rm of version 1: b.bin\'s chunks are the '
         'dead tail of an object whose a.bin version 2 uses', r.stderr)
    # gc leaves objects younger than gc_grace (60 s, the least) alone
    left = written + GRACE + 2 - time.monotonic()
    if left > 0:
        time.sleep(left)
    r = cli('gc', '--all')
    t.ok(r.returncode == 0, 'gc --all of an s3 store succeeds (no cut of a '
         'pack object)', r.stderr.decode(errors='replace'))
    after = set(k for k in listing(env, prefix)
                if k.startswith(prefix + 'packs/'))
    t.ok(after != before, '... and changed the pack objects (%d before, '
         '%d after)' % (len(before), len(after)))
    r = cli('cat', 'gcm/2/a.bin')
    t.ok(r.returncode == 0 and r.stdout == pattern(2 << 20, 21),
         'version 2 reads back the same bytes after gc')
    r = cli('fsck', '--full')
    t.ok(r.returncode == 0, 'fsck --full finds nothing after gc',
         r.stdout.decode(errors='replace') + r.stderr.decode(
             errors='replace'))

    m2.close()
    m.close()


def main():
    why = services.unavailable('rgw')
    if why:
        t.skip('a registry on S3', why)
        return t.done()
    services.with_rgw(run)
    return t.done()


if __name__ == '__main__':
    sys.exit(main())
