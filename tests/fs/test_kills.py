"""kill -9 at random points (SPEC §5 and §7, issue 6 item 2): the daemon
and the CLI are killed with SIGKILL in the middle of

  push     `mreg push` of a directory (the CLI is killed),
  cp       `cp` of a file to a model root and `cp -r` of a directory to a
           draft (the daemon is killed),
  seal     `chmod a-w` of a draft (the daemon is killed) and `mreg seal`
           (the CLI is killed),
  promote  storms of `ln -sfn` through the mount (the daemon is killed) and
           of concurrent `mreg promote`/`mreg rollback` (CLIs are killed),
  gc       `mreg gc` while versions are removed with `mreg rm` and rmdir
           through the mount (gc is killed; every fourth round the daemon
           too),

ROUNDS rounds of each (20; $MREG_KILL_ROUNDS), each kill after a random
delay in a window that starts at how long the operation takes when left
alone and adapts so that about half of the kills land mid-way; a kind
whose kills landed mid-way fewer than ROUNDS / 5 times runs more rounds
(up to twice as many), and must get there. After every
round: the mount comes back with a plain mregfs start (a dead mount that
auto_unmount missed included), `mreg fsck` exits 0, every version is absent
or whole (bytes compared through the mount; a sealed version holds every
file it was made from, a draft only whole files, or a file as its create
left it: empty, when the daemon died before its close), no pending file is
left at a model root, every operation that reported success before the kill
took effect (push printed a version, cp or chmod or seal exited 0), every
stage points at a sealed version, and each stage's history is a chain
ending at the stage's target. No process hangs: a killed daemon exits, and
no CLI waits for good on a lock nobody holds. At the end `mreg fsck --full`
is clean. The random seed is printed ($MREG_KILL_SEED repeats a run).
"""
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mountlib import (MREG, MREGFS, Mount, Tap, mountinfo_has,  # noqa: E402
                      unmount_watchers, wait_exited)

ROUNDS = int(os.environ.get('MREG_KILL_ROUNDS', '20'))
SEED = int(os.environ.get('MREG_KILL_SEED') or time.time_ns() % 1000000)

t = Tap()
m = Mount('kills')
src = tempfile.mkdtemp(prefix='mreg-src-')
rng = random.Random(SEED)

CONTENT = {}   # file name -> bytes (names are unique in the whole test)
GROUPS = {}    # group -> set of file names a version of it is made from
MUST = {}      # (model, version) -> group: versions that must exist
SEALED = set()  # (model, version): versions that must be sealed
COMPLETE = set()  # groups whose drafts must hold every file too
stats = {'left': 0}
landed = {}   # kind -> [killed mid-way, finished before the kill]
RAN = {}      # kind -> rounds run
CUR = ['']


# ---- helpers ---------------------------------------------------------------

def mreg(*args, check=False):
    return m.mreg(*args, check=check)


def mreg_json(*args):
    r = m.mreg('--json', *args)
    if r.returncode != 0:
        raise RuntimeError('mreg %s: %s' % (' '.join(args), r.stderr))
    return json.loads(r.stdout)


def spawn_mreg(*args):
    env = dict(m.env, MREG_STORE=m.store)
    return subprocess.Popen([MREG, '-q'] + list(args), env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL, text=True)


def make_group(group, nfiles, lo, hi):
    """Writes nfiles files of random sizes in [lo, hi) to src/group/ and
    records them; returns the directory."""
    d = os.path.join(src, group)
    os.makedirs(d, exist_ok=True)
    names = set()
    for i in range(nfiles):
        name = '%s-%d.bin' % (group, i)
        data = rng.randbytes(rng.randrange(lo, hi))
        with open(os.path.join(d, name), 'wb') as f:
            f.write(data)
        CONTENT[name] = data
        names.add(name)
    GROUPS[group] = names
    return d


def group_of(name):
    return name.rsplit('-', 1)[0]


