"""Hooks (issue 4 item 5, issue 11): [hooks] on_register and on_promote run
the admin's program after the change commits, with exactly the environment
the README and mreg.conf.example document (MREG_EVENT, MREG_MODEL,
MREG_VERSION, MREG_STAGE, MREG_PREVIOUS, MREG_USER, MREG_UID, MREG_STORE,
MREG_MOUNT, PATH, LANG, HOME: nothing of the daemon's own) and no
descriptor of the daemon's but its output; never on the thread of the
filesystem call (a hook that sleeps 5 s does not slow `ln`); killed after
the timeout; its output and exit status in the daemon log. A hook that
cannot run (killed at its timeout, an interpreter that does not exist, a
program that became group-writable) is audited (op "hook", result
"failed", the event, model, version, stage and reason) and counted in
.mreg/metrics. The changes are made by a throw-away user through an
allow_other mount.
"""
import os
import pwd
import shutil
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mountlib import Mount, Tap, run_suite  # noqa: E402
from userlib import Users, run_as  # noqa: E402

HOOK = r'''#!/bin/sh
# writes what it saw, then: Slow sleeps past the timeout, Quiet too after
# closing its output; others exit 3
out="%(dir)s/$MREG_EVENT-$MREG_STAGE-$MREG_VERSION"
tr '\0' '\n' </proc/$$/environ >"$out.tmp"
for fd in /proc/$$/fd/*; do
	echo "${fd##*/} $(readlink "$fd")"
done >"$out.fds"
mv "$out.tmp" "$out"
if [ "$MREG_STAGE" = Slow ]; then
	sleep 5
fi
if [ "$MREG_STAGE" = Quiet ]; then
	exec >/dev/null 2>&1
	sleep 5
fi
echo "hook saw $MREG_MODEL/$MREG_VERSION"
exit 3
'''

t = Tap()
m = Mount('hooks', env={'DAEMON_ONLY': 'x'})
os.chmod(m.tmp, 0o755)
users = Users()
out = os.path.join(m.tmp, 'out')
src = os.path.join(m.tmp, 'src')
U = {}


# Waits for what must come are long (a loaded machine runs hooks late);
# what the checks judge is what came, never how soon.
WAIT = 60


def wait_for(path, timeout=WAIT):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if os.path.exists(path):
            return True
        time.sleep(0.02)
    return False


def env_of(name):
    with open(os.path.join(out, name)) as f:
        return dict(ln.rstrip('\n').split('=', 1) for ln in f if '=' in ln)


def hook_failures(n=0, timeout=WAIT):
    """The audit records of hooks, once there are n of them (or timeout
    seconds passed)."""
    end = time.monotonic() + timeout
    while True:
        got = [a for a in m.audit() if a['op'] == 'hook']
        if len(got) >= n or time.monotonic() >= end:
            return got
        time.sleep(0.1)


def setup():
    U['rel'] = users.user('rel')
    os.mkdir(out)
    os.mkdir(src)
    os.chmod(src, 0o755)
    hook = os.path.join(m.tmp, 'hook.sh')
    with open(hook, 'w') as f:
        f.write(HOOK % {'dir': out})
    os.chmod(hook, 0o755)
    conf = os.path.join(m.tmp, 'mreg.conf')
    with open(conf, 'w') as f:
        f.write('[hooks]\non_register = %s\non_promote = %s\ntimeout = 2\n'
                '[log]\nlevel = info\n' % (hook, hook))
    m.args = ['-c', conf, '-o', 'allow_other']
    m.start()
    for n in (1, 2):
        p = os.path.join(src, 'model.bin')
        with open(p, 'wb') as f:
            f.write(os.urandom(1000 + n))
        os.chmod(p, 0o644)
        cmds = [['cp', p, m.path('models', 'hm') + '/']]
        if n == 1:
            cmds.insert(0, ['mkdir', m.path('models', 'hm')])
        for cmd in cmds:
            r = run_as(U['rel'], cmd)
            assert r.returncode == 0, (cmd, r.stderr)


