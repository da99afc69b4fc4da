"""userlib.py — throw-away users and groups for the multi-user tests.

Users().group('prom') makes a group mregt_prom<N> (N: a number of this
process, so that two runs do not collide), Users().user('ds', 'team',
['prom']) a user with that primary group and those supplementary groups
(no home, no login shell). Everything made is removed by close(), which
runs at exit and on SIGTERM/SIGINT/SIGHUP through mountlib's clean-up (after
the mounts are gone), also when a test fails. A leftover of a killed
earlier run with the same name is removed first.

run_as(who, cmd) runs a command as one of them: supplementary groups,
gid, uid and umask set in the child before exec (preexec_fn).
"""
import os
import subprocess

import mountlib

PREFIX = 'mregt_'


def _quiet(cmd):
    return subprocess.run(cmd, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True)


class Who:
    """A throw-away user: name, uid, gid (primary), groups (all gids)."""

    def __init__(self, name, uid, gid, groups):
        self.name, self.uid, self.gid, self.groups = name, uid, gid, groups

    def preexec(self, umask=0o022):
        def become():
            os.setgroups(self.groups)
            os.setgid(self.gid)
            os.setuid(self.uid)
            os.umask(umask)
        return become


class Users:
    def __init__(self):
        self.tag = '%d' % (os.getpid() % 100000)
        self.users = []
        self.groups = []
        self.closed = False
        mountlib._live.append(self)   # cleaned up after the mounts

    def _name(self, short):
        return '%s%s%s' % (PREFIX, short, self.tag)

    def group(self, short):
        name = self._name(short)
        _quiet(['groupdel', name])
        r = _quiet(['groupadd', name])
        if r.returncode:
            raise RuntimeError('groupadd %s: %s' % (name, r.stderr))
        self.groups.append(name)
        return name

    def gid(self, group):
        import grp
        return grp.getgrnam(group).gr_gid

    def user(self, short, primary=None, groups=()):
        import pwd
        name = self._name(short)
        _quiet(['userdel', name])
        cmd = ['useradd', '-M', '-N', '-s', '/usr/sbin/nologin']
        cmd += ['-g', primary or 'nogroup']
        if groups:
            cmd += ['-G', ','.join(groups)]
        r = _quiet(cmd + [name])
        if r.returncode:
            raise RuntimeError('useradd %s: %s' % (name, r.stderr))
        self.users.append(name)
        pw = pwd.getpwnam(name)
        gids = sorted(set([pw.pw_gid] + [self.gid(g) for g in groups]))
        return Who(name, pw.pw_uid, pw.pw_gid, gids)

    def close(self):
        if self.closed:
            return
        self.closed = True
        for u in self.users:
            _quiet(['userdel', '-f', u])
        for g in self.groups:
            _quiet(['groupdel', g])
        if self in mountlib._live:
            mountlib._live.remove(self)


def run_as(who, cmd, umask=0o022, **kw):
    """subprocess.run of cmd as who, text output captured."""
    kw.setdefault('stdout', subprocess.PIPE)
    kw.setdefault('stderr', subprocess.PIPE)
    kw.setdefault('text', True)
    kw.setdefault('timeout', 120)
    return subprocess.run(cmd, preexec_fn=who.preexec(umask), **kw)


def main():
    """Run as a test: the fixture itself."""
    import grp
    import pwd
    import sys
    t = mountlib.Tap()
    u = Users()
    try:
        g = u.group('g')
        w = u.user('u', groups=[g])
        r = run_as(w, ['id', '-u'])
        t.eq(r.stdout.strip(), str(w.uid), 'a command runs as the new user')
        r = run_as(w, ['id', '-G'])
        t.ok(str(u.gid(g)) in r.stdout.split(),
             'with its supplementary group', r.stdout)
    finally:
        u.close()
    try:
        pwd.getpwnam(w.name)
        gone = False
    except KeyError:
        gone = True
    try:
        grp.getgrnam(g)
        gone = False
    except KeyError:
        pass
    t.ok(gone, 'the user and the group are removed afterwards')
    sys.exit(t.done())


if __name__ == '__main__':
    main()
