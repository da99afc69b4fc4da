"""Several users on one allow_other mount (issue 4, SPEC §3, §6, §7).

Throw-away users and groups (userlib.py, removed afterwards even when a
check fails): mregt_ds (primary group team, outside the promote group) and
mregt_rel (primary group nogroup; team and prom only as supplementary
groups). The config gives Staging to the group prom, and Production to prom
with require_stage = Staging, require_metric = auc >= 0.9, protect.

Checked: the owner, group and mode of /, models/ (1777), a model, its
versions, stages/ (0777) and .mreg/; the store cannot be opened by another
user; an outsider is refused Production with EACCES by ln -sfn, mv -T, rm,
mreg promote and mreg rollback (the mreg ones pointed at the mount), each
refusal audited with uid, stage, version and reason; a user admitted only
through a supplementary group succeeds by each route; require_stage,
protect and require_metric each refuse, then admit once satisfied; 200
rounds of two racers (one moving compliant versions through Staging to
Production, one trying to put non-compliant versions into Production by
every route) never put a non-compliant version into Production, and every
Production entry of the history follows a Staging entry of that version;
.mreg/audit.log cannot be written, truncated, renamed or removed; one byte
flipped in a stored audit record makes `mreg audit --verify` exit 3 naming
it, on the store and through the mount. The config's policies are stored
in the registry at the daemon's first start (issue 11). The owner of the
version protected Production serves (and of its model) cannot chmod them
(EACCES, audited) while root can; every change of mode and owner of a model
or version is audited with its old and new value. A stage without a policy
follows its model's permissions: a user whom Production's policy admits may
not make or remove one on a model it cannot write (ln -sfn's temporary
name still works for it, pointing at sealed versions only).
"""
import errno
import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mountlib import MREG, Mount, Tap, run, run_suite  # noqa: E402
from userlib import Users, run_as  # noqa: E402

ROUNDS = 200

t = Tap()
m = Mount('multiuser')
os.chmod(m.tmp, 0o755)  # other users must reach the mount point
users = Users()
conf = os.path.join(m.tmp, 'mreg.conf')
empty = os.path.join(m.tmp, 'empty.conf')
src = os.path.join(m.tmp, 'src')
U = {}       # 'ds', 'rel' -> userlib.Who
G = {}       # 'team', 'prom' -> group name


def model(*p):
    return m.path('models', 'churn', *p)


def stages(*p):
    return model('stages', *p)


def target():
    try:
        return os.readlink(stages('Production'))
    except OSError:
        return None


def mreg_as(who, *args):
    """mreg pointed at the mount, run as who."""
    return run_as(U[who], [MREG, '-c', empty, '--store', m.mnt] +
                  list(args))


def sh_as(who, *cmd):
    return run_as(U[who], list(cmd))


def audit():
    with open(m.path('.mreg', 'audit.log')) as f:
        return [json.loads(ln) for ln in f if ln.strip()]


def errno_as(who, code):
    """Runs python code as who; returns the errno name it raised, or
    'ok'."""
    prog = ('import errno, os, sys\n'
            'try:\n' + ''.join('    %s\n' % ln for ln in code.split('\n')) +
            'except OSError as e:\n'
            '    print(errno.errorcode[e.errno]); sys.exit(0)\n'
            'print("ok")\n')
    r = run_as(U[who], ['/usr/bin/python3', '-c', prog])
    return r.stdout.strip() or r.stderr.strip()