def test_register():
    t.ok(wait_for(os.path.join(out, 'register--1')),
         'on_register ran for version 1')
    e = env_of('register--1')
    t.eq((e.get('MREG_EVENT'), e.get('MREG_MODEL'), e.get('MREG_VERSION'),
          e.get('MREG_STAGE'), e.get('MREG_UID')),
         ('register', 'hm', '1', '', str(U['rel'].uid)),
         'with MREG_EVENT, MREG_MODEL, MREG_VERSION, MREG_STAGE (empty) and '
         'MREG_UID of the user who copied it in')


ENV = ('MREG_EVENT', 'MREG_MODEL', 'MREG_VERSION', 'MREG_STAGE',
       'MREG_PREVIOUS', 'MREG_USER', 'MREG_UID', 'MREG_STORE', 'MREG_MOUNT',
       'PATH', 'LANG', 'HOME')


def test_env():
    e = env_of('register--1')
    t.eq(sorted(e), sorted(ENV), 'the environment is exactly the '
         'documented set (nothing of the daemon\'s own)')
    t.eq(e, {'MREG_EVENT': 'register', 'MREG_MODEL': 'hm',
             'MREG_VERSION': '1', 'MREG_STAGE': '', 'MREG_PREVIOUS': '',
             'MREG_USER': U['rel'].name, 'MREG_UID': str(U['rel'].uid),
             'MREG_STORE': m.store, 'MREG_MOUNT': m.mnt,
             'PATH': '/usr/sbin:/usr/bin:/sbin:/bin', 'LANG': 'C',
             'HOME': pwd.getpwuid(os.geteuid()).pw_dir},
         'with the documented values')
    top = os.path.dirname(os.path.dirname(os.path.dirname(
        os.path.abspath(__file__))))
    for doc in ('README.md', 'mreg.conf.example'):
        with open(os.path.join(top, doc)) as f:
            text = f.read()
        t.ok(all('`%s`' % k in text or '%s ' % k in text or
                 '%s=' % k in text for k in ENV),
             '%s documents each of them' % doc,
             [k for k in ENV if k not in text])


def test_promote():
    stages = m.path('models', 'hm', 'stages')
    for cmd in (['ln', '-s', '../1', stages + '/Staging'],
                ['ln', '-sfn', '../2', stages + '/Staging']):
        r = run_as(U['rel'], cmd)
        t.eq(r.returncode, 0, ' '.join(cmd[:2]) + ' as another user')
    t.ok(wait_for(os.path.join(out, 'promote-Staging-2')),
         'on_promote ran for both promotions')
    e1, e2 = env_of('promote-Staging-1'), env_of('promote-Staging-2')
    t.eq((e1.get('MREG_MODEL'), e1.get('MREG_VERSION'),
          e1.get('MREG_STAGE'), e1.get('MREG_PREVIOUS'), e1.get('MREG_UID')),
         ('hm', '1', 'Staging', '', str(U['rel'].uid)),
         'the first: MREG_PREVIOUS empty (the stage is new)')
    t.eq((e2.get('MREG_VERSION'), e2.get('MREG_PREVIOUS')), ('2', '1'),
         'the second: MREG_VERSION 2, MREG_PREVIOUS 1')
    with open(os.path.join(out, 'promote-Staging-2.fds')) as f:
        fds = [ln.split(' ', 1) for ln in f.read().splitlines()]
    leaked = [x for x in fds if int(x[0]) > 2 and
              (m.store in x[1] or x[1].startswith('socket:') or
               x[1] == '/dev/fuse')]
    t.ok(not leaked, 'the hook holds no descriptor of the daemon\'s (the '
         'index, the mount\'s sockets)', repr(fds))
    t.ok(m.log_has("for promote of 'hm/2' exited with status 3: hook saw "
                   "hm/2", WAIT), 'its output and exit status are in the '
         'daemon log', m.log_tail(10))