def reap(proc, what, timeout=30):
    """Waits for our child proc; one that hangs (e.g. asleep on a lock
    nobody holds) is a failure, reported with its kernel stack, and is
    killed so that the test goes on."""
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        t.ok(False, '%s: %s (pid %d) finishes' % (CUR[0], what, proc.pid),
             'hung for %d s:\n%s' % (timeout, threads_of(proc.pid)))
        os.kill(proc.pid, signal.SIGKILL)
        return proc.wait()


def kill_after(proc, delay):
    """Sleeps delay, then SIGKILLs proc (our child, by pid) unless it ended.
    Returns its exit status (-9 when the kill landed)."""
    time.sleep(delay)
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGKILL)
    reap(proc, ' '.join(proc.args[:4]))
    tally(proc.returncode == -signal.SIGKILL)
    return proc.returncode


class Window:
    """Kill delays drawn at random in [0, w); w starts at about how long
    the operation takes and adapts so that about half of the kills land
    mid-way: it shrinks after an operation that finished first and grows
    after a kill that landed."""

    def __init__(self, w):
        self.w = max(w, 0.001)

    def draw(self):
        return rng.uniform(0, self.w)

    def update(self, landed):
        self.w = min(max(self.w * (1.15 if landed else 0.75), 0.0005), 1)