def setup():
    G['team'] = users.group('team')
    G['prom'] = users.group('prom')
    U['ds'] = users.user('ds', primary=G['team'])
    U['rel'] = users.user('rel', groups=[G['team'], G['prom']])
    with open(conf, 'w') as f:
        f.write('[stage Staging]\npromote_groups = %s\n\n'
                '[stage Production]\npromote_groups = %s\n'
                'require_stage = Staging\nrequire_metric = auc >= 0.9\n'
                'protect = true\n' % (G['prom'], G['prom']))
    open(empty, 'w').close()
    os.chmod(conf, 0o644)
    os.chmod(empty, 0o644)
    os.mkdir(src)
    os.chmod(src, 0o755)
    m.args = ['-c', conf, '-o', 'allow_other']
    m.start()
    # ds makes the model (group team, mode 0775: its umask is 002) and
    # pushes versions through the mount; auc per version:
    #   1 2 3 .95-.97 (compliant), 4 .5 (fixed later), 5 none, 6 .95
    #   (never staged), 7 .5
    r = run_as(U['ds'], ['mkdir', model()], umask=0o002)
    assert r.returncode == 0, r.stderr
    auc = {1: '0.95', 2: '0.96', 3: '0.97', 4: '0.5', 5: None, 6: '0.95',
           7: '0.5'}
    for v in range(1, 8):
        p = os.path.join(src, 'model-%d.bin' % v)
        with open(p, 'wb') as f:
            f.write(os.urandom(5000 + v))
        os.chmod(p, 0o644)
        args = ['push', 'churn', p]
        if auc[v]:
            args += ['--metric', 'auc=' + auc[v]]
        r = run_as(U['ds'], [MREG, '-c', empty, '--store', m.mnt] + args,
                   umask=0o002)
        assert r.returncode == 0 and r.stdout.strip() == str(v), \
            (v, r.stdout, r.stderr)
    # rel, admitted only through its supplementary group prom
    for cmd in (['ln', '-s', '../1', stages('Staging')],
                ['ln', '-s', '../1', stages('Production')],
                ['ln', '-sfn', '../2', stages('Staging')],
                ['ln', '-sfn', '../2', stages('Production')],
                ['ln', '-sfn', '../3', stages('Staging')]):
        r = sh_as('rel', *cmd)
        assert r.returncode == 0, (cmd, r.stderr)


def test_modes():
    def mode(p):
        st = os.lstat(p)
        return (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode))

    team = users.gid(G['team'])
    t.eq(mode(m.mnt)[2], 0o755, '/ is 0755')
    t.eq(mode(m.path('models'))[2], 0o1777,
         'models/ is 1777: anyone may make a model, none remove another\'s')
    t.eq(mode(m.path('.mreg'))[2], 0o555, '.mreg/ is 0555')
    t.eq(mode(m.path('.mreg', 'audit.log'))[2], 0o444,
         '.mreg/audit.log is 0444')
    t.eq(mode(model()), (U['ds'].uid, team, 0o775),
         'a model: its maker\'s uid and gid, its umask applied')
    t.eq(mode(stages())[2], 0o777, 'stages/ is 0777: the registry decides')
    t.eq(mode(model('1')), (U['ds'].uid, team, 0o555),
         'a sealed version: its maker\'s, no write bits')
    t.eq(mode(model('1', 'model-1.bin')), (U['ds'].uid, team, 0o444),
         'a file of it: its maker\'s, no write bits')
    t.eq(mode(stages('Production'))[0], U['rel'].uid,
         'a stage belongs to whoever set it last')
    t.eq(errno_as('rel', 'os.mkdir(%r)' % m.path('models', 'relmodel')),
         'ok', 'another user makes a model in models/')
    t.eq(errno_as('ds', 'os.rmdir(%r)' % m.path('models', 'relmodel')),
         'EPERM', 'the sticky bit keeps others from removing it')
    t.eq(errno_as('rel', 'os.rmdir(%r)' % m.path('models', 'relmodel')),
         'ok', 'its owner removes it')


def test_store_private():
    bad = []
    for d, dirs, files in os.walk(m.store):
        for n in dirs + files:
            p = os.path.join(d, n)
            if os.lstat(p).st_mode & 0o077:
                bad.append(p)
    t.eq(stat.S_IMODE(os.stat(m.store).st_mode), 0o700,
         'the store directory is 0700')
    t.ok(not bad, 'nothing in the store is open to group or others',
         repr(bad[:3]))
    idx = os.path.join(m.store, 'index', 'data.mdb')
    t.eq(errno_as('ds', 'open(%r, "rb")' % idx), 'EACCES',
         'another user cannot open the store\'s files')
    t.eq(errno_as('ds', 'os.listdir(%r)' % m.store), 'EACCES',
         'nor list the store')
    r = run_as(U['ds'], [MREG, '-c', empty, '--store', m.store, 'ls'])
    t.ok(r.returncode == 1 and 'give --store the mount point' in r.stderr,
         'mreg on the store itself says to use the mount', r.stderr)


