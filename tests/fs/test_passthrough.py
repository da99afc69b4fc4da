"""Hot sealed files served by the kernel: FUSE passthrough (issue 12).

On a kernel that offers it (Linux >= 6.9) with a daemon that may use it
(root), a hydrated sealed file is opened with passthrough: the kernel reads
and maps the copy in the serving cache, and no READ reaches the daemon
(mreg_serve_daemon_reads_total stays put). What is checked:

- passthrough is negotiated (through libfuse 3.14's bridge on /dev/fuse,
  with the multi-threaded loop's cloned descriptors, and single-threaded);
- a cold file is served by the daemon; a file of a staged version is
  hydrated at its first open, and then read and mmap'ed (by 8 processes)
  with no READ to the daemon, the size stat reports and the bytes served
  agreeing;
- many opens of one file at once share its one backing id; two inodes
  with the same bytes have their own;
- opens during hydration are served by the daemon, correctly, and never
  fail; an open the daemon serves keeps the inode off passthrough until
  it is released (no EIO for the opens after it), also for a draft
  sealed while open and a file just created at a model root;
- removing a version (and gc) with a passthrough open: the open reads on,
  the copy is unlinked, its bytes counted until the close;
- a damaged copy is found and dropped by mreg fsck; the file is then
  served from the store, correct;
- mreg prefetch through the mount; stats on the store and the mount;
- [serve] hydrate_on_promote: mreg promote on the store hydrates the
  version without an open;
- eviction when the cache is full skips a copy that is open (and mapped);
- the fallback when [serve] passthrough = no, and when the daemon runs
  without CAP_SYS_ADMIN (capsh --drop=cap_sys_admin, on a /dev/fuse
  descriptor mounted for it), served correctly and counted with why.
"""
import ctypes
import hashlib
import json
import mmap
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mountlib import MREGFS, Mount, Tap, pattern, run, sha  # noqa: E402

MB = 1 << 20
PT = 'mreg_serve_opens_total{mode="passthrough"}'
READS = 'mreg_serve_daemon_reads_total'
ON = 'mreg_serve_passthrough{state="on"}'

t = Tap()
mounts = []
srcdir = tempfile.mkdtemp(prefix='mreg-ptsrc-')


def fb(reason):
    return 'mreg_serve_opens_total{mode="fallback",reason="%s"}' % reason


def metrics(m):
    out = {}
    with open(m.path('.mreg', 'metrics')) as f:
        for ln in f:
            if ln.startswith('#') or ' ' not in ln:
                continue
            k, v = ln.rstrip('\n').rsplit(' ', 1)
            out[k] = int(float(v))
    return out


def wait_for(fn, timeout=90, step=0.05):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = fn()
        if v:
            return v
        time.sleep(step)
    return fn()


def push(m, model, name, data):
    """mreg push on the store (the daemon runs): the version made."""
    p = os.path.join(srcdir, name)
    with open(p, 'wb') as f:
        f.write(data)
    r = m.mreg('push', model, p)
    os.unlink(p)
    if r.returncode != 0:
        raise RuntimeError('push: ' + r.stderr)
    return r.stdout.strip()


def read_all(path):
    with open(path, 'rb') as f:
        return f.read()


def prefetch(path):
    """Reads user.mreg.prefetch (asks the daemon to hydrate): its value."""
    return os.getxattr(path, 'user.mreg.prefetch').decode()


def copies(m):
    d = os.path.join(m.store, 'serve')
    try:
        return sorted(n for n in os.listdir(d) if not n.startswith('.'))
    except FileNotFoundError:
        return []


def hydrated(m, n):
    """Waits until n copies exist and nothing is pending."""
    return wait_for(lambda: (lambda x: x.get('mreg_serve_files', 0) >= n and
                             x.get('mreg_serve_pending', 1) == 0)(
                                 metrics(m)))


def conf(m, text):
    p = os.path.join(m.tmp, 'mreg.conf')
    with open(p, 'w') as f:
        f.write(text)
    return ['-c', p]


