"""Hooks (issue 4 item 5): [hooks] on_register and on_promote run the
admin's program after the change commits, with MREG_EVENT, MREG_MODEL,
MREG_VERSION, MREG_STAGE, MREG_PREVIOUS and MREG_UID in its environment and
no descriptor of the daemon's but its output; never on the thread of the
filesystem call (a hook that sleeps 5 s does not slow `ln`); killed after
the timeout; its output and exit status in the daemon log. The changes are
made by a throw-away user through an allow_other mount.
"""
import os
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
env | grep '^MREG_' | sort >"$out.tmp"
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
m = Mount('hooks')
os.chmod(m.tmp, 0o755)
users = Users()
out = os.path.join(m.tmp, 'out')
src = os.path.join(m.tmp, 'src')
U = {}


def wait_for(path, timeout=5):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if os.path.exists(path):
            return True
        time.sleep(0.02)
    return False


def env_of(name):
    with open(os.path.join(out, name)) as f:
        return dict(ln.rstrip('\n').split('=', 1) for ln in f if '=' in ln)


def log_has(text, timeout=0):
    end = time.monotonic() + timeout
    while True:
        if text in m.log_tail(200):
            return True
        if time.monotonic() >= end:
            return False
        time.sleep(0.05)


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
    t.ok(log_has("for promote of 'hm/2' exited with status 3: hook saw "
                 "hm/2", 3), 'its output and exit status are in the daemon '
         'log', m.log_tail(10))


def test_slow():
    stages = m.path('models', 'hm', 'stages')
    times = []
    # the later promotions' hooks wait behind the sleeping one
    for cmd in (['ln', '-s', '../1', stages + '/Slow'],
                ['ln', '-sfn', '../1', stages + '/Staging'],
                ['ln', '-s', '../2', stages + '/Quiet']):
        start = time.monotonic()
        r = run_as(U['rel'], cmd)
        times.append(time.monotonic() - start)
        t.eq(r.returncode, 0, ' '.join(cmd[:2]) + ' ' +
             os.path.basename(cmd[-1]))
        if len(times) == 1:
            t.ok(wait_for(os.path.join(out, 'promote-Slow-1')),
                 'the slow hook started')
    t.ok(max(times) < 0.5, 'promotions return at once while the hook '
         'sleeps 5 s (%.3f s at most)' % max(times))
    t.ok(log_has("for promote of 'hm/1' killed after 2 s", 4),
         'the hook is killed at its timeout, and the log says so',
         m.log_tail(10))
    t.ok(log_has("for promote of 'hm/2' killed after 2 s", 5),
         'so is one that closed its output and sleeps on', m.log_tail(10))


def main():
    return run_suite(t, m, 'hooks', setup, [
        ('on_register', test_register),
        ('on_promote', test_promote),
        ('a slow hook', test_slow),
    ], cleanup=(users.close,
                lambda: shutil.rmtree(src, ignore_errors=True)))


if __name__ == '__main__':
    sys.exit(main())