def test_outsider():
    before = target()
    start = len(audit())
    r = sh_as('ds', 'ln', '-sfn', '../3', stages('Production'))
    t.ok(r.returncode == 1 and 'Permission denied' in r.stderr,
         'outsider: ln -sfn to Production fails with EACCES', r.stderr)
    r = sh_as('ds', 'mv', '-T', stages('Staging'), stages('Production'))
    t.ok(r.returncode == 1 and 'Permission denied' in r.stderr,
         'outsider: mv -T Staging Production fails with EACCES', r.stderr)
    t.eq(os.readlink(stages('Staging')), '../3',
         'and Staging is left as it was')
    t.eq(errno_as('ds', 'os.unlink(%r)' % stages('Production')), 'EACCES',
         'outsider: rm stages/Production fails with EACCES')
    r = mreg_as('ds', 'promote', 'churn', '3', 'Production')
    t.ok(r.returncode == 1 and "refused by policy: user '%s' may not "
         "change stage 'Production'" % U['ds'].name in r.stderr,
         'outsider: mreg promote (through the mount) is refused, saying '
         'why', r.stderr)
    r = mreg_as('ds', 'rollback', 'churn', 'Production')
    t.ok(r.returncode == 1 and 'refused' in r.stderr and
         "may not change stage 'Production'" in r.stderr,
         'outsider: mreg rollback (through the mount) is refused', r.stderr)
    t.eq(target(), before, 'Production did not move')
    recs = [x for x in audit()[start:] if x.get('result') == 'refused' and
            x.get('uid') == U['ds'].uid and x.get('stage') == 'Production']
    t.ok(len(recs) >= 5, 'each refusal is audited with the outsider\'s uid',
         json.dumps(recs, indent=1))
    t.ok(recs and all(x.get('version') and x.get('reason') for x in recs),
         'with the stage, the version and the reason',
         json.dumps(recs, indent=1))
    t.eq(errno_as('ds', 'os.unlink(%r)' % stages('Staging')), 'EACCES',
         'outsider: removing Staging (group policy) is EACCES')


def test_supplementary():
    rel = U['rel']
    t.ok(rel.gid != users.gid(G['prom']),
         'rel is in the promote group only as a supplementary group')
    r = mreg_as('rel', 'promote', 'churn', '3', 'Production')
    t.ok(r.returncode == 0 and target() == '../3',
         'admitted: mreg promote through the mount', r.stderr)
    r = mreg_as('rel', 'rollback', 'churn', 'Production')
    t.ok(r.returncode == 0 and r.stdout.strip() == '2' and
         target() == '../2', 'admitted: mreg rollback through the mount',
         r.stdout + r.stderr)
    r = sh_as('rel', 'mv', '-T', stages('Staging'), stages('Production'))
    t.ok(r.returncode == 0 and target() == '../3' and
         not os.path.lexists(stages('Staging')),
         'admitted: mv -T Staging Production', r.stderr)
    r = sh_as('rel', 'ln', '-sfn', '../2', stages('Production'))
    t.ok(r.returncode == 0 and target() == '../2', 'admitted: ln -sfn',
         r.stderr)
    r = sh_as('rel', 'ln', '-s', '../3', stages('Staging'))
    t.ok(r.returncode == 0, 'admitted: ln -s to Staging', r.stderr)


def last_refusal(stage):
    recs = [x for x in audit() if x.get('result') == 'refused' and
            x.get('stage') == stage]
    return recs[-1] if recs else {}