def new_mount(tag, config=None, env=None, extra=()):
    # what makes a file hot is tested here: not the suite's eager knob
    m = Mount(tag, env=dict(env or {}, MREG_SERVE_EAGER=''))
    mounts.append(m)
    if config:
        m.args = conf(m, config)
    m.args += list(extra)
    m.start()
    return m


def skip_unless_on(m, what):
    if metrics(m).get(ON) == 1:
        return True
    t.skip(what, 'no FUSE passthrough here: ' +
           [k for k in metrics(m) if k.startswith('mreg_serve_passthrough')]
           [0])
    return False


# -- the default mount: negotiated, used -----------------------------------

A = pattern(16 * MB + 123, 1)


def block_used(m):
    st = metrics(m)
    t.eq(st.get(ON), 1, 'passthrough is negotiated (kernel, root, bridge)')
    if not skip_unless_on(m, 'passthrough used'):
        return
    v = push(m, 'm', 'f.bin', A)
    f = m.path('models', 'm', v, 'f.bin')
    with open(f, 'rb') as fh:
        t.eq(fh.read(4096), A[:4096], 'a cold file reads right')
    st = metrics(m)
    t.eq(st[fb('cold')], 1, 'its open is served by the daemon: cold')
    t.ok(st['mreg_serve_files'] == 0 and st['mreg_serve_pending'] == 0,
         'one open of a part of it hydrates nothing')

    os.symlink('../' + v, m.path('models', 'm', 'stages', 'Production'))
    prod = m.path('models', 'm', 'stages', 'Production', 'f.bin')
    with open(prod, 'rb') as fh:
        fh.read(1)
    t.ok(hydrated(m, 1), 'a file of a staged version is hydrated at its '
         'first open')
    names = copies(m)
    t.eq(len(names), 1, 'one copy in the serving cache')
    if names:
        st = os.stat(os.path.join(m.store, 'serve', names[0]))
        t.ok(st.st_size == len(A) and (st.st_mode & 0o777) == 0o400,
             'the copy is complete and read-only')
    t.eq(os.stat(os.path.join(m.store, 'serve')).st_mode & 0o777, 0o700,
         'the serving cache is closed to others')

    before = metrics(m)
    t.eq(read_all(prod), A, 'the hydrated file reads right')
    t.eq(os.stat(prod).st_size, len(A), 'stat says the size served')
    with open(prod, 'rb') as fh:
        mm = mmap.mmap(fh.fileno(), 0, prot=mmap.PROT_READ)
        t.eq(sha(mm), sha(A), 'and maps right')
        mm.close()
    after = metrics(m)
    t.eq(after[PT] - before[PT], 2, 'both opens were passthrough')
    t.eq(after[READS] - before[READS], 0,
         'the daemon saw no READ for the hydrated file')

    # many processes map it at once
    code = ('import hashlib,mmap,sys\n'
            'f=open(sys.argv[1],"rb")\n'
            'm=mmap.mmap(f.fileno(),0,prot=mmap.PROT_READ)\n'
            'print(hashlib.sha256(m).hexdigest())\n')
    before = metrics(m)
    procs = [subprocess.Popen([sys.executable, '-c', code, prod],
                              stdout=subprocess.PIPE, text=True)
             for _ in range(8)]
    outs = [p.communicate(timeout=120)[0].strip() for p in procs]
    after = metrics(m)
    t.ok(all(o == sha(A) for o in outs), '8 processes map it and read the '
         'same bytes', outs)
    t.eq(after[READS] - before[READS], 0, 'with no READ to the daemon')
    t.eq(after[PT] - before[PT], 8, 'all 8 opens were passthrough')

    # many opens of one inode at once: one backing id, all of them work
    fds = [os.open(prod, os.O_RDONLY) for _ in range(32)]
    try:
        ok = all(os.pread(fd, 4096, 5 * MB) == A[5 * MB:5 * MB + 4096]
                 for fd in fds)
    finally:
        for fd in fds:
            os.close(fd)
    t.ok(ok, '32 opens of the file at once all read right')

    # another inode with the same bytes: a backing id of its own
    v2 = push(m, 'm', 'f.bin', A)
    other = m.path('models', 'm', v2, 'f.bin')
    wait_for(lambda: prefetch(m.path('models', 'm', v2)).startswith(
        'ready'))
    before = metrics(m)
    with open(prod, 'rb') as a, open(other, 'rb') as b:
        t.ok(a.read() == A and b.read() == A, 'two inodes of the same '
             'bytes, open at once, read right')
    t.eq(metrics(m)[PT] - before[PT], 2, 'both by passthrough')


