"""Stage policies and hooks live in the registry (SPEC §6, issue 11).

The daemon's first start on a registry that never had a policy imports the
config's [stage] and [hooks] sections and says so in its log; a later start
with a config that disagrees warns at start (each difference) and the
mount enforces the stored policy and runs the stored hooks, not the
config's; `mreg policy show` says the config disagrees. Only root, or a
member of the group root names with `mreg policy admins`, may change
policies: the CLI run by the store's owner (a throw-away user) is refused
(status 1, audited) until root names its group. The CLI on the store run
by a user outside a stage's stored promote_groups is refused that stage.
"""
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mountlib import MREG, Mount, Tap, run, run_suite  # noqa: E402
from userlib import Users, run_as  # noqa: E402

HOOK = '''#!/bin/sh
env | grep '^MREG_' | sort >"%s/$MREG_EVENT-$MREG_STAGE"
'''

t = Tap()
m = Mount('policy')
os.chmod(m.tmp, 0o755)   # the throw-away users reach their store in it
users = Users()
strict = os.path.join(m.tmp, 'strict.conf')
lax = os.path.join(m.tmp, 'lax.conf')
empty = os.path.join(m.tmp, 'empty.conf')
hook = os.path.join(m.tmp, 'hook.sh')
out = os.path.join(m.tmp, 'hook-out')
U = {}
G = {}


def wait_for(path, timeout=60):
    end = time.monotonic() + timeout
    while not os.path.exists(path) and time.monotonic() < end:
        time.sleep(0.02)
    return os.path.exists(path)


def audit():
    r = m.mreg('-c', empty, 'audit')
    return [json.loads(ln) for ln in r.stdout.splitlines() if ln.strip()]


def errno_of(fn, *args):
    try:
        fn(*args)
    except OSError as e:
        return e.errno
    return 0


def setup():
    with open(hook, 'w') as f:
        f.write(HOOK % out)
    os.chmod(hook, 0o755)
    os.mkdir(out)
    with open(strict, 'w') as f:
        f.write('[stage Production]\nrequire_stage = Staging\n'
                'require_metric = auc >= 0.9\n\n'
                '[hooks]\non_promote = %s\n' % hook)
    with open(lax, 'w') as f:
        f.write('[stage Production]\nrequire_metric = auc >= 0.1\n')
    open(empty, 'w').close()
    m.args = ['-c', strict]
    m.start()


# On S3 mreg reads the copy of a config that tests/s3wrap.sh makes (the
# S3 keys merged in): messages and the audit name that copy, and the
# checks of the name skip.
NAMED = 'messages and the audit name the copy of the config that ' \
    'tests/s3wrap.sh makes'


def test_first_start():
    what = 'the first start imports the config\'s policy and says so'
    if not t.on_s3(what, NAMED):
        t.ok(m.log_has("the registry had no stage policy or hook: imported "
                       "3 settings from config '%s'" % strict, 5), what,
             m.log_tail())
    r = m.mreg('-c', empty, 'policy', 'show', '--json')
    d = json.loads(r.stdout) if r.returncode == 0 else {}
    t.ok(d.get('stages') == {'Production': {
        'require_stage': 'Staging', 'require_metric': 'auc >= 0.9'}},
         'the stage policy is stored in the registry', r.stdout + r.stderr)
    t.eq(d.get('hooks'), {'on_promote': hook}, 'and the hook')
    recs = [x for x in audit() if x['op'] == 'policy.import']
    what = 'each imported setting is audited'
    if not t.on_s3(what, NAMED):
        t.ok(len(recs) == 3 and all(x['path'] == strict and x['uid'] == 0
                                    for x in recs),
             what, json.dumps(recs, indent=1))