def test_gates():
    # require_stage
    t.eq(errno_as('rel', 'os.symlink("../6", %r)' % stages('x6')), 'ok',
         'a temporary stage name for 6')
    t.eq(errno_as('rel', 'os.rename(%r, %r)' % (stages('x6'),
                                                stages('Production'))),
         'EACCES', 'require_stage: 6 never held Staging: refused')
    t.ok("has not been in stage 'Staging'" in
         last_refusal('Production').get('reason', ''),
         'the audit record says so', repr(last_refusal('Production')))
    sh_as('rel', 'rm', '-f', stages('x6'))
    r = sh_as('rel', 'ln', '-sfn', '../6', stages('Staging'))
    r2 = sh_as('rel', 'ln', '-sfn', '../6', stages('Production'))
    t.ok(r.returncode == 0 and r2.returncode == 0 and target() == '../6',
         'require_stage: once 6 held Staging it is admitted',
         r.stderr + r2.stderr)
    # require_metric: 4 has auc 0.5, 5 has none
    sh_as('rel', 'ln', '-sfn', '../4', stages('Staging'))
    r = sh_as('rel', 'ln', '-sfn', '../4', stages('Production'))
    t.ok(r.returncode == 1 and target() == '../6',
         'require_metric: auc 0.5 is refused', r.stderr)
    t.ok('metric auc = 0.5' in last_refusal('Production').get('reason', ''),
         'the audit record says which metric failed',
         repr(last_refusal('Production')))
    sh_as('rel', 'ln', '-sfn', '../5', stages('Staging'))
    r = mreg_as('rel', 'promote', 'churn', '5', 'Production')
    t.ok(r.returncode == 1 and "has no metric 'auc'" in r.stderr,
         'require_metric: a missing metric is refused, and mreg says so',
         r.stderr)
    # Sealed versions show no write bits: through a default_permissions
    # mount only root sets their metrics (README "Ownership and modes").
    r = mreg_as('ds', 'meta', 'churn/4', 'set', 'metric.auc', '0.93')
    t.ok(r.returncode == 1 and 'permission denied' in r.stderr,
         'a user cannot set a sealed version\'s metric through the mount: '
         'the kernel refuses on its mode bits', r.stderr)
    os.setxattr(model('4'), 'user.mreg.metric.auc', b'0.93')
    r = sh_as('rel', 'ln', '-sfn', '../4', stages('Staging'))
    r2 = sh_as('rel', 'ln', '-sfn', '../4', stages('Production'))
    t.ok(r2.returncode == 0 and target() == '../4',
         'require_metric: admitted once auc is 0.93', r.stderr + r2.stderr)
    # protect
    t.eq(errno_as('rel', 'os.unlink(%r)' % stages('Production')), 'EACCES',
         'protect: even an admitted user cannot remove Production')
    t.ok('protected' in last_refusal('Production').get('reason', ''),
         'the audit record says it is protected')
    r = mreg_as('rel', 'rm', 'churn', '--stage', 'Production')
    t.ok(r.returncode == 1 and 'protected' in r.stderr,
         'protect: mreg rm --stage is refused too', r.stderr)
    r = sh_as('rel', 'ln', '-sfn', '../3', stages('Production'))
    t.ok(r.returncode == 0 and target() == '../3',
         'protect: Production can still be replaced', r.stderr)
    t.eq(errno_as('rel', 'os.unlink(%r)' % stages('Staging')), 'ok',
         'an unprotected stage can be removed by an admitted user')


def stage_targets(mdir):
    d = os.path.join(mdir, 'stages')
    return {os.readlink(os.path.join(d, n))[3:] for n in os.listdir(d)}


def mode_of(p):
    return stat.S_IMODE(os.stat(p).st_mode)


def test_protected_modes():
    v = target()[3:]
    free = [x for x in map(str, range(1, 8)) if x not in
            stage_targets(model())][0]
    start = len(audit())
    t.eq(errno_as('ds', 'os.chmod(%r, 0o500)' % model(v)), 'EACCES',
         'the owner of version %s cannot chmod 0500 it while protected '
         'Production points at it' % v)
    t.eq(errno_as('ds', 'os.chmod(%r, 0o700)' % model()), 'EACCES',
         'nor chmod 0700 the model')
    t.eq((mode_of(model(v)), mode_of(model())), (0o555, 0o775),
         'both modes are as they were')
    t.eq(errno_as('rel', 'open(%r, "rb").read()' %
                  stages('Production', 'model-%s.bin' % v)), 'ok',
         'and other users still read what Production serves')
    recs = [x for x in audit()[start:] if x.get('op') == 'chmod']
    t.ok(len(recs) == 2 and all(
        x.get('result') == 'refused' and x.get('uid') == U['ds'].uid and
        'protected stage \'Production\'' in x.get('reason', '')
        for x in recs) and recs[0].get('version') == v and
        'version' not in recs[1], 'each refusal is audited, with the '
        'version (or the model) and the reason', json.dumps(recs, indent=1))
    start = len(audit())
    t.eq(errno_as('ds', 'os.chmod(%r, 0o500)' % model(free)), 'ok',
         'the owner may chmod a version no protected stage serves (%s)'
         % free)
    os.chmod(model(v), 0o500)
    os.chown(model(v), 0, 0)
    recs = [x for x in audit()[start:] if x.get('op') in ('chmod',
                                                          'chown')]
    want = [('chmod', U['ds'].uid, free, 'mode', '0555', '0500'),
            ('chmod', 0, v, 'mode', '0555', '0500'),
            ('chown', 0, v, 'owner', '%d:%d' % (U['ds'].uid,
                                               users.gid(G['team'])),
             '0:0')]
    t.eq([(x['op'], x['uid'], x.get('version'), x.get('key'),
           x.get('old'), x.get('new')) for x in recs], want,
         'changes of mode and owner are audited with the old and new '
         'value (root may change what Production serves)')
    os.chown(model(v), U['ds'].uid, users.gid(G['team']))
    os.chmod(model(v), 0o555)
    os.chmod(model(free), 0o555)
    t.eq(mode_of(model(v)), 0o555, 'root puts it back')


