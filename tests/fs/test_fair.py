"""One user must not take service from the others (issue 11): hooks and
descriptors, with two throw-away users on an allow_other mount.

Hooks. mregt_flood registers 2,000 tiny files while the hook of its first
registration is held (so that every later event waits in the queue);
meanwhile mregt_dep promotes its model to Production and registers one
version. When the held hook is let go: mregt_dep's on_promote runs next
(promotions first), its registration runs within the next two hooks (a
queue per user, served in turn), and none of mregt_dep's hooks is dropped;
mregt_flood's registrations beyond its share are dropped, each one with an
audit record (op "hook", result "dropped", its model and version) and
counted in .mreg/metrics (mreg_hooks_total{result="dropped"}), and every
one of the 2,000 is either run or so recorded.

Descriptors. [limits] open_files_per_user = 50: mregt_flood holds 60 files
of a draft open, each after an out-of-order write (a spool, one descriptor
of the daemon's each): the writes past the 50th fail with EMFILE, while
mregt_dep still writes out of order in its own draft, and its hooks run;
once mregt_flood closes its files, it can write again. Then the reserve:
the daemon's own RLIMIT_NOFILE lowered (prlimit) to 40 above what it holds
plus the default reserve, and the per-user cap raised: mregt_flood's
spools are refused with EMFILE before the daemon runs out, and a hook (a
pipe, a pidfd, a process) still starts and runs.
"""
import os
import resource
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mountlib import Mount, Tap, run_suite  # noqa: E402
from userlib import Users, run_as  # noqa: E402

NFLOOD = 2000
RESERVE = 256           # the default [limits] open_files_reserve

HOOK = r'''#!/bin/sh
# one line per event; the first registration of model flood waits until
# the test lets it go, so that the events after it queue up
echo "$MREG_EVENT $MREG_UID $MREG_MODEL $MREG_VERSION $MREG_STAGE" \
	>>%(dir)s/order
if [ "$MREG_MODEL/$MREG_VERSION" = flood/1 ]; then
	i=0
	while [ ! -e %(dir)s/release ] && [ $i -lt 1200 ]; do
		sleep 0.05
		i=$((i + 1))
	done
fi
exit 0
'''

# Run as a user: writes N files at the model root, each a version.
FLOOD = r'''
import os, sys
d, n = sys.argv[1], int(sys.argv[2])
for i in range(n):
    with open(os.path.join(d, 'f%d.bin' % i), 'wb') as f:
        f.write(b'%d' % i)
'''

# Run as a user: opens N files of a draft, each with a write past its end
# first (out of order: a spool), prints one line per file ("ok" or the
# errno name), then holds them open until its standard input closes.
HOLD = r'''
import errno, os, sys
d, n = sys.argv[1], int(sys.argv[2])
fds = []
for i in range(n):
    try:
        fd = os.open(os.path.join(d, 'h%d.bin' % i),
                     os.O_CREAT | os.O_WRONLY, 0o644)
    except OSError as e:
        print('open', errno.errorcode[e.errno], flush=True)
        continue
    fds.append(fd)
    try:
        os.pwrite(fd, b'x', 4096)
        print('ok', flush=True)
    except OSError as e:
        print(errno.errorcode[e.errno], flush=True)
print('holding', flush=True)
sys.stdin.read()
'''

t = Tap()
m = Mount('fair')
os.chmod(m.tmp, 0o755)
users = Users()
out = os.path.join(m.tmp, 'out')
conf = os.path.join(m.tmp, 'mreg.conf')
U = {}
held = []


def wait_for(fn, timeout=30, step=0.05):
    end = time.monotonic() + timeout
    while True:
        v = fn()
        if v or time.monotonic() >= end:
            return v
        time.sleep(step)


def order():
    try:
        with open(os.path.join(out, 'order')) as f:
            return [ln.split() for ln in f.read().splitlines()]
    except OSError:
        return []


def write_conf(limits):
    hook = os.path.join(m.tmp, 'hook.sh')
    with open(conf, 'w') as f:
        f.write('[store]\ndurability = none\n'
                '[hooks]\non_register = %s\non_promote = %s\n'
                'timeout = 120\n[limits]\n%s' % (hook, hook, limits))
    os.chmod(conf, 0o644)


def put_as(who, path, text):
    """Writes a file as who (cp would do; the shell's > closes a dup of
    the descriptor first)."""
    return run_as(U[who], ['/usr/bin/python3', '-c',
                           'import sys; open(sys.argv[1], "w").write('
                           'sys.argv[2])', path, text])


