#!/usr/bin/python3
"""hosts_bench.py — issue 14's rows: one registry mounted many times, its
index in PostgreSQL against the same in LMDB, side by side in one run.

  promote   a promotion (ln -sfn through mount 0) seen by a new open
            through each of N mounts (N = 1, 10): milliseconds from the
            return of ln to the first readlink of stages/Production on
            that mount naming the new version, p50 and p99 over
            promotions x mounts;
  register  registrations per second: 3 mounts ("hosts") cp small files
            into one model at once;
  meta      warm stat of a sealed file, warm `ls -l` of a model of 100
            versions, open and first byte of a file through
            stages/Production (what a serving process does), and a cold
            open (the kernel's dentries dropped) of a sealed file: read
            of its first byte;
  scale     `mreg ls` and `mreg search 'name = m5 and version = 50'` on a
            registry of MODELS x VERSIONS sealed versions (populate.c).

PostgreSQL and radosgw come from tests/services (started here, stopped at
the end); LMDB stores use the local pack store. Every mount is taken down
(fusermount3 -u) and every daemon stopped by its pid, even on failure.

Usage: hosts_bench.py [--promotions 30] [--mounts 1,10] [--files 60]
                      [--scale-models 1000] [--scale-versions 100]
                      [--json OUT]
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(TOP, 'tests', 'services'))
import services  # noqa: E402

BUILD = os.environ.get('MREG_BUILD') or os.path.join(TOP, 'build')
MREG = os.path.join(BUILD, 'mreg')
MREGFS = os.path.join(BUILD, 'mregfs')

daemons = []


def pct(v, p):
    v = sorted(v)
    return v[min(len(v) - 1, int(round(p / 100.0 * (len(v) - 1))))]


class Backend:
    def __init__(self, kind, tmp, pg=None, s3=None):
        self.kind = kind
        self.tmp = tmp
        self.env = dict(os.environ)
        os.makedirs(tmp, exist_ok=True)
        self.conf = os.path.join(tmp, '%s.conf' % kind)
        text = '[store]\ndurability = none\n[serve]\nsize = 0\n'
        if kind == 'postgres':
            text = ('[store]\nbackend = s3\ndurability = none\n'
                    '[s3]\nendpoint = %s\nbucket = %s\nregion = %s\n'
                    'key_prefix = hb%d/\n[index]\nbackend = postgres\n'
                    '[postgres]\nconninfo = host=%s port=%s dbname=%s '
                    'user=%s\nschema = hb%d\n[serve]\nsize = 0\n' %
                    (s3['MREG_S3_ENDPOINT'], s3['MREG_S3_BUCKET'],
                     s3['MREG_S3_REGION'], os.getpid(),
                     pg['MREG_PG_HOSTADDR'], pg['PGPORT'],
                     pg['PGDATABASE'], pg['PGUSER'], os.getpid()))
            self.env.update(PGPASSWORD=pg['PGPASSWORD'],
                            AWS_ACCESS_KEY_ID=s3['AWS_ACCESS_KEY_ID'],
                            AWS_SECRET_ACCESS_KEY=s3['AWS_SECRET_ACCESS_KEY'])
        with open(self.conf, 'w') as f:
            f.write(text)
        self.n = 0

    def store(self, i):
        # LMDB: one store, many mounts; postgres: a directory per host
        return os.path.join(self.tmp, '%s-store%s' % (
            self.kind, i if self.kind == 'postgres' else ''))

    def cli(self, *args, store=0):
        return subprocess.run([MREG, '-c', self.conf, '--store',
                               self.store(store)] + list(args),
                              env=self.env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, check=True)

    def mount(self, i):
        mnt = os.path.join(self.tmp, '%s-mnt%d' % (self.kind, i))
        os.makedirs(mnt, exist_ok=True)
        p = subprocess.Popen([MREGFS, '-f', '-c', self.conf, '--store',
                              self.store(i), mnt], env=self.env,
                             stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
        daemons.append((p, mnt))
        end = time.monotonic() + 30
        while time.monotonic() < end:
            if os.path.ismount(mnt):
                return mnt
            if p.poll() is not None:
                raise RuntimeError('mregfs exited')
            time.sleep(0.05)
        raise RuntimeError('mregfs did not mount')


def take_down():
    while daemons:
        p, mnt = daemons.pop()
        subprocess.run(['fusermount3', '-u', '-z', mnt],
                       stderr=subprocess.DEVNULL)
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def versions_of(b, src, model, n, size=4096):
    """n sealed versions of model, each one file."""
    for v in range(n):
        p = os.path.join(src, 'v%d.bin' % v)
        with open(p, 'wb') as f:
            f.write(os.urandom(size))
        b.cli('push', model, p)


def bench_promote(b, src, nmounts, promotions):
    mnts = [b.mount(i) for i in range(nmounts)]
    lat = []
    for k in range(promotions):
        target = '../%d' % (1 + k % 2)
        prods = [os.path.join(m, 'models', 'pm', 'stages', 'Production')
                 for m in mnts]
        subprocess.run(['ln', '-sfn', target, prods[0]], check=True)
        t0 = time.monotonic()
        seen = [None] * nmounts

        def watch(i):
            while time.monotonic() - t0 < 30:
                try:
                    if os.readlink(prods[i]) == target:
                        seen[i] = time.monotonic() - t0
                        return
                except OSError:
                    pass
                time.sleep(0.001)
        th = [threading.Thread(target=watch, args=(i,))
              for i in range(nmounts)]
        for x in th:
            x.start()
        for x in th:
            x.join()
        lat += [s * 1000 for s in seen if s is not None]
    take_down()
    return {'p50_ms': pct(lat, 50), 'p99_ms': pct(lat, 99), 'n': len(lat)}


def bench_register(b, src, nfiles):
    mnts = [b.mount(i) for i in range(3)]
    os.mkdir(os.path.join(mnts[0], 'models', 'reg'))
    files = []
    for i in range(nfiles):
        p = os.path.join(src, 'r%03d.bin' % i)
        with open(p, 'wb') as f:
            f.write(os.urandom(4096))
        files.append(p)

    def copier(i):
        for p in files[i::3]:
            shutil.copyfile(p, os.path.join(mnts[i], "models", "reg",
                                            os.path.basename(p)))
    t0 = time.monotonic()
    th = [threading.Thread(target=copier, args=(i,)) for i in range(3)]
    for x in th:
        x.start()
    for x in th:
        x.join()
    dt = time.monotonic() - t0
    take_down()
    return {'per_s': nfiles / dt, 'files': nfiles, 's': dt}


def bench_meta(b):
    mnt = b.mount(0)
    f = os.path.join(mnt, 'models', 'mm', '50', 'v49.bin')
    d = os.path.join(mnt, 'models', 'mm')
    os.stat(f)
    t0 = time.monotonic()
    for _ in range(20000):
        os.stat(f)
    stat_us = (time.monotonic() - t0) / 20000 * 1e6
    subprocess.run(['ls', '-l', d], stdout=subprocess.DEVNULL)
    t0 = time.monotonic()
    for _ in range(50):
        subprocess.run(['ls', '-l', d], stdout=subprocess.DEVNULL)
    ls_ms = (time.monotonic() - t0) / 50 * 1000
    # a serving process's open: through the stage, every time
    subprocess.run(['ln', '-sfn', '../50', os.path.join(d, 'stages',
                                                        'Production')],
                   check=True)
    sp = os.path.join(d, 'stages', 'Production', 'v49.bin')
    with open(sp, 'rb') as fh:
        fh.read(1)
    t0 = time.monotonic()
    for _ in range(2000):
        with open(sp, 'rb') as fh:
            fh.read(1)
    stage_us = (time.monotonic() - t0) / 2000 * 1e6
    cold = []
    for v in range(1, 21):
        with open('/proc/sys/vm/drop_caches', 'w') as w:
            w.write('2\n')
        p = os.path.join(mnt, 'models', 'mm', str(v), 'v%d.bin' % (v - 1))
        t0 = time.monotonic()
        with open(p, 'rb') as fh:
            fh.read(1)
        cold.append((time.monotonic() - t0) * 1000)
    take_down()
    return {'stat_us': stat_us, 'ls_l_ms': ls_ms, 'stage_open_us': stage_us,
            'cold_open_ms_p50': pct(cold, 50)}


def bench_scale(b, models, nversions):
    cc = os.path.join(b.tmp, 'populate')
    if not os.path.exists(cc):
        pk = subprocess.run(['pkg-config', '--cflags', '--libs', 'lmdb',
                             'libxxhash', 'libbsd-overlay', 'libmd',
                             'libcurl', 'libpq', 'libcrypto'],
                            stdout=subprocess.PIPE, text=True,
                            check=True).stdout.split()
        subprocess.run(['cc', '-O2', '-D_GNU_SOURCE',
                        '-D_FILE_OFFSET_BITS=64', '-I%s/core' % TOP, '-o', cc,
                        os.path.join(HERE, 'populate.c'),
                        os.path.join(BUILD, 'libmregcore.a')] + pk +
                       ['-lpthread'], check=True, stderr=subprocess.DEVNULL)
    t0 = time.monotonic()
    subprocess.run([cc, b.conf, b.store(9), str(models), str(nversions),
                    'm'], env=b.env, check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    built = time.monotonic() - t0
    out = {'versions': models * nversions, 'populate_s': built}
    for name, args in (('ls', ['ls']),
                       ('search', ['search', 'name = m5 and version = 50'])):
        best = []
        for _ in range(5):
            t0 = time.monotonic()
            subprocess.run([MREG, '-c', b.conf, '--store', b.store(9)] +
                           args, env=b.env, stdout=subprocess.DEVNULL,
                           check=True)
            best.append(time.monotonic() - t0)
        out[name + '_s'] = statistics.median(best)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--promotions', type=int, default=30)
    ap.add_argument('--mounts', default='1,10')
    ap.add_argument('--files', type=int, default=60)
    ap.add_argument('--scale-models', type=int, default=1000)
    ap.add_argument('--scale-versions', type=int, default=100)
    ap.add_argument('--json')
    a = ap.parse_args()
    for kind in ('pg', 'rgw'):
        why = services.unavailable(kind)
        if why:
            sys.exit('hosts_bench: %s cannot run: %s' % (kind, why))
    res = {}
    tmp = tempfile.mkdtemp(prefix='mreg-hb-')
    try:
        with services.Service('pg') as pg, services.Service('rgw') as s3:
            for kind in ('lmdb', 'postgres'):
                b = Backend(kind, os.path.join(tmp, kind), pg, s3)
                os.makedirs(b.tmp, exist_ok=True)
                src = os.path.join(b.tmp, 'src')
                os.mkdir(src)
                r = res.setdefault(kind, {})
                b.cli('init')
                versions_of(b, src, 'pm', 2)
                for n in [int(x) for x in a.mounts.split(',')]:
                    r['promote_%d' % n] = bench_promote(b, src, n,
                                                        a.promotions)
                r['register'] = bench_register(b, src, a.files)
                versions_of(b, src, 'mm', 100)
                r['meta'] = bench_meta(b)
                r['scale'] = bench_scale(b, a.scale_models,
                                         a.scale_versions)
                print(json.dumps({kind: r}), flush=True)
    finally:
        take_down()
        shutil.rmtree(tmp, ignore_errors=True)
    if a.json:
        with open(a.json, 'w') as f:
            json.dump(res, f, indent=1)
    print('| row | LMDB | PostgreSQL |')
    print('|---|---|---|')
    rows = []
    for n in [int(x) for x in a.mounts.split(',')]:
        rows.append(('promotion seen, %d mount%s: p50 / p99 ms' %
                     (n, 's' if n > 1 else ''),
                     lambda r, n=n: '%.1f / %.1f' % (
                         r['promote_%d' % n]['p50_ms'],
                         r['promote_%d' % n]['p99_ms'])))
    rows += [
        ('registrations per second, 3 mounts into one model',
         lambda r: '%.1f' % r['register']['per_s']),
        ('warm stat of a sealed file, us',
         lambda r: '%.1f' % r['meta']['stat_us']),
        ('open + first byte through stages/Production, us',
         lambda r: '%.0f' % r['meta']['stage_open_us']),
        ('warm ls -l of a model of 100 versions, ms',
         lambda r: '%.1f' % r['meta']['ls_l_ms']),
        ('cold open + first byte of a sealed file, ms (p50)',
         lambda r: '%.1f' % r['meta']['cold_open_ms_p50']),
        ('mreg ls, %d versions, s' % (a.scale_models * a.scale_versions),
         lambda r: '%.3f' % r['scale']['ls_s']),
        ("mreg search 'name = m5 and version = 50', s",
         lambda r: '%.3f' % r['scale']['search_s']),
    ]
    for name, fn in rows:
        print('| %s | %s | %s |' % (name, fn(res['lmdb']),
                                     fn(res['postgres'])))


if __name__ == '__main__':
    main()