def test_no_policy_stage():
    solo = m.path('models', 'solo')
    r = run_as(U['ds'], ['mkdir', solo], umask=0o022)
    p = os.path.join(src, 'model-1.bin')
    r2 = mreg_as('ds', 'push', 'solo', p)
    t.ok(r.returncode == 0 and r2.returncode == 0 and
         mode_of(solo) == 0o755, 'ds makes model solo (0755): rel, in its '
         'group, cannot write it', r.stderr + r2.stderr)
    canary = os.path.join(solo, 'stages', 'Canary')
    start = len(audit())
    t.eq(errno_as('rel', 'os.symlink("../1", %r)' % canary), 'EACCES',
         'rel, whom Production\'s policy admits, may not make a stage '
         'without a policy on a model it cannot write')
    recs = [x for x in audit()[start:] if x.get('result') == 'refused']
    t.ok(recs and "may not write to model 'solo' (no policy for stage "
         "'Canary')" in recs[-1].get('reason', ''), 'the refusal says why',
         json.dumps(recs, indent=1))
    t.eq(errno_as('ds', 'os.symlink("../1", %r)' % canary), 'ok',
         'the model\'s owner may')
    t.eq(errno_as('rel', 'os.unlink(%r)' % canary), 'EACCES',
         'and rel may not remove it')
    t.eq(errno_as('rel', 'os.rename(%r, %r)' % (
        canary, os.path.join(solo, 'stages', 'Other'))), 'EACCES',
         'nor rename it')
    staging = os.path.join(solo, 'stages', 'Staging')
    t.eq(errno_as('rel', 'os.symlink("../1", %r)' % staging), 'ok',
         'a stage whose policy admits rel: allowed on any model')
    r = sh_as('rel', 'ln', '-sfn', '../1', staging)
    t.ok(r.returncode == 0 and not [n for n in os.listdir(
        os.path.join(solo, 'stages')) if n.startswith('Cu')],
         'ln -sfn onto it, through its temporary name, too', r.stderr)
    r = run_as(U['ds'], ['mkdir', os.path.join(solo, '2')])
    tmp = os.path.join(solo, 'stages', 'CuAb12Cd')
    t.eq(errno_as('rel', 'os.symlink("../2", %r)' % tmp), 'EACCES',
         'a temporary name may not point at a draft of the model (sealing '
         'it)')
    t.ok(mode_of(os.path.join(solo, '2')) & 0o200,
         'the draft is still a draft')
    t.eq(errno_as('rel', 'os.symlink("../1", %r)' % tmp), 'ok',
         'a temporary name for a sealed version is made')
    t.eq(errno_as('rel', 'os.unlink(%r)' % tmp), 'ok',
         'and removed by its maker')
    t.eq(errno_as('ds', 'os.unlink(%r)' % canary), 'ok',
         'the owner removes Canary')


RACER_A = r'''
import errno, os, subprocess, sys
stages, goods, rounds = sys.argv[1], sys.argv[2].split(','), int(sys.argv[3])
ok = bad = 0
for i in range(rounds):
    g = goods[i % len(goods)]
    try:
        if i % 4 == 0:
            subprocess.run(['ln', '-sfn', '../' + g, stages + '/Staging'],
                           check=True, stderr=subprocess.DEVNULL)
        else:
            tmp = stages + '/a%d' % os.getpid()
            os.symlink('../' + g, tmp)
            os.rename(tmp, stages + '/Staging')
        if i % 2 == 0:
            os.rename(stages + '/Staging', stages + '/Production')
        else:
            tmp = stages + '/p%d' % os.getpid()
            os.symlink('../' + g, tmp)
            os.rename(tmp, stages + '/Production')
        ok += 1
    except (OSError, subprocess.CalledProcessError) as e:
        # the other racer replaced Staging or Production meanwhile
        if getattr(e, 'errno', errno.EACCES) not in (errno.EACCES,
                                                     errno.ENOENT):
            bad += 1
            print('racer A:', e)
        for n in ('a', 'p'):
            try:
                os.unlink(stages + '/%s%d' % (n, os.getpid()))
            except OSError:
                pass
print('ok', ok, 'bad', bad)
'''