def block_shared(m):
    if not skip_unless_on(m, 'opens the daemon serves keep passthrough '
                          'off'):
        return
    # a draft file open while its version is sealed and hydrated
    os.mkdir(m.path('models', 'd'))
    os.mkdir(m.path('models', 'd', '1'))
    f = m.path('models', 'd', '1', 'w.bin')
    data = pattern(3 * MB, 7)
    with open(f, 'wb') as fh:
        fh.write(data)
    hold = os.open(f, os.O_RDONLY)
    try:
        os.chmod(m.path('models', 'd', '1'), 0o555)   # seals it
        wait_for(lambda: prefetch(m.path('models', 'd', '1')).startswith(
            'ready'))
        before = metrics(m)
        t.eq(read_all(f), data, 'a file opened as a draft and sealed '
             'meanwhile opens and reads right (no EIO)')
        t.eq(metrics(m)[fb('shared')] - before[fb('shared')], 1,
             'served by the daemon while its draft open lives')
        t.eq(os.pread(hold, 100, 0), data[:100], 'the old open reads on')
    finally:
        os.close(hold)
    t.ok(wait_for(lambda: (read_all(f) == data and
                           metrics(m)[fb('shared')] >= 0 and
                           _last_was_pt(m, f, data))),
         'after its release, the file is opened by passthrough')

    # a file created at a model root, opened again at once
    c = m.path('models', 'd', 'new.bin')
    data = pattern(2 * MB, 8)
    fd = os.open(c, os.O_CREAT | os.O_WRONLY | os.O_EXCL, 0o644)
    os.write(fd, data)
    os.close(fd)                      # registers version 2
    errs = []
    for _ in range(20):
        try:
            prefetch(m.path('models', 'd', '2'))
            if read_all(m.path('models', 'd', '2', 'new.bin')) != data:
                errs.append('wrong bytes')
        except OSError as e:
            errs.append(repr(e))
    t.eq(errs, [], 'a file just created, registered and hydrated opens '
         'right every time')


def _last_was_pt(m, path, data):
    before = metrics(m)[PT]
    ok = read_all(path) == data
    return ok and metrics(m)[PT] == before + 1


def block_removal(m):
    if not skip_unless_on(m, 'removal with a passthrough open'):
        return
    data = pattern(8 * MB, 3)
    v = push(m, 'r', 'x.bin', data)
    vdir = m.path('models', 'r', v)
    t.ok(wait_for(lambda: prefetch(vdir).startswith('ready')),
         'a version hydrated by a prefetch request')
    n_before = len(copies(m))
    fd = os.open(os.path.join(vdir, 'x.bin'), os.O_RDONLY)
    try:
        held = metrics(m)['mreg_serve_bytes']
        os.rmdir(vdir)
        t.eq(len(copies(m)), n_before - 1, 'removing the version unlinks '
             'its copy')
        t.eq(metrics(m)['mreg_serve_bytes'], held, 'whose bytes stay '
             'counted while it is open')
        t.eq(os.pread(fd, 2 * MB, 3 * MB), data[3 * MB:5 * MB],
             'the open reads on')
        r = m.mreg('gc')
        t.ok(r.returncode == 0, 'gc runs beside it', r.stderr)
        t.eq(os.pread(fd, len(data) + 1, 0), data, 'and the open still '
             'reads every byte after gc')
    finally:
        os.close(fd)
    t.ok(wait_for(lambda: metrics(m)['mreg_serve_bytes'] ==
                  held - len(data)),
         'its bytes go when it is closed')


