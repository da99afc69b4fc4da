"""One registry, three hosts (issue 14): three mounts, each with a store
directory and cache of its own (a "host": its own processes, its own
DIR), sharing the index in a real PostgreSQL ([index] backend =
postgres) and the chunks in a real radosgw ([store] backend = s3):

  - concurrent cp into one model through the three mounts: distinct
    consecutive version numbers, none lost, none reused, each with the
    bytes copied;
  - a promotion through one mount (ln -sfn) is seen by a new open
    through the others; `mreg hosts` lists the three mounts and says
    that each has seen it (and a killed one as gone);
  - walks through stages/ are answered from what a mount keeps while its
    watcher (LISTEN) vouches, and a promotion through another host is
    seen at once all the same;
  - a stage policy set through one host's CLI is enforced on every host,
    by every route (the mount: EACCES; the CLI: a refusal), and audited;
  - a draft written through one mount cannot be sealed from another host
    (a file is open for writing); once the writer is done, it can;
  - a version open through one mount, removed through another and gc'ed
    from a third, still reads right: the pin is seen across hosts; once
    closed, gc frees it;
  - a promotion's hook runs for the registry even when the host that made
    the change dies (with its hook) right after the commit: another
    host's daemon takes it over;
  - the audit trail is one hash chain after all of that (audit --verify);
  - kill -9 of one host's daemon in the middle of a write leaves no
    version on the others, and the host mounts again;
  - PostgreSQL stopped under a reader and a writer: a file open before
    reads on; a daemon started again on a host that served a version
    opens and reads its files from the host's copy of sealed records
    (registry/fixed.c) and chunk cache; a version the host never saw, and
    a stage, fail with EIO within the [postgres] timeout (never a hang);
    the daemon log says why; once it is back, everything works without a
    remount.

PostgreSQL (tests/services/pg.sh) is started for this file; radosgw is
the run's (MREG_RGW_DIR) or one of its own. Skipped, saying why, where
either cannot run.
"""
import errno
import json
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
from mountlib import (MREG, S3, Mount, Tap, file_sha, pattern,  # noqa: E402
                      seen_within, versions)
import services  # noqa: E402

t = Tap()
HOSTS = 3
TIMEOUT = 4      # [postgres] timeout of the configs, seconds


def write(path, data):
    pathlib.Path(path).write_bytes(data)


def conf(path, pg, s3, schema):
    write(path, ('[store]\nbackend = s3\n'
                 '[s3]\nendpoint = %s\nbucket = %s\nregion = %s\n'
                 'path_style = yes\nkey_prefix = %s/\ngc_grace = 60\n'
                 '[index]\nbackend = postgres\n'
                 '[postgres]\nconninfo = host=%s port=%s dbname=%s '
                 'user=%s\nschema = %s\ntimeout = %d\n'
                 # every read through the store: no serving copies
                 '[serve]\nsize = 0\n' %
                 (s3['MREG_S3_ENDPOINT'], s3['MREG_S3_BUCKET'],
                  s3['MREG_S3_REGION'], schema, pg['PGHOST'], pg['PGPORT'],
                  pg['PGDATABASE'], pg['PGUSER'], schema,
                  TIMEOUT)).encode())
    return path


def came(cond, timeout):
    """Whether cond() came to hold within timeout seconds."""
    return seen_within(cond, timeout, timeout=timeout)[0]


def errno_of(fn, *args):
    try:
        fn(*args)
        return 0
    except OSError as e:
        return e.errno