RACER_B = r'''
import os, subprocess, sys
stages, bads, rounds = sys.argv[1], sys.argv[2].split(','), int(sys.argv[3])
mreg = sys.argv[4:]
wins = []
def run(*cmd):
    return subprocess.run(list(cmd), stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL).returncode
for i in range(rounds):
    b = bads[i % len(bads)]
    route = i % 6
    if route == 0:
        rc = run('ln', '-sfn', '../' + b, stages + '/Production')
    elif route == 1:
        run('ln', '-sfn', '../' + b, stages + '/TmpB')
        rc = run('mv', '-T', stages + '/TmpB', stages + '/Production')
        run('rm', '-f', stages + '/TmpB')
    elif route == 2:
        rc = run(*(mreg + ['promote', 'churn', b, 'Production']))
    elif route == 3:
        # Staging may hold racer A's version again by the time mv runs:
        # success proves nothing here (the history check does)
        run('ln', '-sfn', '../' + b, stages + '/Staging')
        run('mv', '-T', stages + '/Staging', stages + '/Production')
        rc = 1
    elif route == 4:
        # back to an earlier (compliant) target: allowed
        run(*(mreg + ['rollback', 'churn', 'Production']))
        rc = 1
    else:
        rc = run('rm', stages + '/Production')
    if rc == 0:
        wins.append((i, route))
print('wins', wins)
'''


def test_race():
    seen = set()
    done = threading.Event()

    def watch():
        while not done.is_set():
            v = target()
            if v:
                seen.add(v)
            time.sleep(0.002)

    w = threading.Thread(target=watch)
    w.start()
    mreg = [MREG, '-c', empty, '--store', m.mnt]
    a = subprocess.Popen(['/usr/bin/python3', '-c', RACER_A, stages(),
                          '1,2,3', str(ROUNDS)], stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True,
                         preexec_fn=U['rel'].preexec())
    b = subprocess.Popen(['/usr/bin/python3', '-c', RACER_B, stages(),
                          '5,7', str(ROUNDS)] + mreg,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         text=True, preexec_fn=U['rel'].preexec())
    try:
        out_a, _ = a.communicate(timeout=120)
        out_b, _ = b.communicate(timeout=120)
    finally:
        done.set()
        w.join()
        for p in (a, b):
            if p.poll() is None:
                p.kill()
                p.wait()
    t.ok(out_a.strip().endswith('bad 0'), 'racer A gets success or EACCES '
         '/ ENOENT from the other racer\'s moves', out_a[-500:])
    ok_a = int(out_a.split()[-3]) if 'ok' in out_a else 0
    t.ok(ok_a >= ROUNDS // 4, 'racer A moved versions to Production '
         '(%d of %d rounds)' % (ok_a, ROUNDS), out_a[-300:])
    t.eq(out_b.strip(), 'wins []', 'racer B never succeeded by a route '
         'that names its version (ln -sfn, mv -T of its own stage, mreg '
         'promote, rm)')
    t.ok(not seen & {'../5', '../7'},
         'a watcher never saw a non-compliant version in Production',
         repr(seen))
    r = m.mreg('-c', empty, 'history', 'churn', '--json')
    h = json.loads(r.stdout) if r.returncode == 0 else []
    prod = [(i, x) for i, x in enumerate(h) if x['stage'] == 'Production' and
            x['to']]
    t.ok(len(prod) >= ok_a, 'the history has every promotion (%d)' %
         len(prod), r.stderr)
    t.ok(not [x for _, x in prod if x['to'] in ('5', '7')],
         'no non-compliant version in the Production history')
    orphans = []
    for i, x in prod:
        if not any(y['stage'] == 'Staging' and y['to'] == x['to']
                   for y in h[:i]):
            orphans.append(x)
    t.ok(not orphans, 'every Production entry follows a Staging entry of '
         'its version', repr(orphans[:3]))