def block_fsck(m):
    if not skip_unless_on(m, 'fsck of hydrated copies'):
        return
    prod = m.path('models', 'm', 'stages', 'Production', 'f.bin')
    names = [n for n in copies(m) if os.path.getsize(
        os.path.join(m.store, 'serve', n)) == len(A)]
    path = os.path.join(m.store, 'serve', names[0])
    with open(path, 'r+b') as f:
        f.seek(MB + 17)
        b = f.read(1)
        f.seek(MB + 17)
        f.write(bytes([b[0] ^ 0x20]))
    r = m.mreg('fsck')
    t.ok(r.returncode == 3, 'mreg fsck finds a damaged copy: exit 3',
         r.stdout + r.stderr)
    t.ok('damaged' in r.stdout and '/f.bin' in r.stdout and
         'serving cache' in r.stdout,
         'and names the file whose copy it is', r.stdout)
    t.ok(not os.path.exists(path), 'the damaged copy is dropped')
    r = m.mreg('fsck')
    t.ok(r.returncode == 0, 'then fsck is clean', r.stdout + r.stderr)
    before = metrics(m)
    t.eq(read_all(prod), A, 'the file reads right, from the store')
    t.eq(metrics(m)[fb('cold')] - before[fb('cold')], 1,
         'served by the daemon')
    t.ok(wait_for(lambda: _last_was_pt(m, prod, A)),
         'and hydrated again: passthrough')


def block_cli(m):
    if not skip_unless_on(m, 'mreg prefetch'):
        return
    data = pattern(5 * MB, 4)
    v = push(m, 'p', 'y.bin', data)
    r = m.mreg('promote', 'p', v, 'Staging')
    t.ok(r.returncode == 0, 'promoted on the store', r.stderr)
    r = run([MREG, '--store', m.mnt, 'prefetch', 'p', 'Staging'])
    t.ok(r.returncode == 0, 'mreg prefetch MODEL STAGE through the mount',
         r.stderr)
    # (on S3 a line "cached: ..." comes first: the daemon's chunk cache)
    t.ok(any(line.startswith('ready: p/Staging, 1 file')
             for line in r.stdout.splitlines()), 'says it is ready',
         r.stdout)
    before = metrics(m)
    t.eq(read_all(m.path('models', 'p', 'stages', 'Staging', 'y.bin')),
         data, 'the prefetched file reads right')
    after = metrics(m)
    t.ok(after[PT] == before[PT] + 1 and after[READS] == before[READS],
         'by passthrough, with no READ to the daemon')
    if not t.on_s3('prefetch on the store itself is refused', 'a store '
                   'on S3 fills its chunk cache there'):
        r = m.mreg('prefetch', 'p', 'Staging')
        t.ok(r.returncode == 1 and 'needs a mount' in r.stderr,
             'prefetch on the store itself is refused', r.stderr)
    os.mkdir(m.path('models', 'p', 'draft'))
    r = run([MREG, '--store', m.mnt, 'prefetch', 'p', 'draft'])
    t.ok(r.returncode == 1 and 'draft' in r.stderr, 'a draft is refused',
         r.stderr)
    r = run([MREG, '--store', m.mnt, 'prefetch', 'p', 'Nope'])
    t.ok(r.returncode == 1 and 'no stage or version' in r.stderr,
         'a missing stage is refused', r.stderr)
    r = m.mreg('stats')
    t.ok(r.returncode == 0 and 'serving cache' in r.stdout and
         'hydrated file' in r.stdout, 'mreg stats on the store shows the '
         'serving cache', r.stdout)
    r = run([MREG, '--store', m.mnt, 'stats'])
    t.ok(r.returncode == 0 and 'passthrough on' in r.stdout and
         'served by the kernel' in r.stdout,
         'and through the mount, its counters', r.stdout[-500:])
    r = run([MREG, '--store', m.mnt, '--json', 'stats'])
    sc = json.loads(r.stdout).get('serving_cache', {}) if r.returncode == 0 \
        else {}
    t.ok(sc.get('passthrough') == 'on' and sc.get('passthrough_opens', 0) > 0
         and sc.get('daemon_reads', -1) >= 0, 'also as JSON', r.stdout[-500:])