class Hosts:
    def __init__(self, pg, s3, tmp):
        self.env = {k: pg[k] for k in ('PGPASSWORD',)}
        self.env.update({k: s3[k] for k in ('AWS_ACCESS_KEY_ID',
                                            'AWS_SECRET_ACCESS_KEY')})
        schema = 'mh_%d' % os.getpid()
        self.conf = conf(os.path.join(tmp, 'host.conf'), pg, s3, schema)
        self.m = [Mount('host%d' % i, args=['-c', self.conf], env=self.env)
                  for i in range(HOSTS)]

    def cli(self, i, *args):
        """mreg on host i (its own store directory)."""
        return subprocess.run([MREG, '-c', self.conf, '--store',
                               self.m[i].store] + list(args),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, timeout=300,
                              env=dict(os.environ, **self.env))

    def model(self, i, *parts):
        return self.m[i].path('models', *parts)


def test_register(h, src):
    """Three hosts cp four files each into one model, at once."""
    os.mkdir(h.model(0, 'm'))
    files = []
    for i in range(HOSTS * 4):
        p = os.path.join(src, 'f%02d.bin' % i)
        write(p, pattern(300000 + 4096 * i, 100 + i))
        files.append(p)
    rcs = [None] * HOSTS

    def copier(i):
        rc = 0
        for p in files[i::HOSTS]:
            rc |= subprocess.run(['cp', p, h.model(i, 'm') + '/']).returncode
        rcs[i] = rc
    th = [threading.Thread(target=copier, args=(i,)) for i in range(HOSTS)]
    for x in th:
        x.start()
    for x in th:
        x.join()
    t.eq(rcs, [0] * HOSTS, 'three hosts cp into one model at once')
    want = list(range(1, len(files) + 1))
    for i in range(HOSTS):
        t.eq(versions(h.model(i, 'm')), want,
             'host %d sees versions 1..%d: none lost, none reused'
             % (i, len(files)))
    got = set()
    for v in want:
        d = h.model(1, 'm', str(v))
        names = os.listdir(d)
        if len(names) == 1:
            got.add((names[0], file_sha(os.path.join(d, names[0]))))
    t.eq(got, set((os.path.basename(p), file_sha(p)) for p in files),
         'each version holds one of the files copied, each file once, '
         'its bytes read back through another host')


def test_promote(h):
    stages = h.model(0, 'm', 'stages')
    t.eq(subprocess.run(['ln', '-sfn', '../3', stages + '/Production'])
         .returncode, 0, 'ln -sfn ../3 stages/Production through host 0')
    want = file_sha(os.path.join(h.model(0, 'm', '3'),
                                 os.listdir(h.model(0, 'm', '3'))[0]))
    for i in (1, 2):
        prod = h.model(i, 'm', 'stages', 'Production')

        def seen():
            try:
                return (os.readlink(prod) == '../3' and
                        file_sha(os.path.join(prod, os.listdir(prod)[0]))
                        == want)
            except OSError:
                return False
        ok, late = seen_within(seen, 2, timeout=30)
        t.ok(ok and late is None,
             'host %d: a new open of stages/Production reads version 3 '
             'within 2 s' % i)


def hosts_json(h, i, *args):
    r = h.cli(i, 'hosts', '--json', *args)
    try:
        return r.returncode, json.loads(r.stdout)
    except ValueError:
        return r.returncode, {'error': r.stderr}


def test_hosts(h):
    """mreg hosts: every mount, and whether it has seen the promotion."""
    def listed():
        d = hosts_json(h, 2)[1]
        return (sorted(x['mount'] for x in d.get('hosts', [])
                       if x['alive']) == sorted(m.mnt for m in h.m))
    # each says so at its tick (2 s), which a burst of work may delay
    t.ok(came(listed, 30),
         'mreg hosts lists the three mounts, alive', hosts_json(h, 2)[1])
    rc, d = hosts_json(h, 2, 'm', 'Production', '--wait', '20')
    t.ok(rc == 0 and d.get('all_seen') is True and
         d.get('change', {}).get('version') == '3',
         'mreg hosts m Production --wait: every mount has seen the '
         'promotion to version 3 (exit 0)', d)
    t.ok(all(x['seen'] and x['applied'] >= d['change']['seq']
             for x in d.get('hosts', [])),
         '... each mount\'s applied change is at or past it')
    r = h.cli(0, 'hosts')
    t.ok(r.returncode == 0 and r.stdout.count(' live') == HOSTS,
         'mreg hosts prints one line per mount', r.stdout + r.stderr)


