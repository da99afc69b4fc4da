"""What mregfs refuses at start-up (issue 11): hooks run as root, so a
config that names a hook program which is relative, missing, not
executable, writable by its group or by others, owned by another user, or
in a directory others may write to is refused naming the file, the line
and the reason; so is a config file that others may write to, and a stage
policy that names a user or a group the system does not know (instead of
ignoring it). Each refusal happens before anything is mounted, and mreg
refuses the same config. Names only: a uid never matches a name in a
policy, so "0" is an unknown user too. A config whose hook lies in a sticky
world-writable directory (/tmp) is accepted: others cannot replace a file
there that they do not own.
"""
import os
import shutil
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mountlib import MREG, Mount, Tap, mountinfo_has, run  # noqa: E402
from userlib import Users  # noqa: E402

t = Tap()
m = Mount('startup')
users = Users()
conf = os.path.join(m.tmp, 'mreg.conf')
HOOK = '#!/bin/sh\nexit 0\n'


def hook(name, mode=0o755, owner=None, where=None):
    d = where or m.tmp
    os.makedirs(d, exist_ok=True)
    p = os.path.join(d, name)
    with open(p, 'w') as f:
        f.write(HOOK)
    os.chmod(p, mode)
    if owner is not None:
        os.chown(p, owner, -1)
    return p


def write_conf(text, mode=0o644):
    with open(conf, 'w') as f:
        f.write(text)
    os.chmod(conf, mode)


# On S3 mregfs and mreg read the copy of conf that tests/s3wrap.sh makes
# (the S3 keys merged in): messages name that copy, and it has a mode of
# its own.
COPY = 'the message names the copy of the config that tests/s3wrap.sh ' \
    'makes, not the file'


def refused(what, want):
    """mregfs with conf must exit without mounting, and say want."""
    if any(conf in w for w in want) and t.on_s3(
            what + ': refused, naming ' + ', '.join(repr(w) for w in want),
            COPY):
        return
    m.args = ['-c', conf]
    open(m.log, 'w').close()   # this start's messages only
    try:
        m.start()
    except RuntimeError as e:
        msg = str(e)
        t.ok(not mountinfo_has(m.mnt) and all(w in msg for w in want),
             what + ': refused, naming ' + ', '.join(repr(w) for w in want),
             msg)
        return
    m.stop()
    t.ok(False, what + ': refused', 'mregfs mounted it')


def cli_refused(what, want):
    if any(conf in w for w in want) and t.on_s3(
            what + ': mreg refuses it too', COPY):
        return
    r = run([MREG, '-c', conf, '--store', m.store, 'ls'])
    t.ok(r.returncode != 0 and all(w in r.stderr for w in want),
         what + ': mreg refuses it too', r.stderr)


def hooks_conf(path):
    write_conf('[log]\nlevel = info\n[hooks]\non_promote = %s\n' % path)


def test_hooks():
    hooks_conf('hook.sh')
    refused('a relative hook path', [conf + ':4:', "'hook.sh'",
                                     'not an absolute path'])
    cli_refused('a relative hook path', ['not an absolute path'])
    missing = os.path.join(m.tmp, 'missing.sh')
    hooks_conf(missing)
    refused('a missing hook', [conf + ':4:', missing,
                               'No such file or directory'])
    hooks_conf(hook('plain.sh', 0o644))
    refused('a hook that is not executable', ['not executable'])
    p = hook('group.sh', 0o775)
    hooks_conf(p)
    refused('a group-writable hook', ["'%s' is writable by group" % p])
    p = hook('world.sh', 0o757)
    hooks_conf(p)
    refused('a world-writable hook', ["'%s' is writable by others" % p])
    cli_refused('a world-writable hook', ['writable by others'])
    p = hook('theirs.sh', 0o755, owner=65534)
    hooks_conf(p)
    refused('a hook owned by another user', ["'%s' is owned by uid 65534" %
                                             p])
    d = os.path.join(m.tmp, 'open')
    p = hook('in-open-dir.sh', where=d)
    os.chmod(d, 0o777)
    hooks_conf(p)
    refused('a hook in a world-writable directory',
            ["'%s' is writable by others" % d])
    os.chmod(d, 0o1777)
    m.args = ['-c', conf]
    m.start()
    t.ok(mountinfo_has(m.mnt), 'the same hook in a sticky directory is '
         'accepted (as one in /tmp)')
    t.eq(m.stop(), 0, 'and the daemon exits 0 on unmount')


def test_config_file():
    if t.on_s3('a group- or world-writable config: refused',
               'mregfs and mreg read the copy of the config that '
               'tests/s3wrap.sh makes, with a mode of its own'):
        return
    write_conf('[log]\nlevel = info\n', 0o664)
    refused('a group-writable config', [conf, 'writable by group'])
    cli_refused('a group-writable config', [conf, 'writable by group'])
    write_conf('[log]\nlevel = info\n', 0o646)
    refused('a world-writable config', [conf, 'writable by others'])


def test_names():
    g = users.group('known')
    write_conf('[stage Production]\npromote_users = root, '
               'mregt_nosuchuser\n')
    refused('an unknown user in promote_users',
            [conf + ':2:', "unknown user 'mregt_nosuchuser'"])
    cli_refused('an unknown user', ["unknown user 'mregt_nosuchuser'"])
    write_conf('[stage Staging]\npromote_users = root\n'
               'promote_groups = %s, mregt_nosuchgroup\n' % g)
    refused('an unknown group in promote_groups',
            [conf + ':3:', "unknown group 'mregt_nosuchgroup'"])
    write_conf('[stage Staging]\npromote_users = root, 0\n')
    refused('a uid instead of a name', ["unknown user '0'"])
    write_conf('[stage Staging]\npromote_users = root\n'
               'promote_groups = %s\n' % g)
    m.args = ['-c', conf]
    m.start()
    t.ok(mountinfo_has(m.mnt), 'known users and groups are accepted')
    t.eq(m.stop(), 0, 'and the daemon exits 0 on unmount')


def main():
    try:
        t.run('hook programs', test_hooks)
        t.run('the config file', test_config_file)
        t.run('users and groups', test_names)
    finally:
        m.close()
        users.close()
        shutil.rmtree(m.tmp, ignore_errors=True)
    return t.done()


if __name__ == '__main__':
    sys.exit(main())