# -- hydration in progress ---------------------------------------------------

def block_during(m):
    if not skip_unless_on(m, 'opens during hydration'):
        return
    data = pattern(24 * MB, 5)
    digest = sha(data)
    v = push(m, 'h', 'big.bin', data)
    os.symlink('../' + v, m.path('models', 'h', 'stages', 'Production'))
    path = m.path('models', 'h', 'stages', 'Production', 'big.bin')
    early = os.open(path, os.O_RDONLY)      # starts the hydration
    errors, bad, done = [], [], threading.Event()
    count = [0]

    def reader():
        while not done.is_set():
            try:
                with open(path, 'rb') as f:
                    if sha(f.read()) != digest:
                        bad.append(1)
                count[0] += 1
            except OSError as e:
                errors.append(repr(e))

    ths = [threading.Thread(target=reader) for _ in range(6)]
    for th in ths:
        th.start()
    t.ok(wait_for(lambda: metrics(m)['mreg_serve_files'] >= 1),
         'the file is hydrated while 6 readers read it')
    done.set()
    for th in ths:
        th.join()
    st = metrics(m)
    t.eq(errors, [], 'no open or read failed during hydration')
    t.eq(len(bad), 0, 'every read of %d was right' % count[0])
    t.ok(st[fb('hydrating')] > 0, 'opens during hydration were served by '
         'the daemon (%d)' % st[fb('hydrating')])
    # the early open (the daemon's) still lives: new opens are the
    # daemon's too, and never fail
    before = metrics(m)
    t.eq(read_all(path), data, 'an open after hydration reads right while '
         'an open from before lives')
    t.eq(metrics(m)[fb('shared')] - before[fb('shared')], 1,
         'and is served by the daemon (shared)')
    t.eq(os.pread(early, 100, 7 * MB), data[7 * MB:7 * MB + 100],
         'the early open reads on')
    os.close(early)
    t.ok(wait_for(lambda: _last_was_pt(m, path, data)),
         'once it is released, opens are passthrough')


# -- hydrate on promote --------------------------------------------------------

def block_promote(m):
    if not skip_unless_on(m, 'hydrate_on_promote'):
        return
    data = pattern(6 * MB, 6)
    v = push(m, 'q', 'z.bin', data)
    n = len(copies(m))
    r = m.mreg('promote', 'q', v, 'Production')
    t.ok(r.returncode == 0, 'mreg promote on the store', r.stderr)
    t.ok(wait_for(lambda: len(copies(m)) == n + 1 and
                  metrics(m)['mreg_serve_pending'] == 0),
         'hydrate_on_promote: the version is hydrated without an open')
    before = metrics(m)
    t.eq(read_all(m.path('models', 'q', 'stages', 'Production', 'z.bin')),
         data, 'the first read after the rollout reads right')
    after = metrics(m)
    t.ok(after[PT] == before[PT] + 1 and after[READS] == before[READS],
         'and is served by the kernel from the first open')
    # a promotion through the mount
    v2 = push(m, 'q', 'z.bin', pattern(3 * MB, 9))
    os.symlink('../' + v2, m.path('models', 'q', 'stages', 'Staging'))
    t.ok(wait_for(lambda: len(copies(m)) == n + 2),
         'a promotion through the mount hydrates too')


# -- eviction ----------------------------------------------------------------