def test_slow():
    stages = m.path('models', 'hm', 'stages')
    killed = "for promote of 'hm/1' killed after 2 s"
    # the later promotions' hooks wait behind the sleeping one
    for i, cmd in enumerate((['ln', '-s', '../1', stages + '/Slow'],
                             ['ln', '-sfn', '../1', stages + '/Staging'],
                             ['ln', '-s', '../2', stages + '/Quiet'])):
        r = run_as(U['rel'], cmd)
        t.eq(r.returncode, 0, ' '.join(cmd[:2]) + ' ' +
             os.path.basename(cmd[-1]))
        if i == 0:
            t.ok(wait_for(os.path.join(out, 'promote-Slow-1')),
                 'the slow hook started')
    # an ln that waited for a hook would return only once the hook was
    # killed at its 2 s timeout (it sleeps 5 s), and logged so: what the
    # log holds, not how long ln took (a loaded machine is slow)
    t.ok(not m.log_has(killed), 'promotions return at once while the hook '
         'sleeps: the slow hook was still running after both more ln',
         m.log_tail(10))
    t.ok(m.log_has(killed, WAIT),
         'the hook is killed at its timeout, and the log says so',
         m.log_tail(10))
    t.ok(m.log_has("for promote of 'hm/2' killed after 2 s", WAIT),
         'so is one that closed its output and sleeps on', m.log_tail(10))
    got = hook_failures(2)
    t.eq(sorted((a['result'], a.get('event'), a.get('model'),
                 a.get('version'), a.get('stage'), a['uid']) for a in got),
         [('failed', 'promote', 'hm', '1', 'Slow', U['rel'].uid),
          ('failed', 'promote', 'hm', '2', 'Quiet', U['rel'].uid)],
         'each kill is in the audit log: op hook, result failed, the event')
    t.ok(got and all('timed out after 2 s' in a.get('reason', '')
                     for a in got),
         'with the reason', repr(got))
    t.eq(m.metric('mreg_hooks_total{result="failed"}'), 2,
         'and counted in .mreg/metrics')


def replace_hook(text, mode=0o755):
    hook = os.path.join(m.tmp, 'hook.sh')
    tmp = hook + '.new'
    with open(tmp, 'w') as f:
        f.write(text)
    os.chmod(tmp, mode)
    os.rename(tmp, hook)


def test_failed():
    stages = m.path('models', 'hm', 'stages')
    before = len(hook_failures(timeout=0))
    with open(os.path.join(m.tmp, 'hook.sh')) as f:
        good = f.read()
    try:
        replace_hook('#!/nonexistent/interpreter\n')
        r = run_as(U['rel'], ['ln', '-s', '../1', stages + '/Gone'])
        t.eq(r.returncode, 0, 'a promotion whose hook cannot start')
        got = hook_failures(before + 1)[before:]
        t.ok(len(got) == 1 and got[0]['result'] == 'failed' and
             got[0].get('stage') == 'Gone' and
             'No such file or directory' in got[0].get('reason', ''),
             'is audited as failed, with the reason', repr(got))
        replace_hook(good, 0o775)
        r = run_as(U['rel'], ['ln', '-s', '../2', stages + '/Open'])
        t.eq(r.returncode, 0, 'a promotion whose hook became writable')
        got = hook_failures(before + 2)[before + 1:]
        t.ok(len(got) == 1 and got[0].get('stage') == 'Open' and
             'writable by group' in got[0].get('reason', ''),
             'a program that became group-writable is not run: audited',
             repr(got))
        t.ok(not os.path.exists(os.path.join(out, 'promote-Open-2')),
             'and did not run')
    finally:
        replace_hook(good)
    t.eq(m.metric('mreg_hooks_total{result="failed"}'), 4,
         'every failure is counted in .mreg/metrics')


def main():
    return run_suite(t, m, 'hooks', setup, [
        ('on_register', test_register),
        ('the environment', test_env),
        ('on_promote', test_promote),
        ('a slow hook', test_slow),
        ('a hook that cannot run', test_failed),
    ], cleanup=(users.close,
                lambda: shutil.rmtree(src, ignore_errors=True)))


if __name__ == '__main__':
    sys.exit(main())