def setup():
    U['flood'] = users.user('flood')
    U['dep'] = users.user('dep')
    os.mkdir(out)
    os.chmod(out, 0o777)
    hook = os.path.join(m.tmp, 'hook.sh')
    with open(hook, 'w') as f:
        f.write(HOOK % {'dir': out})
    os.chmod(hook, 0o755)
    write_conf('open_files_per_user = 50\n')
    m.args = ['-c', conf, '-o', 'allow_other']
    m.start()
    for who, model in (('dep', 'deploy'), ('flood', 'flood'),
                       ('flood', 'held')):
        r = run_as(U[who], ['mkdir', m.path('models', model)])
        assert r.returncode == 0, r.stderr
    r = put_as('dep', m.path('models', 'deploy', 'model.bin'), 'v1')
    assert r.returncode == 0, r.stderr
    assert wait_for(lambda: ['register', str(U['dep'].uid), 'deploy', '1']
                    in order()), order()


def test_hooks():
    dep, flood = str(U['dep'].uid), str(U['flood'].uid)
    r = run_as(U['flood'], ['/usr/bin/python3', '-c', FLOOD,
                            m.path('models', 'flood'), str(NFLOOD)],
               timeout=600)
    t.eq(r.returncode, 0, '%s registers %d files' % (U['flood'].name,
                                                     NFLOOD))
    t.ok(wait_for(lambda: ['register', flood, 'flood', '1'] in order()),
         'the hook of its first registration runs (and is held)')
    queued = m.metric('mreg_hooks_queued') or 0
    r = run_as(U['dep'], ['ln', '-s', '../1', m.path('models', 'deploy',
                                                     'stages',
                                                     'Production')])
    t.eq(r.returncode, 0, '%s promotes deploy/1 to Production meanwhile' %
         U['dep'].name)
    r = put_as('dep', m.path('models', 'deploy', 'model.bin'), 'v2')
    t.eq(r.returncode, 0, 'and registers deploy/2')
    # a close registers when the writer is done (its RELEASE), which may
    # come after close() returned: both are queued before the release
    t.ok(wait_for(lambda: m.metric('mreg_hooks_queued') == queued + 2, 10),
         'both hooks wait in the queue')
    open(os.path.join(out, 'release'), 'w').close()

    prom = ['promote', dep, 'deploy', '1', 'Production']
    t.ok(wait_for(lambda: prom in order()), 'the promotion\'s hook runs',
         'not in the hook log: %r' % order()[-5:])
    o = order()
    first = o.index(['register', flood, 'flood', '1'])
    t.eq(o.index(prom) if prom in o else None, first + 1,
         'first after the held hook: promotions come before registrations')
    reg2 = ['register', dep, 'deploy', '2']
    # the hooks after the promotion's run one at a time: wait until
    # deploy/2's has run or four have, then judge its place
    wait_for(lambda: reg2 in order() or len(order()) > first + 4)
    o = order()
    t.ok(reg2 in o[first + 1:first + 5], 'deploy/2\'s registration runs '
         'among the next ones: each user\'s queue is served in turn',
         repr(o[first:first + 5]))

    def settled():
        ran = sum(1 for x in order() if x[2] == 'flood')
        dropped = [a for a in m.audit() if a['op'] == 'hook' and
                   a.get('result') == 'dropped']
        return (ran, dropped) if ran + len(dropped) >= NFLOOD else None

    got = wait_for(settled, timeout=300, step=0.5)
    t.ok(got, 'each of the %d registrations\' hooks runs or is audited as '
         'dropped' % NFLOOD, 'ran %d' % sum(1 for x in order()
                                            if x[2] == 'flood'))
    if not got:
        return
    ran, dropped = got
    t.ok(ran + len(dropped) == NFLOOD and ran >= 1000 and dropped,
         'ran %d, dropped %d: the greedy user keeps a bounded share' %
         (ran, len(dropped)))
    t.ok(all(a['uid'] == U['flood'].uid and a.get('model') == 'flood' and
             a.get('event') == 'register' and a.get('version')
             for a in dropped),
         'each drop is audited with the user, event, model and version',
         repr(dropped[:1]))
    t.eq(len(set(a['version'] for a in dropped)), len(dropped),
         'one record per dropped event')
    t.eq(m.metric('mreg_hooks_total{result="dropped"}'), len(dropped),
         '.mreg/metrics counts them: mreg_hooks_total{result="dropped"}')
    t.ok(not [a for a in m.audit() if a['op'] == 'hook' and
              a['uid'] == U['dep'].uid],
         'no hook of the other user was dropped or failed')