def block_evict(m):
    if not skip_unless_on(m, 'eviction with open files'):
        return
    a, b = pattern(12 * MB, 11), pattern(12 * MB, 12)
    va = push(m, 'e', 'a.bin', a)
    vb = push(m, 'e', 'b.bin', b)
    pa = m.path('models', 'e', va, 'a.bin')
    t.ok(wait_for(lambda: prefetch(m.path('models', 'e', va)).startswith(
        'ready')), 'a 12 MiB file hydrated in a 20 MiB cache')
    fh = open(pa, 'rb')
    mm = mmap.mmap(fh.fileno(), 0, prot=mmap.PROT_READ)
    try:
        st = wait_for(lambda: (lambda s: s if not s.startswith('pending')
                               else None)(prefetch(
                                   m.path('models', 'e', vb))))
        t.ok(st and st.startswith('incomplete') and 'no_room=1' in st,
             'another does not fit while the first is open', st)
        t.eq(metrics(m)['mreg_serve_evictions_total'], 0,
             'the open copy is not evicted')
        t.eq(sha(mm), sha(a), 'and its mapping reads right')
    finally:
        mm.close()
        fh.close()
    t.ok(wait_for(lambda: prefetch(m.path('models', 'e', vb)).startswith(
        'ready'), timeout=30),
         'once it is closed and unmapped, the other is hydrated')
    st = metrics(m)
    t.eq(st['mreg_serve_evictions_total'], 1, 'by evicting the first')
    t.eq(st['mreg_serve_files'], 1, 'one copy is left')
    t.ok(st['mreg_serve_bytes'] <= 20 * MB, 'within [serve] size')
    before = metrics(m)
    t.eq(read_all(pa), a, 'the evicted file reads right')
    t.eq(metrics(m)[fb('cold')] - before[fb('cold')], 1,
         'from the store')


# -- the fallbacks -------------------------------------------------------------

def block_disabled(m):
    data = pattern(4 * MB, 13)
    v = push(m, 'n', 'n.bin', data)
    os.symlink('../' + v, m.path('models', 'n', 'stages', 'Production'))
    path = m.path('models', 'n', 'stages', 'Production', 'n.bin')
    ok = all(read_all(path) == data for _ in range(4))
    st = metrics(m)
    t.ok(ok, '[serve] passthrough = no: the file reads right')
    t.eq(st.get('mreg_serve_passthrough{state="disabled"}'), 0,
         'the metrics say passthrough is off by the config')
    t.eq(st[fb('disabled')], 4, 'every open is counted as a fallback, '
         'disabled')
    t.eq(st[PT], 0, 'none is passthrough')
    t.ok(st[READS] > 0, 'the daemon serves the reads')
    t.eq(copies(m), [], 'no copy is made')


def mount_without_cap_sys_admin(m):
    """Mounts m's mount point on a /dev/fuse descriptor (as root) and runs
    mregfs on it under capsh --drop=cap_sys_admin."""
    m.ensure_store()
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open('/dev/fuse', os.O_RDWR)
    opts = ('fd=%d,rootmode=40000,user_id=0,group_id=0,'
            'default_permissions' % fd)
    if libc.mount(b'mregfs', m.mnt.encode(), b'fuse.mregfs', 6,
                  opts.encode()) != 0:
        e = ctypes.get_errno()
        os.close(fd)
        raise OSError(e, 'mount: ' + os.strerror(e))
    log = open(m.log, 'ab')
    m.proc = subprocess.Popen(
        ['capsh', '--drop=cap_sys_admin', '--', '-c', 'exec "$@"', 'sh',
         MREGFS, '-f', '--store', m.store, '/dev/fd/%d' % fd],
        pass_fds=(fd,), stdout=log, stderr=log, stdin=subprocess.DEVNULL,
        env=m.env)
    log.close()
    os.close(fd)
    os.stat(m.mnt)     # waits for FUSE_INIT


