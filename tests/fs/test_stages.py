"""Stages through the mount (SPEC §3, issue 3 item 5): ln -s, ln -sfn,
mv -T, rm; mv without -T fails and leaves both stages; EINVAL/ENOENT for
bad or missing targets, EEXIST for a no-replace rename onto a stage, EBUSY
when removing a staged version; a draft is sealed when a stage points at
it; a promotion through the mount is seen by the next open at once, one
made with the CLI within a second; a policy refusal is EACCES and audited;
racing promoters leave the history a chain.
"""
import ctypes
import errno
import json
import os
import shutil
import sys
import tempfile
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mountlib import Mount, Tap, pattern, run, seen_within  # noqa: E402

t = Tap()
conf_dir = tempfile.mkdtemp(prefix='mreg-conf-')
conf = os.path.join(conf_dir, 'mreg.conf')
with open(conf, 'w') as f:
    f.write('[stage Gated]\nrequire_stage = Staging\n')
m = Mount('stages', args=['-c', conf])
src = tempfile.mkdtemp(prefix='mreg-src-')
V = {}  # version -> bytes of model.bin

AT_FDCWD = -100
RENAME_NOREPLACE = 1
libc = ctypes.CDLL(None, use_errno=True)


def renameat2(old, new, flags):
    r = libc.renameat2(AT_FDCWD, os.fsencode(old), AT_FDCWD,
                       os.fsencode(new), ctypes.c_uint(flags))
    if r != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e), old)


def read(path):
    with open(path, 'rb') as f:
        return f.read()


def model(*p):
    return m.path('models', 'churn', *p)


def stages(*p):
    return model('stages', *p)


def setup():
    os.mkdir(model())
    for v in (1, 2, 3, 5):
        data = pattern(256 * 1024 + v, 1000 + v)
        p = os.path.join(src, 'model.bin')
        with open(p, 'wb') as f:
            f.write(data)
        if v == 5:
            os.mkdir(model('4'))  # a draft, made before 5
            V[4] = pattern(5000, 1004)
            with open(model('4', 'model.bin'), 'wb') as f:
                f.write(V[4])
        r = run(['cp', p, model() + '/'])
        assert r.returncode == 0, r.stderr
        V[v] = data
    assert sorted(os.listdir(model())) == ['1', '2', '3', '4', '5',
                                           'stages'], os.listdir(model())


def test_promote_commands():
    r = run(['ln', '-s', '../1', stages('Staging')])
    t.eq(r.returncode, 0, 'ln -s ../1 stages/Staging succeeds')
    t.eq(os.readlink(stages('Staging')), '../1', 'Staging -> ../1')
    t.ok(read(stages('Staging', 'model.bin')) == V[1],
         'stages/Staging/model.bin reads version 1')
    r = run(['ln', '-sfn', '../1', stages('Production')])
    t.eq(r.returncode, 0, 'ln -sfn creates a stage')
    r = run(['ln', '-sfn', '../2', stages('Production')])
    t.eq(r.returncode, 0, 'ln -sfn ../2 stages/Production succeeds')
    t.eq(os.readlink(stages('Production')), '../2',
         'ln -sfn replaced the target')
    t.ok(read(stages('Production', 'model.bin')) == V[2],
         'the next open after ln -sfn reads the new version at once')
    t.eq(sorted(os.listdir(stages())), ['Production', 'Staging'],
         'ln -sfn leaves no temporary stage behind')
    r = run(['mv', '-T', stages('Staging'), stages('Production')])
    t.eq(r.returncode, 0, 'mv -T stages/Staging stages/Production succeeds')
    t.eq((os.readlink(stages('Production')), os.path.lexists(
        stages('Staging'))), ('../1', False),
         'mv -T: Production takes Staging\'s target, Staging is gone')
    t.ok(read(stages('Production', 'model.bin')) == V[1],
         'the next open after mv -T reads the new version')
    # a stage pointed at a draft seals it first
    r = run(['ln', '-s', '../4', stages('Dev')])
    t.eq(r.returncode, 0, 'ln -s ../4 (a draft) succeeds')
    t.errno(errno.EROFS, 'the draft is sealed once a stage points at it',
            os.open, model('4', 'model.bin'), os.O_WRONLY)
    t.ok(read(stages('Dev', 'model.bin')) == V[4], 'and reads through Dev')
    # mv without -T moves *into* the version: fails, both stages stay
    os.symlink('../3', stages('Staging'))
    r = run(['mv', stages('Staging'), stages('Production')])
    t.ok(r.returncode != 0, 'mv without -T onto a stage fails')
    t.eq((os.readlink(stages('Staging')), os.readlink(stages('Production'))),
         ('../3', '../1'), 'and leaves both stages as they were')
    r = run(['rm', stages('Dev')])
    t.ok(r.returncode == 0 and not os.path.lexists(stages('Dev')),
         'rm stages/Dev removes the stage')
    t.ok(os.path.isdir(model('4')), 'the version stays')