def test_current(h):
    """Walks through stages/ ask the database nothing while a mount's
    watcher vouches (registry/current.c); a promotion elsewhere is seen at
    once all the same (NOTIFY, registry/watch.c)."""
    prod = h.model(1, 'm', 'stages', 'Production')
    name = sorted(os.listdir(prod))[0]
    want3 = file_sha(os.path.join(prod, name))
    h0 = h.m[1].metric('mreg_current_hits_total')
    for _ in range(20):
        with open(os.path.join(prod, name), 'rb') as f:
            f.read(1)
    h1 = h.m[1].metric('mreg_current_hits_total')
    t.ok(h0 is not None and h1 is not None and h1 - h0 >= 20,
         '20 opens through stages/Production on host 1: the stage and its '
         'target from what the daemon keeps (%s more hits)' %
         (None if h0 is None or h1 is None else h1 - h0))
    for target, why in (('../2', 'to version 2'), ('../3', 'back to 3')):
        r = subprocess.run(['ln', '-sfn', target,
                            h.model(0, 'm', 'stages', 'Production')])

        def seen(target=target):
            try:
                return os.readlink(prod) == target
            except OSError:
                return False
        ok, late = seen_within(seen, 2, timeout=30)
        t.ok(r.returncode == 0 and ok and late is None,
             'host 0 promotes %s: host 1, which keeps the stage, sees it '
             'within 2 s' % why)
    t.eq(file_sha(os.path.join(prod, name)), want3,
         '... and reads version 3\'s bytes through the stage')
    # a command on host 1 itself: read-your-writes, not "soon"
    for v in ('2', '3'):
        os.readlink(prod)       # kept
        r = h.cli(1, 'promote', 'm', v, 'Production')
        got = os.readlink(prod)
        t.ok(r.returncode == 0 and got == '../' + v,
             'mreg promote m %s Production on host 1: the next readlink '
             'through host 1\'s mount says ../%s at once (%s)' % (v, v, got),
             r.stderr)