def rounds():
    """The current kind's round numbers: ROUNDS of them, then more (up to
    twice as many in all) while fewer than a fifth of ROUNDS of its kills
    landed mid-way. On a loaded machine the test's own wake-up after the
    delay can come after a short operation ended, however small the
    window: more rounds, not a lower bar."""
    rnd = 0
    while rnd < ROUNDS or (rnd < 2 * ROUNDS and
                           landed.get(CUR[0], [0])[0] < ROUNDS // 5):
        RAN[CUR[0]] = rnd + 1
        yield rnd
        rnd += 1


def tally(mid):
    landed.setdefault(CUR[0], [0, 0])[0 if mid else 1] += 1


def kill_daemon_after(delay, client=None):
    """SIGKILL to the daemon after delay. auto_unmount's fusermount3 then
    removes the dead mount, except when its check races with the kernel
    tearing the connection down (then the next mregfs start detaches it):
    counted."""
    time.sleep(delay)
    mid = client is None or client.poll() is None
    try:
        _kill_daemon()
    finally:
        if client is not None:
            tally(mid)
    return mid


def _kill_daemon():
    watchers = unmount_watchers(m.mnt)
    os.kill(m.proc.pid, signal.SIGKILL)
    try:
        m.proc.wait(10)
    except subprocess.TimeoutExpired:
        stuck = threads_of(m.proc.pid)
        abort_connection()
        try:
            m.proc.wait(10)
        except subprocess.TimeoutExpired:
            pass
        raise RuntimeError('the killed daemon could not exit: a thread '
                           'was stuck in the kernel (the mount hung until '
                           'its connection was aborted by hand):\n' + stuck)
    # the next start must wait for the dead daemon's watcher: one still
    # deciding when the new daemon has detached the dead mount and
    # mounted unmounts the new mount (its check saw the dead one)
    if not wait_exited(watchers, 60):
        raise RuntimeError('the auto_unmount watcher of the killed daemon '
                           '(pids %r) still runs after 60 s' % watchers)
    if mountinfo_has(m.mnt):
        stats['left'] += 1


def threads_of(pid):
    """The kernel stacks of pid's threads (for a report)."""
    out = []
    try:
        for tid in sorted(os.listdir('/proc/%d/task' % pid)):
            try:
                with open('/proc/%d/task/%s/stack' % (pid, tid)) as f:
                    out.append('thread %s:\n%s' % (tid, f.read()[:600]))
            except OSError:
                pass
    except OSError:
        pass
    return '\n'.join(out)


def abort_connection():
    """Writes 1 to the mount's fusectl abort file, the only way out of a
    hung connection (so that the test can clean up)."""
    dev = None
    with open('/proc/self/mountinfo') as f:
        for line in f:
            if line.split()[4] == m.mnt:
                dev = line.split()[2].split(':')[1]
    if not dev:
        return
    ctl = '/sys/fs/fuse/connections'
    if not os.path.exists(os.path.join(ctl, dev)):
        subprocess.run(['mount', '-t', 'fusectl', 'none', ctl],
                       stderr=subprocess.DEVNULL)
    try:
        with open(os.path.join(ctl, dev, 'abort'), 'w') as f:
            f.write('1')
    except OSError:
        pass


def restart():
    """A plain mregfs start, nothing else: no manual step. Ready when the
    mount answers statfs (a dead mount left behind answers ENOTCONN)."""
    assert m.proc is None or m.proc.poll() is not None
    m.ensure_store()
    logf = open(m.log, 'ab')
    m.proc = subprocess.Popen([MREGFS, '-f', '--store', m.store] + m.args +
                              [m.mnt], stdout=logf, stderr=logf, env=m.env,
                              stdin=subprocess.DEVNULL)
    logf.close()
    end = time.monotonic() + 15
    while time.monotonic() < end:
        if m.proc.poll() is not None:
            raise RuntimeError('mregfs exited with %d:\n%s' %
                               (m.proc.returncode, m.log_tail()))
        if mountinfo_has(m.mnt):
            try:
                os.statvfs(m.mnt)
                return
            except OSError:
                pass
        time.sleep(0.02)
    raise RuntimeError('mregfs did not mount within 15 s:\n' +
                       m.log_tail())


def timed(fn):
    t0 = time.monotonic()
    fn()
    return time.monotonic() - t0


# ---- the checks after each round -------------------------------------------

def read_mount(*parts):
    with open(m.path(*parts), 'rb') as f:
        return f.read()


def check_model(model, label):
    """Every version absent or whole; stages on sealed versions; history a
    chain. Returns a list of problems."""
    bad = []
    vers = {v['version']: v for v in mreg_json('ls', model)}
    for (mm, v), g in MUST.items():
        if mm == model and v not in vers:
            bad.append('%s/%s reported made but is missing' % (model, v))
    for (mm, v) in SEALED:
        if mm == model and v in vers and vers[v]['state'] != 'sealed':
            bad.append('%s/%s reported sealed but is %s' %
                       (model, v, vers[v]['state']))
    for v, info in vers.items():
        files = [f for f in mreg_json('ls', '%s/%s' % (model, v))]
        names = set(f['path'] for f in files)
        kinds = set(f['kind'] for f in files)
        groups = set(group_of(n) for n in names)
        if kinds - {'file'}:
            bad.append('%s/%s holds %s' % (model, v, kinds))
        if len(groups) > 1 or (groups and next(iter(groups)) not in GROUPS):
            bad.append('%s/%s mixes files: %s' % (model, v, sorted(names)))
            continue
        if not groups:
            want = set()
            if (model, v) in MUST:
                want = GROUPS[MUST[model, v]]
            if info['state'] == 'sealed' or want:
                bad.append('%s/%s (%s) is empty' % (model, v,
                                                     info['state']))
            continue
        g = next(iter(groups))
        if (model, v) in MUST and MUST[model, v] != g:
            bad.append('%s/%s holds %s, want %s' % (model, v, g,
                                                    MUST[model, v]))
        complete = g in COMPLETE or info['state'] == 'sealed'
        if complete and names != GROUPS[g]:
            bad.append('%s/%s (%s) holds %d of the %d files of %s' % (
                model, v, info['state'], len(names), len(GROUPS[g]), g))
        for f in files:
            try:
                data = read_mount('models', model, v, f['path'])
            except OSError as e:
                bad.append('%s/%s/%s: %s' % (model, v, f['path'], e))
                continue
            if data != CONTENT[f['path']] and (
                    complete or info['state'] == 'sealed' or data != b''):
                # a draft keeps a file whose create completed but whose
                # close did not as it was created: empty (as a native file
                # system keeps a created file after a crash)
                bad.append('%s/%s/%s: %d bytes differ from the %d written'
                           % (model, v, f['path'], len(data),
                              len(CONTENT[f['path']])))
    # no pending file, no temporary name left at the model root
    for n in os.listdir(m.path('models', model)):
        if n != 'stages' and n not in vers:
            bad.append('%s: leftover entry %r at the model root' %
                       (model, n))
    # stages point at sealed versions; the history is a chain
    top = {x['model']: x for x in mreg_json('ls')}
    stages = top[model]['stages'] if model in top else {}
    for s, v in stages.items():
        if v not in vers or vers[v]['state'] != 'sealed':
            bad.append('stage %s/%s -> %s, which is %s' % (
                model, s, v, vers[v]['state'] if v in vers else 'missing'))
    last = {}
    for h in mreg_json('history', model):
        s = h['stage']
        if h['from'] != last.get(s):
            bad.append('history of %s/%s breaks at seq %d: from %r after '
                       'to %r' % (model, s, h['seq'], h['from'],
                                  last.get(s)))
        last[s] = h['to']
    for s in set(last) | set(stages):
        if last.get(s) != stages.get(s):
            bad.append('stage %s/%s is %r, its history ends at %r' % (
                model, s, stages.get(s), last.get(s)))
    return bad


def check(kind, rnd, model, what):
    bad = []
    if not mountinfo_has(m.mnt) or m.proc.poll() is not None:
        bad.append('the daemon is not serving')
        restart()
    r = mreg('fsck')
    if r.returncode != 0:
        bad.append('mreg fsck exited %d:\n%s%s' % (r.returncode,
                                                  r.stdout[-1500:],
                                                  r.stderr[-500:]))
    bad += check_model(model, what)
    if bad:
        t.ok(False, '%s round %d (%s): the store is sound' %
             (kind, rnd, what), '\n'.join(bad[:20]))
        return False
    return True



# ---- the kinds -------------------------------------------------------------

def kind_push():
    """mreg push of a directory of 3 files (50 KiB-1.5 MiB each) into
    model 'push', the CLI killed at random."""
    model = 'push'
    d = make_group('push_cal', 3, 50 << 10, 1536 << 10)
    r = mreg('push', model, d)
    assert r.returncode == 0, r.stderr
    MUST[model, r.stdout.strip()] = 'push_cal'
    # calibrate on fresh bytes (a repeat would dedup)
    d = make_group('push_cal2', 3, 50 << 10, 1536 << 10)
    dur = timed(lambda: MUST.__setitem__(
        (model, mreg('push', model, d).stdout.strip()), 'push_cal2'))
    t.diag('push takes %.1f ms' % (dur * 1000))
    win = Window(dur * 1.3)
    good = 0
    for rnd in rounds():
        g = 'push_r%d' % rnd
        d = make_group(g, 3, 50 << 10, 1536 << 10)
        p = spawn_mreg('push', model, d)
        rc = kill_after(p, win.draw())
        win.update(rc == -signal.SIGKILL)
        if rc == 0:
            MUST[model, p.stdout.read().strip()] = g
        elif rc != -signal.SIGKILL:
            t.ok(False, 'push round %d: push exited %d' % (rnd, rc),
                 p.stderr.read())
        good += check('push', rnd, model, 'push killed')
    t.eq(good, RAN[CUR[0]], 'push: %d rounds of a killed mreg push leave a '
         'sound store' % RAN[CUR[0]])


def kind_cp():
    """cp of a file to a model root (-> version N+1) or cp -r of a
    directory to a draft, the daemon killed at random."""
    model = 'cp'
    os.mkdir(m.path('models', model))
    f = make_group('cp_cal', 1, 1 << 20, (1 << 20) + 1)
    r = subprocess.run(['cp', os.path.join(f, 'cp_cal-0.bin'),
                        m.path('models', model) + '/'])
    assert r.returncode == 0
    MUST[model, '1'] = 'cp_cal'
    g = make_group('cp_cal2', 3, 100 << 10, 800 << 10)
    dur = timed(lambda: subprocess.run(['cp', '-r', g, m.path(
        'models', model, '2')], check=True))
    MUST[model, '2'] = 'cp_cal2'
    t.diag('cp -r takes %.1f ms' % (dur * 1000))
    win = Window(dur * 1.3)
    good = 0
    for rnd in rounds():
        g = 'cp_r%d' % rnd
        if rnd % 2 == 0:
            d = make_group(g, 1, 200 << 10, 2 << 20)
            before = set(os.listdir(m.path('models', model)))
            cmd = ['cp', os.path.join(d, g + '-0.bin'),
                   m.path('models', model) + '/']
            draft = None
        else:
            d = make_group(g, 3, 100 << 10, 800 << 10)
            draft = str(100 + rnd)
            cmd = ['cp', '-r', d, m.path('models', model, draft)]
        p = subprocess.Popen(cmd, stderr=subprocess.DEVNULL)
        win.update(kill_daemon_after(win.draw(), p))
        rc = reap(p, 'cp')
        restart()
        if rc == 0 and draft:
            MUST[model, draft] = g
            COMPLETE.add(g)
        elif rc == 0:
            new = set(os.listdir(m.path('models', model))) - before
            if len(new) != 1:
                t.ok(False, 'cp round %d: cp exited 0, one new version' %
                     rnd, 'new entries: %r' % sorted(new))
            else:
                MUST[model, new.pop()] = g
        good += check('cp', rnd, model, 'daemon killed, cp %s' %
                      ('finished' if rc == 0 else 'interrupted'))
    t.eq(good, RAN[CUR[0]], 'cp: %d rounds of a killed daemon under cp '
         'leave a sound store' % RAN[CUR[0]])


def fill_draft(model, version, group):
    os.mkdir(m.path('models', model, version))
    for name in GROUPS[group]:
        with open(m.path('models', model, version, name), 'wb') as f:
            f.write(CONTENT[name])
    MUST[model, version] = group
    COMPLETE.add(group)


def kind_seal():
    """A draft of 8 files sealed by chmod a-w (daemon killed) or mreg seal
    (CLI killed)."""
    model = 'seal'
    os.mkdir(m.path('models', model))
    make_group('seal_cal', 8, 1 << 10, 64 << 10)
    fill_draft(model, '1', 'seal_cal')
    d1 = timed(lambda: os.chmod(m.path('models', model, '1'), 0o555))
    SEALED.add((model, '1'))
    make_group('seal_cal2', 8, 1 << 10, 64 << 10)
    fill_draft(model, '2', 'seal_cal2')
    d2 = timed(lambda: mreg('seal', model, '2', check=True))
    SEALED.add((model, '2'))
    t.diag('chmod a-w takes %.1f ms, mreg seal %.1f ms' % (d1 * 1000,
                                                            d2 * 1000))
    wd, wc = Window(max(d1, 0.002) * 2), Window(d2 * 1.3)
    good = 0
    for rnd in rounds():
        g = 'seal_r%d' % rnd
        v = str(10 + rnd)
        make_group(g, 8, 1 << 10, 64 << 10)
        fill_draft(model, v, g)
        if rnd % 2 == 0:
            p = subprocess.Popen(['chmod', 'a-w',
                                  m.path('models', model, v)],
                                 stderr=subprocess.DEVNULL)
            wd.update(kill_daemon_after(wd.draw(), p))
            rc = reap(p, 'chmod')
            restart()
            how = 'daemon killed under chmod a-w'
        else:
            p = spawn_mreg('seal', model, v)
            rc = kill_after(p, wc.draw())
            wc.update(rc == -signal.SIGKILL)
            how = 'mreg seal killed'
        if rc == 0:
            SEALED.add((model, v))
        good += check('seal', rnd, model, how)
    t.eq(good, RAN[CUR[0]], 'seal: %d rounds of kills while sealing leave a '
         'sound store' % RAN[CUR[0]])


STORM = r'''
stages=$1; shift
while :; do
	for v in "$@"; do
		ln -sfn "../$v" "$stages/Production" || exit 1
		ln -sfn "../$v" "$stages/Staging" || exit 1
	done
done
'''


def kind_promote():
    """Storms of ln -sfn through the mount (the daemon killed), and of
    concurrent mreg promote / rollback (some CLIs killed)."""
    model = 'promote'
    for i in range(3):
        g = 'promote_base%d' % i
        d = make_group(g, 2, 1 << 10, 32 << 10)
        r = mreg('push', model, d, check=True)
        MUST[model, r.stdout.strip()] = g
    base = [v['version'] for v in mreg_json('ls', model)]
    stages = m.path('models', model, 'stages')
    good = 0
    for rnd in rounds():
        g = 'promote_r%d' % rnd
        make_group(g, 2, 1 << 10, 32 << 10)
        draft = str(100 + rnd)
        fill_draft(model, draft, g)
        if rnd % 2 == 0:
            p = subprocess.Popen(['sh', '-c', STORM, 'storm', stages] +
                                 base + [draft], start_new_session=True,
                                 stderr=subprocess.DEVNULL)
            kill_daemon_after(rng.uniform(0.002, 0.15), p)
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
            restart()
            how = 'daemon killed under ln -sfn'
        else:
            procs = []
            for i in range(6):
                v = rng.choice(base + [draft])
                s = rng.choice(['Production', 'Staging', 'Canary'])
                if rng.random() < 0.25:
                    procs.append(spawn_mreg('rollback', model, s))
                else:
                    procs.append(spawn_mreg('promote', model, v, s))
            time.sleep(rng.uniform(0, 0.012))
            mid = False
            for p in procs:
                if rng.random() < 0.5 and p.poll() is None:
                    os.kill(p.pid, signal.SIGKILL)
                    mid = True
            tally(mid)
            for p in procs:
                reap(p, ' '.join(p.args[:5]))
                if p.returncode not in (0, 1, -signal.SIGKILL):
                    t.ok(False, 'promote round %d: mreg exited %d' %
                         (rnd, p.returncode), p.stderr.read())
                p.stdout.close()
                p.stderr.close()
            how = 'mreg promote/rollback storm, CLIs killed'
        good += check('promote', rnd, model, how)
    t.eq(good, RAN[CUR[0]], 'promote: %d rounds of kills in promotion storms '
         'leave a sound store' % RAN[CUR[0]])


def kind_gc():
    """mreg gc while versions are removed (mreg rm and rmdir through the
    mount), gc killed at random (and every fourth round the daemon)."""
    model = 'gc'
    live = []
    for i in range(3):
        g = 'gc_base%d' % i
        d = make_group(g, 2, 100 << 10, 600 << 10)
        v = mreg('push', model, d, check=True).stdout.strip()
        MUST[model, v] = g
        live.append(v)
    # calibrate on a gc with work to do: two versions removed
    for i in range(2):
        d = make_group('gc_cal%d' % i, 2, 100 << 10, 600 << 10)
        v = mreg('push', model, d, check=True).stdout.strip()
        mreg('rm', model, v, check=True)
    dur = timed(lambda: mreg('gc', check=True))
    t.diag('gc takes %.1f ms' % (dur * 1000))
    win = Window(dur * 1.3)
    good = 0
    for rnd in rounds():
        for i in range(3):
            g = 'gc_r%d_%d' % (rnd, i)
            d = make_group(g, 2, 100 << 10, 600 << 10)
            v = mreg('push', model, d, check=True).stdout.strip()
            MUST[model, v] = g
            live.append(v)
        # one removed before gc starts, two while it runs
        gone = [live.pop(rng.randrange(len(live))) for _ in range(3)]
        for v in gone:
            del MUST[model, v]
        mreg('rm', model, gone[0], check=True)
        # beside gc: mreg rm, rmdir through the mount, a reader
        keep = rng.choice(live)
        errs = []

        def beside():
            try:
                os.rmdir(m.path('models', model, gone[2]))
                for n in GROUPS[MUST[model, keep]]:
                    read_mount('models', model, keep, n)
            except OSError as e:
                errs.append(e)

        gc = spawn_mreg('gc')
        rm = spawn_mreg('rm', model, gone[1])
        th = threading.Thread(target=beside)
        th.start()
        if rnd % 4 == 3:
            win.update(kill_daemon_after(win.draw(), gc))
            if gc.poll() is None:
                os.kill(gc.pid, signal.SIGKILL)
            reap(gc, 'mreg gc')
            th.join()
            restart()
            how = 'gc and the daemon killed'
        else:
            rc = kill_after(gc, win.draw())
            win.update(rc == -signal.SIGKILL)
            th.join()
            how = 'gc killed'
            if errs:
                t.ok(False, 'gc round %d: rmdir and reads through the '
                     'mount beside gc' % rnd, repr(errs))
        reap(rm, 'mreg rm')
        if rm.returncode != 0:
            t.ok(False, 'gc round %d: mreg rm exited %d' %
                 (rnd, rm.returncode), rm.stderr.read())
        for p in (gc, rm):
            p.stdout.close()
            p.stderr.close()
        good += check('gc', rnd, model, how)
    t.eq(good, RAN[CUR[0]], 'gc: %d rounds of a killed gc beside '
         'removals leave a sound store' % RAN[CUR[0]])
    r = mreg('gc')
    t.eq(r.returncode, 0, 'a gc left alone completes after all that')
    t.ok(check('gc', ROUNDS, model, 'after a full gc'),
         'after a full gc every version is still whole')


def main():
    t.diag('seed %d (MREG_KILL_SEED=%d repeats it), %d rounds' %
           (SEED, SEED, ROUNDS))
    t0 = time.monotonic()
    try:
        restart()
        for name, fn in (('push', kind_push), ('cp', kind_cp),
                         ('seal', kind_seal), ('promote', kind_promote),
                         ('gc', kind_gc)):
            k0 = time.monotonic()
            if m.proc.poll() is not None:
                restart()
            CUR[0] = name
            t.run('kills during ' + name, fn)
            t.diag('%s: %.1f s' % (name, time.monotonic() - k0))
        for name in sorted(landed):
            mid, done = landed[name]
            t.diag('%s: %d kills landed mid-way, %d operations finished '
                   'first' % (name, mid, done))
        t.diag('auto_unmount missed %d dead mounts (mregfs detached them '
               'at the next start)' % stats['left'])
        t.ok(all(landed.get(k, [0])[0] >= ROUNDS // 5 for k in
                 ('push', 'cp', 'seal', 'promote', 'gc')),
             'in every kind at least %d kills (a fifth of %d rounds) '
             'landed mid-way' % (ROUNDS // 5, ROUNDS),
             '%r in %r rounds' % (landed, RAN))
        rc = m.stop()
        t.eq(rc, 0, 'the last daemon exits 0 on unmount')
        t.ok(not mountinfo_has(m.mnt), 'no dead mount is left under it')
        r = mreg('fsck', '--full')
        t.eq(r.returncode, 0, 'mreg fsck --full is clean at the end',)
        if r.returncode:
            t.diag(r.stdout[-3000:] + r.stderr[-1000:])
    except Exception as e:
        t.ok(False, 'kills', '%s\n%s' % (e, m.log_tail()))
    finally:
        m.close()
        shutil.rmtree(src, ignore_errors=True)
    t.diag('%.1f s in all' % (time.monotonic() - t0))
    return t.done()


if __name__ == '__main__':
    sys.exit(main())
