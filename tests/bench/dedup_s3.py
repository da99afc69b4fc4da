#!/usr/bin/python3
"""dedup_s3.py - what deciding dedup costs in an S3 store (README, "Chunks
in S3"): the 12 units of ../shared/bench/gen_models.py pushed in order into
a fresh store on radosgw, each push by a new host (its cache emptied
first), recording per push the wall time and the bytes radosgw served
(GET) and took (PUT), read from its perf counters (admin socket).

    sh tests/services/rgw.sh start DIR   (MREG_RGW_MEMSTORE_BYTES=4294967296)
    /usr/bin/python3 tests/bench/dedup_s3.py build/mreg DATA DIR MODE OUT.json

MODE names the run in OUT.json and the store's work directory
(/tmp/mreg-dedup-MODE); MODE noverify sets dedup_verify = false."""
import json, os, shutil, subprocess, sys, time
mreg, data, rgwdir, mode, out = sys.argv[1:6]
env = {}
for l in open(os.path.join(rgwdir, 'rgw.env')):
    l = l.strip()
    if l and not l.startswith('#') and ' ' not in l:
        k, _, v = l.partition('='); env[k] = v
asok = os.path.join(rgwdir, 'rgw', 'run', 'client.rgw.asok')
conf = os.path.join(rgwdir, 'rgw', 'ceph.conf')
def perf():
    d = json.loads(subprocess.run(['ceph', '-c', conf, 'daemon', asok, 'perf', 'dump'],
                                  capture_output=True, text=True, check=True).stdout)['rgw']
    return d['get_b'], d['put_b'], d['get']
work = '/tmp/mreg-dedup-' + mode
shutil.rmtree(work, ignore_errors=True); os.makedirs(work)
prefix = 'bench-%s-%d/' % (mode, int(time.time()))
cfg = os.path.join(work, 'mreg.conf')
open(cfg, 'w').write('[store]\nbackend = s3\ndedup_verify = %s\n[s3]\nendpoint = %s\nbucket = %s\n'
  'region = %s\npath_style = yes\nkey_prefix = %s\n[cache]\npath = %s/cache\nsize = 10G\n' % (
  'false' if mode == 'noverify' else 'true', env['MREG_S3_ENDPOINT'], env['MREG_S3_BUCKET'],
  env['MREG_S3_REGION'], prefix, work))
penv = dict(os.environ, AWS_ACCESS_KEY_ID=env['AWS_ACCESS_KEY_ID'],
            AWS_SECRET_ACCESS_KEY=env['AWS_SECRET_ACCESS_KEY'])
store = os.path.join(work, 'store')
subprocess.run([mreg, '-c', cfg, '--store', store, 'init'], check=True, env=penv, stdout=subprocess.DEVNULL)
units = json.load(open(os.path.join(data, 'summary.json')))['units']
subprocess.run(['sh', '-c', "find '%s' -type f -exec cat {} + >/dev/null" % data])
rows = []
for u in units:
    shutil.rmtree(os.path.join(work, 'cache'), ignore_errors=True)
    g0, p0, n0 = perf(); t = time.monotonic()
    r = subprocess.run([mreg, '-c', cfg, '--store', store, '-q', 'push', 'bench',
                        os.path.join(data, u['name'])], env=penv, capture_output=True, text=True)
    dt = time.monotonic() - t; g1, p1, n1 = perf()
    rows.append(dict(unit=u['name'], logical=u['logical_bytes'], time=dt, get_b=g1 - g0,
                     gets=n1 - n0, put_b=p1 - p0, rc=r.returncode))
    print('%-28s %6.2f s  GET %12d B (%6d reqs)  PUT %12d B  rc %d %s' % (
        u['name'], dt, g1 - g0, n1 - n0, p1 - p0, r.returncode, r.stderr.strip()[:200]), flush=True)
tot = dict(time=sum(r['time'] for r in rows), get_b=sum(r['get_b'] for r in rows),
           gets=sum(r['gets'] for r in rows), put_b=sum(r['put_b'] for r in rows),
           logical=sum(r['logical'] for r in rows))
print('TOTAL %s' % json.dumps(tot))
json.dump(dict(mode=mode, rows=rows, total=tot), open(out, 'w'), indent=1)