def block_no_cap(m):
    with open('/proc/%d/status' % m.proc.pid) as f:
        eff = [ln for ln in f if ln.startswith('CapEff:')][0]
    t.eq(int(eff.split()[1], 16) >> 21 & 1, 0,
         'the daemon runs without CAP_SYS_ADMIN')
    data = pattern(4 * MB, 14)
    v = push(m, 'c', 'c.bin', data)
    os.symlink('../' + v, m.path('models', 'c', 'stages', 'Production'))
    path = m.path('models', 'c', 'stages', 'Production', 'c.bin')
    ok = all(read_all(path) == data for _ in range(3))
    st = metrics(m)
    t.ok(ok, 'without CAP_SYS_ADMIN the file reads right')
    t.eq(st.get('mreg_serve_passthrough{state="privilege"}'), 0,
         'the metrics say passthrough is off for want of privilege')
    t.eq(st[fb('privilege')], 3, 'every open is counted so')
    t.eq(st[PT], 0, 'none is passthrough')
    t.eq(copies(m), [], 'no copy is made')
    if not t.on_s3('mreg prefetch says why it cannot', 'the daemon '
                   'fills its chunk cache, which needs no privilege'):
        r = run([MREG, '--store', m.mnt, 'prefetch', 'c', 'Production'])
        t.ok(r.returncode == 1 and 'CAP_SYS_ADMIN' in r.stderr,
             'mreg prefetch says why it cannot', r.stderr)


def block_single(m):
    if not skip_unless_on(m, 'single-threaded passthrough'):
        return
    data = pattern(3 * MB, 15)
    v = push(m, 's', 's.bin', data)
    t.ok(wait_for(lambda: prefetch(m.path('models', 's', v)).startswith(
        'ready')), 'single-threaded (-s): hydrated')
    before = metrics(m)
    t.eq(read_all(m.path('models', 's', v, 's.bin')), data,
         'single-threaded: reads right')
    after = metrics(m)
    t.ok(after[PT] == before[PT] + 1 and after[READS] == before[READS],
         'single-threaded: by passthrough')


MREG = os.path.join(os.path.dirname(MREGFS), 'mreg')


def main():
    try:
        m = new_mount('pt')
        for name, fn in (('used', block_used), ('shared', block_shared),
                         ('removal', block_removal), ('fsck', block_fsck),
                         ('cli', block_cli)):
            t.run(name, fn, m)
        t.eq(m.stop(), 0, 'the daemon exits 0 on unmount')

        m = new_mount('ptslow', env={'MREG_SERVE_DELAY_MS': '250'})
        t.run('during hydration', block_during, m)
        t.eq(m.stop(), 0, 'the daemon exits 0 on unmount (slow)')

        m = new_mount('ptpromo', '[serve]\nhydrate_on_promote = yes\n')
        t.run('hydrate on promote', block_promote, m)
        m.stop()

        m = new_mount('ptevict', '[serve]\nsize = 20M\n')
        t.run('eviction', block_evict, m)
        m.stop()

        m = new_mount('ptoff', '[serve]\npassthrough = no\n')
        t.run('disabled', block_disabled, m)
        m.stop()

        if shutil.which('capsh'):
            m = Mount('ptcap', env={'MREG_SERVE_EAGER': ''})
            mounts.append(m)
            mount_without_cap_sys_admin(m)
            t.run('no CAP_SYS_ADMIN', block_no_cap, m)
            t.eq(m.stop(), 0, 'the daemon without CAP_SYS_ADMIN exits 0')
        else:
            t.skip('no CAP_SYS_ADMIN', 'capsh is not installed')

        m = new_mount('pts', extra=['-s'])
        t.run('single-threaded', block_single, m)
        m.stop()
    except Exception as e:
        import traceback
        t.ok(False, 'passthrough tests', '%s\n%s' % (
            traceback.format_exc(), mounts[-1].log_tail() if mounts
            else ''))
    finally:
        for m in mounts:
            m.close()
        shutil.rmtree(srcdir, ignore_errors=True)
    return t.done()


if __name__ == '__main__':
    sys.exit(main())