def test_policy(h):
    r = h.cli(1, 'policy', 'set', 'Production', 'require_stage=Staging')
    t.ok(r.returncode == 0, 'host 1 sets a policy: Production requires '
         'Staging first', r.stderr)
    for i in range(HOSTS):
        prod = h.model(i, 'm', 'stages', 'Production')
        r = subprocess.run(['ln', '-sfn', '../5', prod], text=True,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        t.ok(r.returncode != 0 and 'Permission denied' in r.stderr,
             'host %d: the mount refuses version 5 for Production (never '
             'in Staging): EACCES' % i, r.stderr)
        r = h.cli(i, 'promote', 'm', '6', 'Production')
        t.ok(r.returncode != 0 and 'Staging' in r.stderr,
             'host %d: the CLI refuses version 6 for Production, '
             'naming the rule' % i, r.stderr)
    t.eq(os.readlink(h.model(2, 'm', 'stages', 'Production')), '../3',
         'Production still points at version 3')
    r = h.cli(0, 'audit', '--json')
    refused = [a for a in _records(r.stdout)
               if a.get('op', '').startswith('promote') and
               a.get('result', 'ok') != 'ok']
    t.ok(len(refused) >= 1, 'the refusals are audited (%d)' % len(refused),
         r.stdout[-2000:])


def _records(text):
    out = []
    for ln in text.splitlines():
        ln = ln.strip()
        if ln.startswith('{'):
            try:
                out.append(json.loads(ln))
            except ValueError:
                pass
    if not out and text.strip().startswith('['):
        out = json.loads(text)
    return out


def test_writer(h):
    d = h.model(0, 'w')
    os.mkdir(d)
    os.mkdir(os.path.join(d, '1'))
    f = open(os.path.join(d, '1', 'part.bin'), 'wb')
    f.write(b'x' * 100000)
    f.flush()
    r = h.cli(1, 'seal', 'w', '1')
    t.ok(r.returncode != 0 and 'open for writing' in r.stderr,
         'a draft written through host 0 cannot be sealed from host 1 '
         '(a file open for writing)', r.stderr)
    f.close()

    def sealed():
        return h.cli(1, 'seal', 'w', '1').returncode == 0
    t.ok(came(sealed, 30),
         'once the writer closed, host 1 seals it')
    t.eq(open(h.model(2, 'w', '1', 'part.bin'), 'rb').read(), b'x' * 100000,
         'host 2 reads the sealed file')


def test_pins(h, src):
    data = pattern(2 << 20, 77)
    p = os.path.join(src, 'g.bin')
    write(p, data)
    os.mkdir(h.model(0, 'g'))
    subprocess.run(['cp', p, h.model(0, 'g') + '/'], check=True)
    f = open(h.model(0, 'g', '1', 'g.bin'), 'rb')
    head = f.read(4096)
    r = h.cli(1, 'rm', 'g', '1')
    t.ok(r.returncode == 0, 'host 1 removes version g/1, open on host 0',
         r.stderr)
    r = h.cli(2, 'gc', '--json')
    t.ok(r.returncode == 0, 'host 2 runs gc', r.stderr)
    try:
        freed = json.loads(r.stdout).get('versions_freed')
    except ValueError:
        freed = None
    t.eq(freed, 0, 'gc on host 2 frees nothing: host 0 has g/1 open')
    rest = f.read()
    t.ok(head + rest == data, 'host 0 reads the removed version to its end')
    f.close()

    def freed_now():
        r = h.cli(2, 'gc', '--json')
        try:
            return json.loads(r.stdout).get('versions_freed') == 1
        except ValueError:
            return False
    # pins are let go lazily, at the daemon's next tick (2 s)
    t.ok(came(freed_now, 30),
         'once host 0 closed it, gc frees it')


def test_hook_once(h, src):
    """A promotion's hook runs once for the registry: the host whose CLI
    made the change dies (with its hook) right after the commit, and
    another host's daemon runs the hook instead."""
    out = os.path.join(src, 'hook.out')
    hook = os.path.join(src, 'hook.sh')
    write(hook, ('#!/bin/sh\necho "start $$ $MREG_MODEL/$MREG_VERSION '
                 '$MREG_STAGE" >>%s\nsleep 2\necho "end $$" >>%s\n'
                 % (out, out)).encode())
    os.chmod(hook, 0o755)
    r = h.cli(0, 'policy', 'hook', 'on_promote', hook)
    t.ok(r.returncode == 0, 'an on_promote hook stored in the registry',
         r.stderr)
    p = subprocess.Popen([MREG, '-c', h.conf, '--store', h.m[0].store,
                          'promote', 'm', '7', 'Canary'],
                         env=dict(os.environ, **h.env),
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def started():
        try:
            return 'start' in open(out).read()
        except OSError:
            return False
    t.ok(came(started, 30),
         'host 0\'s CLI promotes m/7 to Canary; its hook starts')
    pid = int(open(out).read().split()[1])
    os.kill(p.pid, 9)
    p.wait()
    try:
        os.killpg(pid, 9)   # the hook runs in a group of its own
    except OSError:
        pass
    t.eq(open(out).read().count('end'), 0,
         'host 0 dies (CLI and hook killed) before the hook ended')

    def ended():
        try:
            return open(out).read().count('end') >= 1
        except OSError:
            return False
    t.ok(came(ended, 60),
         'another host\'s daemon runs the hook it left', open(out).read()
         if os.path.exists(out) else '')
    time.sleep(4)
    text = open(out).read()
    t.ok(text.count('end') == 1 and text.count(' m/7 Canary') == 2,
         'the hook ended once, for the promotion of m/7 to Canary', text)
    r = h.cli(1, 'policy', 'unhook', 'on_promote')
    t.ok(r.returncode == 0, 'the hook unset', r.stderr)


def test_audit(h):
    r = h.cli(2, 'audit', '--verify')
    t.ok(r.returncode == 0 and 'intact' in r.stdout,
         'the audit trail of all three hosts is one intact chain',
         r.stdout + r.stderr)


def test_kill(h, src):
    before = versions(h.model(1, 'm'))
    big = os.path.join(h.model(0, 'm'), 'big.bin')
    fd = os.open(big, os.O_WRONLY | os.O_CREAT, 0o644)
    os.write(fd, pattern(4 << 20, 5))
    state = h.m[0].kill9()
    try:
        os.close(fd)
    except OSError:
        pass
    t.ok(state in ('removed', 'dead'), 'host 0\'s daemon killed in the '
         'middle of a write (%s)' % state)
    time.sleep(1)
    t.eq(versions(h.model(1, 'm')), before,
         'host 1 sees no new version: the killed write registered nothing')
    dead = h.m[0].pid()

    def gone():
        d = hosts_json(h, 1)[1]
        return [x['alive'] for x in d.get('hosts', [])
                if x['pid'] == dead] == [False]
    # a server started less than 15 s ago counts every lock as held
    t.ok(came(gone, 30),
         'mreg hosts shows the killed mount as gone',
         hosts_json(h, 1)[1])
    h.m[0].proc = None
    h.m[0].start()
    t.eq(versions(h.model(0, 'm')), before, 'host 0 mounts again, and '
         'sees the same versions')


def test_pg_down(h, pg, src):
    p = os.path.join(src, 'late.bin')
    write(p, pattern(1 << 20, 9))
    # host 2 serves a version (reads a file of it once); host 0 then
    # registers one that host 2 never sees
    vs = versions(h.model(2, 'm'))
    served = h.model(2, 'm', str(vs[0]))
    name = sorted(os.listdir(served))[0]
    want = pathlib.Path(served, name).read_bytes()
    write(os.path.join(src, 'unseen.bin'), pattern(1 << 16, 10))
    subprocess.run(['cp', os.path.join(src, 'unseen.bin'),
                    h.model(0, 'm') + '/'], check=True)
    unseen = versions(h.model(0, 'm'))[-1]
    # a daemon of host 2 started again: nothing in its memory, nor in the
    # kernel's caches; what it read before is in the host's directory
    t.eq(h.m[2].stop(), 0, 'host 2 unmounts')
    h.m[2].proc = None
    h.m[2].start()
    f = open(h.model(1, 'm', '2', os.listdir(h.model(1, 'm', '2'))[0]),
             'rb')
    f.read(1)
    services.halt('pg', pg.dir)
    try:
        data = f.read()
        t.ok(len(data) > 0, 'PostgreSQL stopped: a file open before reads '
             'on (%d bytes)' % len(data))
        t0 = time.monotonic()
        try:
            got = pathlib.Path(served, name).read_bytes()
        except OSError as e:
            got = e
        took = time.monotonic() - t0
        t.ok(got == want, 'a file of a version the host served before: '
             'opened and read by a new daemon from the host\'s copy of '
             'sealed records and its chunk cache (%.1f s)' % took,
             got if isinstance(got, OSError) else None)
        t0 = time.monotonic()
        got = pathlib.Path(served, name).read_bytes() \
            if got == want else None
        t.ok(got == want and time.monotonic() - t0 < 2,
             '... and again at once (%.2f s): no deadline per lookup '
             'while the database is away' % (time.monotonic() - t0))
        t0 = time.monotonic()
        e = errno_of(lambda: open(h.model(2, 'm', str(unseen),
                                          'unseen.bin'), 'rb').read())
        took = time.monotonic() - t0
        t.ok(e in (errno.EIO, errno.ENOENT) and took < TIMEOUT * 3 + 5,
             'a version the host never saw fails (errno %s) within the '
             'deadline (%.1f s, timeout %d s), not a hang' %
             (errno.errorcode.get(e, e), took, TIMEOUT))
        t0 = time.monotonic()
        e = errno_of(lambda: os.stat(h.model(2, 'm', 'stages', 'Production',
                                             name)))
        took = time.monotonic() - t0
        t.ok(e == errno.EIO and took < TIMEOUT * 3 + 5,
             'a stage is the database\'s to say: EIO (errno %s, %.1f s)' %
             (errno.errorcode.get(e, e), took))
        up = h.m[2].metric('mreg_index_up')
        hit = h.m[2].metric('mreg_fixed_lookups_total{result="hit"}')
        t.ok(up == 0 and hit is not None,
             '.mreg/metrics still answers: mreg_index_up 0, this '
             'process\'s counters (fixed hits %s)' % hit)
        t.ok(h.m[2].log_has('postgres', 10) and
             h.m[2].log_has('as this host last read them', 10),
             'the daemon log says what is wrong, and what it serves',
             h.m[2].log_tail())
    finally:
        services.start('pg', pg.dir)
    f.close()

    def works():
        try:
            subprocess.run(['cp', p, h.model(2, 'm') + '/'], check=True,
                           stderr=subprocess.DEVNULL)
            return True
        except subprocess.CalledProcessError:
            return False
    t.ok(came(works, 60), 'PostgreSQL back: a cp '
         'registers a version, no remount')
    v = versions(h.model(0, 'm'))[-1]
    t.eq(file_sha(h.model(0, 'm', str(v), 'late.bin')), file_sha(p),
         '... which another host reads')
    hit = h.m[2].metric('mreg_fixed_lookups_total{result="hit"}')
    stale = h.m[2].metric('mreg_fixed_lookups_total{result="stale"}')
    t.ok(hit and hit > 0 and stale and stale > 0,
         'host 2\'s metrics count the reads from its copy (hit %s, stale '
         '%s)' % (hit, stale))


def main():
    # Its hosts have configs of their own (PostgreSQL, radosgw, no
    # serving copies): the run with every store on S3 and the run with
    # eager hydration would run the same test again, at CI's expense.
    if S3 or os.environ.get('MREG_SERVE_EAGER'):
        t.skip('three hosts on one registry', 'its hosts set their own '
               'index, store and serving: the main run has it')
        return t.done()
    for kind in ('pg', 'rgw'):
        why = services.unavailable(kind)
        if why:
            t.skip('three hosts on one registry', why)
            return t.done()
    tmp = tempfile.mkdtemp(prefix='mreg-mh-')
    src = os.path.join(tmp, 'src')
    os.mkdir(src)
    h = None
    try:
        with services.Service('pg') as pg:
            def with_s3(s3):
                nonlocal h
                h = Hosts(pg, s3, tmp)
                r = h.cli(0, 'init')
                t.ok(r.returncode == 0, 'mreg init makes the registry in '
                     'PostgreSQL', r.stderr)
                for m in h.m:
                    m.start()
                t.ok(True, 'three hosts mount it')
                t.run('registration', test_register, h, src)
                t.run('promotion', test_promote, h)
                t.run('hosts', test_hosts, h)
                t.run('kept stages', test_current, h)
                t.run('policy', test_policy, h)
                t.run('writers', test_writer, h)
                t.run('pins', test_pins, h, src)
                t.run('kill -9', test_kill, h, src)
                t.run('PostgreSQL down', test_pg_down, h, pg, src)
                t.run('hook once', test_hook_once, h, src)
                t.run('audit', test_audit, h)
            services.with_rgw(with_s3)
    finally:
        if h:
            for m in h.m:
                m.close()
        shutil.rmtree(tmp, ignore_errors=True)
    return t.done()


if __name__ == '__main__':
    sys.exit(main())