def test_later_start():
    m.stop()
    at = os.path.getsize(m.log)
    m.args = ['-c', lax]
    m.start()
    what = 'a start with a config that disagrees warns, naming each ' \
        'difference'
    if not t.on_s3(what, NAMED):
        t.ok(m.log_has("config '%s': stage 'Production': require_metric "
                       "is 'auc >= 0.1' in the config, 'auc >= 0.9' in "
                       "the registry" % lax, 5), what, m.log_tail())
    what = 'and says the stored policy applies'
    if not t.on_s3(what, NAMED):
        t.ok(m.log_has("config '%s' disagrees with the policy stored in "
                       "the registry (3 differences): the stored policy "
                       "applies" % lax, 5), what)
    with open(m.log) as f:
        f.seek(at)
        t.ok('imported' not in f.read(), 'nothing is imported again')
    r = m.mreg('-c', empty, 'push', 'churn', hook, '--metric', 'auc=0.5')
    t.ok(r.returncode == 0, 'a version with auc 0.5', r.stderr)
    prod = m.path('models', 'churn', 'stages', 'Production')
    staging = m.path('models', 'churn', 'stages', 'Staging')
    t.eq(errno_of(os.symlink, '../1', staging), 0, 'Staging takes it')
    t.eq(errno_of(os.symlink, '../1', prod), 13,
         'the mount enforces the stored require_metric (0.9), not the '
         'config\'s (0.1): EACCES')
    t.ok(wait_for(os.path.join(out, 'promote-Staging')),
         'the stored on_promote hook ran (the config names none)')
    r = m.mreg('-c', lax, 'policy', 'show')
    what = 'mreg policy show says the config disagrees'
    if not t.on_s3(what, NAMED):
        t.ok("config '%s' disagrees" % lax in r.stdout and
             "require_metric is 'auc >= 0.1' in the config" in r.stdout,
             what, r.stdout)


def test_admins():
    G['adm'] = users.group('adm')
    G['prom'] = users.group('prom')
    U['own'] = users.user('own', groups=[G['adm']])
    home = os.path.join(m.tmp, 'own')
    os.mkdir(home)
    os.chown(home, U['own'].uid, U['own'].gid)
    store = os.path.join(home, 'store')

    def own(*args):
        return run_as(U['own'], [MREG, '-c', empty, '--store', store] +
                      list(args))

    def root(*args):
        return run([MREG, '-c', empty, '--store', store] + list(args))

    r = own('init')
    t.ok(r.returncode == 0, 'a user makes a store of its own', r.stderr)
    r = own('policy', 'set', 'Production', 'protect=true')
    t.ok(r.returncode == 1 and "may not change policies (root may)" in
         r.stderr, 'the store\'s owner, not root, may not change policies',
         r.stderr)
    r = root('audit')
    recs = [json.loads(ln) for ln in r.stdout.splitlines()]
    t.ok([x for x in recs if x['op'] == 'policy.set' and
          x['result'] == 'refused' and x['uid'] == U['own'].uid],
         'the refusal is audited', r.stdout)
    r = own('policy', 'admins', G['adm'])
    t.ok(r.returncode == 1 and 'may not name the policy administrators' in
         r.stderr, 'nor name the administrators', r.stderr)
    r = root('policy', 'admins', G['adm'])
    t.ok(r.returncode == 0, 'root names group %s' % G['adm'], r.stderr)
    r = own('policy', 'set', 'Production', 'promote_groups=%s' % G['prom'])
    t.ok(r.returncode == 0, 'a member of it may change policies', r.stderr)
    r = root('policy', 'show', '--json')
    d = json.loads(r.stdout) if r.returncode == 0 else {}
    t.eq(d.get('admin_group'), G['adm'], 'policy show names the group')
    src = os.path.join(home, 'f')
    with open(src, 'w') as f:
        f.write('x\n')
    os.chown(src, U['own'].uid, U['own'].gid)
    r = own('push', 'm', src)
    r2 = own('promote', 'm', '1', 'Production')
    t.ok(r.returncode == 0 and r2.returncode == 1 and
         "user '%s' may not change stage 'Production'" % U['own'].name in
         r2.stderr, 'mreg on the store enforces the stored promote_groups '
         'for a user outside them', r.stderr + r2.stderr)
    r = root('policy', 'admins', '--none')
    r2 = own('policy', 'unset', 'Production')
    t.ok(r.returncode == 0 and r2.returncode == 1,
         'without the group named, the user is refused again', r2.stderr)


def main():
    return run_suite(t, m, 'policies in the registry', setup, [
        ('the first start imports', test_first_start),
        ('a later start with another config', test_later_start),
        ('who may change policies', test_admins),
    ], cleanup=(users.close,))


if __name__ == '__main__':
    sys.exit(main())