def hold(who, d, n):
    """Starts HOLD as who: returns the process and its per-file lines."""
    p = subprocess.Popen(['/usr/bin/python3', '-c', HOLD, d, str(n)],
                         preexec_fn=U[who].preexec(), stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, text=True)
    held.append(p)
    lines = []
    for ln in p.stdout:
        if ln.strip() == 'holding':
            return p, lines
        lines.append(ln.strip())
    return p, lines


def release(p):
    p.stdin.close()
    p.wait(60)
    held.remove(p)


def dep_writes(name):
    """mregt_dep writes out of order into its draft: 'ok' or errno."""
    r = run_as(U['dep'], ['/usr/bin/python3', '-c', (
        'import errno, os, sys\n'
        'try:\n'
        '    fd = os.open(sys.argv[1], os.O_CREAT | os.O_WRONLY, 0o644)\n'
        '    os.pwrite(fd, b"y", 8192)\n'
        '    os.pwrite(fd, b"z", 0)\n'
        '    os.close(fd)\n'
        '    print("ok")\n'
        'except OSError as e:\n'
        '    print(errno.errorcode[e.errno])\n'),
        m.path('models', 'deploy', 'd1', name)])
    return r.stdout.strip() or r.stderr.strip()


def promote_hook_runs(version, stage):
    cmd = ['ln', '-sfn', '../%s' % version,
           m.path('models', 'deploy', 'stages', stage)]
    r = run_as(U['dep'], cmd)
    line = ['promote', str(U['dep'].uid), 'deploy', version, stage]
    return r.returncode == 0 and wait_for(lambda: line in order(), 20)


def test_per_user():
    r = run_as(U['flood'], ['mkdir', m.path('models', 'held', 'd1')])
    assert r.returncode == 0, r.stderr
    r = run_as(U['dep'], ['mkdir', m.path('models', 'deploy', 'd1')])
    assert r.returncode == 0, r.stderr
    p, lines = hold('flood', m.path('models', 'held', 'd1'), 60)
    try:
        per_user_held(lines)
    finally:
        release(p)
    p, lines = hold('flood', m.path('models', 'held', 'd1'), 5)
    release(p)
    t.eq(lines, ['ok'] * 5, 'once its files are closed, %s writes again' %
         U['flood'].name)


def per_user_held(lines):
    t.eq(lines, ['ok'] * 50 + ['EMFILE'] * 10, '%s holding 60 files open '
         'with a spool each: the writes past its cap of 50 fail with '
         'EMFILE' % U['flood'].name)
    t.eq(dep_writes('a.bin'), 'ok', 'meanwhile %s writes out of order in '
         'its own draft' % U['dep'].name)
    t.ok(promote_hook_runs('1', 'Staging'), 'and its promotion\'s hook '
         'runs')
    t.ok((m.metric('mreg_open_files_refused_total') or 0) >= 10,
         '.mreg/metrics counts the refusals')


def nfds(pid):
    return len(os.listdir('/proc/%d/fd' % pid))


def test_reserve():
    m.stop()
    write_conf('open_files_per_user = 100000\n')
    m.start()
    pid = m.pid()
    limit = nfds(pid) + RESERVE + 40
    resource.prlimit(pid, resource.RLIMIT_NOFILE, (limit, limit))
    r = run_as(U['flood'], ['mkdir', m.path('models', 'held', 'd2')])
    assert r.returncode == 0, r.stderr
    p, lines = hold('flood', m.path('models', 'held', 'd2'), limit)
    try:
        reserve_held(pid, limit, lines)
    finally:
        release(p)


def reserve_held(pid, limit, lines):
    ok = lines.count('ok')
    t.ok(0 < ok < limit - RESERVE and set(lines[ok:]) == {'EMFILE'},
         'with the daemon\'s limit at %d, one user\'s spools stop at %d '
         'with EMFILE: a reserve is kept' % (limit, ok),
         repr(sorted(set(lines))))
    t.ok(limit - nfds(pid) >= RESERVE - 8, 'the daemon keeps about %d '
         'descriptors free (%d)' % (RESERVE, limit - nfds(pid)))
    t.ok(promote_hook_runs('1', 'Canary'), 'a hook still starts and runs')


def cleanup():
    for p in list(held):
        p.kill()
        p.wait()


def main():
    return run_suite(t, m, 'fair', setup, [
        ('hooks: promotions and other users first', test_hooks),
        ('descriptors: a cap per user', test_per_user),
        ('descriptors: a reserve for the daemon', test_reserve),
    ], cleanup=(cleanup, users.close))


if __name__ == '__main__':
    sys.exit(main())