def test_audit_log_readonly():
    log = m.path('.mreg', 'audit.log')
    for who in ('ds', 'root'):
        if who == 'root':
            def e(code):
                try:
                    exec(code)
                except OSError as ex:
                    return errno.errorcode[ex.errno]
                return 'ok'
        else:
            def e(code):
                return errno_as('ds', code)
        t.eq(e('open(%r, "a")' % log), 'EACCES',
             '%s: audit.log cannot be opened for writing' % who)
        t.eq(e('open(%r, "r+")' % log), 'EACCES',
             '%s: nor for reading and writing' % who)
        t.eq(e('os.truncate(%r, 0)' % log), 'EACCES',
             '%s: nor truncated' % who)
        t.eq(e('os.rename(%r, %r)' % (log, log + '.x')),
             'EPERM' if who == 'root' else 'EACCES',
             '%s: nor renamed' % who)
        t.eq(e('os.unlink(%r)' % log),
             'EPERM' if who == 'root' else 'EACCES',
             '%s: nor removed' % who)
    t.ok(len(audit()) > 10, 'and it is still there, whole')


def record_text(seq):
    """The exact text of audit record seq (a line of .mreg/audit.log)."""
    with open(m.path('.mreg', 'audit.log'), 'rb') as f:
        lines = f.read().splitlines()
    return [ln for ln in lines if json.loads(ln)['seq'] == seq][0]


def flip_stored(text):
    """With the daemon stopped: flips one byte (the first letter of the
    "op" value, to upper case) of every copy of text in the store's LMDB
    file (freed pages may still hold old copies). The number of copies."""
    db = os.path.join(m.store, 'index', 'data.mdb')
    i = text.index(b'"op":"') + 6
    with open(db, 'r+b') as f:
        data = f.read()
        at = []
        pos = data.find(text)
        while pos >= 0:
            at.append(pos)
            pos = data.find(text, pos + 1)
        for pos in at:
            f.seek(pos + i)
            f.write(bytes([text[i] ^ 0x20]))
    return len(at)


def test_tamper():
    if t.on_pg('an edited audit record is found', 'the check edits the '
               'LMDB environment by hand (cli/verify.sh edits the '
               'PostgreSQL row)'):
        return
    recs = audit()
    mid = [x for x in recs if x.get('result') == 'refused' and
           x.get('uid') == U['ds'].uid][0]
    seq = mid['seq']
    t.ok(seq < recs[-1]['seq'], 'a record in the middle of the trail: %d'
         % seq)
    text = record_text(seq)
    m.stop()
    r = m.mreg('-c', empty, 'audit', '--verify')
    t.ok(r.returncode == 0 and r.stdout.startswith('intact: '),
         'mreg audit --verify: the untouched trail is intact',
         r.stdout + r.stderr)
    n = flip_stored(text)
    t.ok(n > 0, 'one byte of the record flipped in index/data.mdb (%d '
         'copies of its text)' % n)
    r = m.mreg('-c', empty, 'audit', '--verify')
    t.eq(r.returncode, 3, 'audit --verify on the store exits 3')
    t.ok('record %d is the first bad one' % seq in r.stderr and
         'record %d was changed' % seq in r.stdout,
         'and names the edited record', r.stdout + r.stderr)
    r = m.mreg('-c', empty, 'audit', '--verify', '--json')
    try:
        d = json.loads(r.stdout)
    except ValueError:
        d = {}
    t.ok(d.get('intact') is False and d.get('first_bad') == seq,
         'audit --verify --json: intact false, first_bad %d' % seq,
         r.stdout)
    m.start()
    r = mreg_as('ds', 'audit', '--verify')
    t.ok(r.returncode == 3 and 'record %d is the first bad one' % seq in
         r.stderr, 'through the mount, as another user, too',
         r.stdout + r.stderr)


def main():
    return run_suite(t, m, 'multi-user', setup, [
        ('modes and owners', test_modes),
        ('the store is private', test_store_private),
        ('an outsider, by every route', test_outsider),
        ('a supplementary group admits', test_supplementary),
        ('validation gates', test_gates),
        ('mode and owner of what a protected stage serves',
         test_protected_modes),
        ('a stage without a policy follows the model', test_no_policy_stage),
        ('racers', test_race),
        ('audit.log is read-only', test_audit_log_readonly),
        ('an edited audit record', test_tamper),
    ], cleanup=(users.close,
                lambda: shutil.rmtree(src, ignore_errors=True)))


if __name__ == '__main__':
    sys.exit(main())
