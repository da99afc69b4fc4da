"""One user must not take service from the others (issue 11): hooks, with
two throw-away users on an allow_other mount.

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
"""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mountlib import Mount, Tap, run_suite  # noqa: E402
from userlib import Users, run_as  # noqa: E402

NFLOOD = 2000

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

t = Tap()
m = Mount('fair')
os.chmod(m.tmp, 0o755)
users = Users()
out = os.path.join(m.tmp, 'out')
conf = os.path.join(m.tmp, 'mreg.conf')
U = {}


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


def write_conf():
    hook = os.path.join(m.tmp, 'hook.sh')
    with open(conf, 'w') as f:
        f.write('[store]\ndurability = none\n'
                '[hooks]\non_register = %s\non_promote = %s\n'
                'timeout = 120\n' % (hook, hook))
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
    write_conf()
    m.args = ['-c', conf, '-o', 'allow_other']
    m.start()
    for who, model in (('dep', 'deploy'), ('flood', 'flood')):
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


def main():
    return run_suite(t, m, 'fair', setup, [
        ('hooks: promotions and other users first', test_hooks),
    ], cleanup=(users.close,))


if __name__ == '__main__':
    sys.exit(main())