def test_errnos():
    for target, what in (('/abs/1', 'an absolute target'),
                         ('../../other/1', 'another model'),
                         ('1', 'a target without ../'),
                         ('../1/../2', 'a .. trick'),
                         ('../1/', 'a trailing slash'),
                         ('../stages', 'the stages directory'),
                         # a looser prefix check than exactly "../" would
                         # find version 1 in these
                         ('..x1', 'no slash after ..'),
                         ('...1', 'three dots'),
                         ('.../1', 'three dots and a slash'),
                         ('..//1', 'a double slash'),
                         ('./../1', 'a leading ./'),
                         ('../../churn/1', 'the same model, the long way'),
                         ('../.1', 'a dot name')):
        t.errno(errno.EINVAL, 'stage -> %s: EINVAL (%s)' % (target, what),
                os.symlink, target, stages('X'))
    t.errno(errno.ENOENT, 'stage -> ../99 (no such version): ENOENT',
            os.symlink, '../99', stages('X'))
    t.errno(errno.EINVAL, 'a stage name with a blank: EINVAL',
            os.symlink, '../1', stages('bad name'))
    t.errno(errno.EINVAL, 'a 65-byte stage name: EINVAL',
            os.symlink, '../1', stages('S' * 65))
    t.errno(errno.EEXIST, 'symlink onto an existing stage: EEXIST',
            os.symlink, '../2', stages('Production'))
    t.errno(errno.EEXIST, 'renameat2 RENAME_NOREPLACE onto a stage: EEXIST',
            renameat2, stages('Staging'), stages('Production'),
            RENAME_NOREPLACE)
    t.eq((os.readlink(stages('Staging')), os.readlink(stages('Production'))),
         ('../3', '../1'), 'the refused renames changed nothing')
    t.errno(errno.EBUSY, 'rmdir of a version a stage points at: EBUSY',
            os.rmdir, model('1'))
    t.ok(os.path.isdir(model('1')), 'the staged version stays')
    t.errno(errno.EBUSY, 'rmdir of the version Staging points at: EBUSY',
            os.rmdir, model('3'))
    os.rmdir(model('2'))
    t.ok(not os.path.exists(model('2')),
         'rmdir of an unstaged sealed version removes it whole')
    os.mkdir(m.path('models', 'other'))
    t.errno(errno.EXDEV, 'a stage renamed into another model: EXDEV',
            os.rename, stages('Staging'),
            m.path('models', 'other', 'stages', 'Staging'))
    t.errno(errno.EPERM, 'a regular file in stages/: EPERM',
            os.open, stages('file'), os.O_CREAT | os.O_WRONLY, 0o644)
    t.errno(errno.EPERM, 'mkdir in stages/: EPERM', os.mkdir, stages('d'))


def test_cli_visibility():
    before = os.readlink(stages('Production'))
    def promoted():
        try:
            return read(stages('Production', 'model.bin')) == V[3]
        except OSError:
            return False

    r = m.mreg('promote', 'churn', '3', 'Production')
    t.eq(r.returncode, 0, 'mreg promote churn 3 Production succeeds')
    came, late = seen_within(promoted, 1.0)
    t.ok(came and late is None, 'a CLI promotion is seen through the mount '
         'within 1 s', 'came: %s; a read started %s s after saw the old '
         'version' % (came, late))
    r = m.mreg('rollback', 'churn', 'Production')
    t.eq(r.returncode, 0, 'mreg rollback churn Production succeeds')
    came, late = seen_within(
        lambda: os.readlink(stages('Production')) == before, 1.0)
    t.ok(came and late is None, 'the rollback is seen through the mount '
         'within 1 s', 'came: %s; a readlink started %s s after saw the '
         'old target' % (came, late))


def test_policy():
    t.errno(errno.EACCES, 'a promotion the policy refuses: EACCES',
            os.symlink, '../5', stages('Gated'))
    with open(m.path('.mreg', 'audit.log')) as f:
        recs = [json.loads(ln) for ln in f if ln.strip()]
    t.ok(any('refused' in json.dumps(r) and 'Gated' in json.dumps(r)
             for r in recs), 'the refusal is in the audit log')
    os.rename(stages('Staging'), stages('Old'))  # keep 3 staged
    os.symlink('../5', stages('Staging'))
    os.symlink('../5', stages('Gated'))
    t.eq(os.readlink(stages('Gated')), '../5',
         'once the version held Staging the policy lets it through')


def test_racing_promoters():
    errs = []
    bad = []

    def promoter(k):
        for i in range(25):
            tmp = stages('tmp%d' % k)
            try:
                os.symlink('../%d' % (1 if (i + k) % 2 else 3), tmp)
                os.rename(tmp, stages('Production'))
            except OSError as e:
                errs.append(e.errno)
                if e.errno not in (errno.EEXIST, errno.ENOENT,
                                   errno.EBUSY, errno.EAGAIN):
                    bad.append(e)
                try:
                    os.unlink(tmp)
                except OSError:
                    pass

    th = [threading.Thread(target=promoter, args=(k,)) for k in range(2)]
    for x in th:
        x.start()
    for x in th:
        x.join()
    t.ok(not bad, 'racing promoters get success or a clear errno',
         repr(bad[:3]))
    r = m.mreg('history', 'churn', 'Production', '--json')
    t.eq(r.returncode, 0, 'mreg history churn Production --json')
    try:
        h = json.loads(r.stdout)
    except ValueError:
        h = None
    t.ok(isinstance(h, list) and len(h) >= 10,
         'the history lists the promotions')
    if isinstance(h, list):
        broken = [(a, b) for a, b in zip(h, h[1:]) if b.get('from') !=
                  a.get('to')]
        t.ok(not broken, 'the history of Production is a chain',
             repr(broken[:2]))


def main():
    try:
        m.start()
        setup()
        t.run('promotion commands', test_promote_commands)
        t.run('errnos', test_errnos)
        t.run('CLI visibility', test_cli_visibility)
        t.run('policy', test_policy)
        t.run('racing promoters', test_racing_promoters)
        t.eq(m.stop(), 0, 'the daemon exits 0 on unmount')
    except Exception as e:
        t.ok(False, 'stages', '%s\n%s' % (e, m.log_tail()))
    finally:
        m.close()
        shutil.rmtree(src, ignore_errors=True)
        shutil.rmtree(conf_dir, ignore_errors=True)
    return t.done()


if __name__ == '__main__':
    sys.exit(main())
