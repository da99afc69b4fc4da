"""Running mregfs (SPEC §7, issue 3 item 8): the command line, a bad config
refused with FILE:LINE: reason and exit 1, the store from --store, from the
first argument and from $MREG_STORE, SIGTERM unmounts, mount -t
fuse.mregfs (the /etc/fstab way) and tools/mount.fuse.mregfs, both of which
detach; each detached daemon is found by its pid and stopped.
"""
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mountlib import (FUSERMOUNT, MREG, MREGFS, TOP, Mount, Tap,  # noqa: E402
                      mountinfo_has, run, running, wait_exited)

t = Tap()
tmp = tempfile.mkdtemp(prefix='mreg-run-')
daemons = []   # pids of detached daemons, stopped in any case


def daemon_pids(mnt):
    """Pids of mregfs processes serving mnt (by their command line)."""
    pids = []
    for p in os.listdir('/proc'):
        if not p.isdigit():
            continue
        try:
            with open('/proc/%s/cmdline' % p, 'rb') as f:
                argv = f.read().split(b'\0')
        except OSError:
            continue
        if argv and os.path.basename(argv[0]) == b'mregfs' and \
                os.fsencode(mnt) in argv:
            pids.append(int(p))
    return pids


def stop_detached(mnt):
    """Unmounts mnt and waits for its daemons to exit (killing them after
    60 s: a loaded machine is slow, one that hangs is not). True when they
    exited by themselves."""
    pids = daemon_pids(mnt)
    daemons.extend(pids)
    for _ in range(50):
        if not mountinfo_has(mnt):
            break
        subprocess.run([FUSERMOUNT, '-u', mnt], stderr=subprocess.DEVNULL)
        time.sleep(0.1)
    clean = wait_exited(pids, 60)
    for p in pids:
        if running(p):
            os.kill(p, signal.SIGKILL)
    return clean and bool(pids)


def teardown():
    for p in daemons:
        if running(p):
            os.kill(p, signal.SIGKILL)
    for d in os.listdir(tmp):
        mp = os.path.join(tmp, d)
        if mountinfo_has(mp):
            subprocess.run([FUSERMOUNT, '-u', '-z', mp],
                           stderr=subprocess.DEVNULL)
    shutil.rmtree(tmp, ignore_errors=True)


def mnt_dir(name):
    p = os.path.join(tmp, name)
    os.makedirs(p, exist_ok=True)
    return p


def test_cmdline():
    r = run([MREGFS, '--help'])
    t.ok(r.returncode == 0 and 'usage: mregfs' in r.stdout,
         'mregfs --help prints the usage and exits 0')
    r = run([MREGFS])
    t.ok(r.returncode == 1 and 'mount point' in r.stderr,
         'mregfs without a mount point exits 1 and says why')
    r = run([MREGFS, '--bogus', mnt_dir('x')])
    t.eq(r.returncode, 1, 'an unknown option exits 1')
    conf = os.path.join(tmp, 'bad.conf')
    with open(conf, 'w') as f:
        f.write('[store]\npack_size = 64M\nno_such_key = 1\n')
    r = run([MREGFS, '-f', '-c', conf, '--store', os.path.join(tmp, 's0'),
             mnt_dir('bad')], timeout=20)
    first = r.stderr.strip().splitlines()[:1]
    t.eq(r.returncode, 1, 'a bad config is refused with exit status 1')
    what = 'and the message is FILE:LINE: reason'
    if not t.on_s3(what, 'mregfs reads the copy of the config that '
                   'tests/s3wrap.sh makes, which the message names'):
        t.ok(first and first[0].startswith(conf + ':3: '), what, r.stderr)
    t.ok(not mountinfo_has(mnt_dir('bad')), 'and nothing is mounted')
    r = run([MREGFS, '-f', '-c', os.path.join(tmp, 'missing.conf'),
             mnt_dir('bad')], timeout=20)
    t.ok(r.returncode == 1 and 'missing.conf' in r.stderr,
         'a missing -c file is refused with exit status 1')


def init(store):
    """mreg init: a store named to mregfs must exist (it makes only its
    default one)."""
    run([MREG, '--store', store, 'init'], check=True)


def test_store_choice():
    m = Mount('pos', tmp=os.path.join(tmp, 'pos'))
    try:
        # the fstab form: mregfs STORE MOUNTPOINT (here in the foreground)
        store = os.path.join(tmp, 'pos-store')
        r = run([MREGFS, '-f', store, m.mnt], timeout=20)
        t.ok(r.returncode == 1 and 'mreg --store %s init' % store in
             r.stderr and not os.path.exists(store),
             'mregfs STORE MOUNTPOINT of a missing store: exit 1, says how '
             'to make one, makes nothing', r.stderr)
        init(store)
        m.spawn([MREGFS, '-f', store, m.mnt])
        os.mkdir(os.path.join(m.mnt, 'models', 'pos'))
        t.eq(m.stop(), 0, 'mregfs -f STORE MOUNTPOINT mounts and exits 0')
        t.ok(os.path.isdir(os.path.join(store, 'index')),
             'mregfs STORE MOUNTPOINT serves STORE')
        # $MREG_STORE
        env_store = os.path.join(tmp, 'env-store')
        m.spawn([MREGFS, '-f', m.mnt],
                env=dict(m.env, MREG_STORE=env_store))
        os.mkdir(os.path.join(m.mnt, 'models', 'env'))
        t.eq(os.listdir(os.path.join(m.mnt, 'models')), ['env'],
             '$MREG_STORE picks the store')
        t.ok(os.path.isdir(os.path.join(env_store, 'index')),
             'the $MREG_STORE store was created')
        # SIGTERM ends the daemon and removes its mount
        m.proc.terminate()
        rc = m.wait_exit(10)
        t.ok(rc == 0 and not mountinfo_has(m.mnt),
             'SIGTERM: the daemon unmounts and exits 0 (%s)' % rc)
    finally:
        m.close()


STD_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'


def fstab_mount(what, cmd, env, mnt, store):
    r = run(cmd, env=env, timeout=30)
    t.eq(r.returncode, 0, '%s succeeds' % what)
    if r.returncode:
        t.diag(r.stdout + r.stderr)
        return
    t.ok(mountinfo_has(mnt), 'and mounts')
    pids = daemon_pids(mnt)
    daemons.extend(pids)
    t.eq(len(pids), 1, 'one detached daemon serves it')
    os.mkdir(os.path.join(mnt, 'models', 'fstab'))
    t.eq(os.listdir(os.path.join(mnt, 'models')), ['fstab'],
         'the mount works')
    t.ok(os.path.isdir(os.path.join(store, 'index')),
         'it serves the store named as the source')
    with open('/proc/self/mountinfo') as f:
        line = [ln for ln in f if (' ' + mnt + ' ') in ln]
    t.ok(line and 'fuse.mregfs' in line[0] and 'allow_other' in line[0],
         'it shows as fuse.mregfs with allow_other', ''.join(line))
    t.ok(stop_detached(mnt), 'unmounting ends the detached daemon')


def test_mount_t():
    """The /etc/fstab way. mount(8) runs mount.fuse.mregfs if installed,
    else mount.fuse3 with -t fuse.mregfs, which runs `mregfs SOURCE MNT -o
    OPTS` through /bin/sh with the default PATH (mount(8) drops the
    caller's). mount.fuse3 is run here as mount(8) would, with $PATH
    pointing at this build; the real mount(8) only when mregfs is
    installed."""
    mf = shutil.which('mount.fuse3') or '/sbin/mount.fuse3'
    if os.geteuid() != 0 or not os.path.exists(mf):
        t.skip('mount.fuse3 -t fuse.mregfs', 'needs root and mount.fuse3')
        return
    bindir = mnt_dir('bin')
    link = os.path.join(bindir, 'mregfs')
    if not os.path.exists(link):
        os.symlink(MREGFS, link)
    store = os.path.join(tmp, 'fstab-store')
    init(store)
    mnt = mnt_dir('fstab')
    env = dict(os.environ, PATH=bindir + ':' + os.environ.get('PATH', ''))
    fstab_mount('mount.fuse3 STORE MNT -t fuse.mregfs -o ... (what mount '
                '-t fuse.mregfs runs)',
                [mf, store, mnt, '-t', 'fuse.mregfs', '-o',
                 'rw,allow_other,nofail,_netdev'], env, mnt, store)
    installed = shutil.which('mregfs', path=STD_PATH)
    if not installed or shutil.which('mount') is None:
        t.skip('mount -t fuse.mregfs STORE MNT', 'mregfs is not installed '
               'in the default PATH (make install)')
        return
    store = os.path.join(tmp, 'fstab-store2')
    init(store)
    mnt = mnt_dir('fstab2')
    fstab_mount('mount -t fuse.mregfs STORE MNT (installed %s)' % installed,
                ['mount', '-t', 'fuse.mregfs', '-o', 'allow_other', store,
                 mnt], None, mnt, store)


def test_helper():
    helper = os.path.join(TOP, 'tools', 'mount.fuse.mregfs')
    store = os.path.join(tmp, 'helper-store')
    init(store)
    mnt = mnt_dir('helper')
    env = dict(os.environ, MREGFS=MREGFS)
    r = run(['sh', helper, store, mnt, '-o',
             'rw,nofail,_netdev,x-systemd.automount,noauto'], env=env,
            timeout=30)
    t.eq(r.returncode, 0, 'tools/mount.fuse.mregfs STORE MNT -o ... '
         'succeeds (mount(8)-only options ignored)')
    if r.returncode:
        t.diag(r.stdout + r.stderr)
        return
    t.ok(mountinfo_has(mnt), 'and mounts')
    os.mkdir(os.path.join(mnt, 'models', 'helper'))
    t.ok(os.path.isdir(os.path.join(store, 'index')),
         'the helper serves the store given as SOURCE')
    t.ok(stop_detached(mnt), 'unmounting ends the helper\'s daemon')


def main():
    try:
        t.run('command line', test_cmdline)
        t.run('store choice', test_store_choice)
        t.run('mount -t', test_mount_t)
        t.run('mount helper', test_helper)
    finally:
        teardown()
    return t.done()


if __name__ == '__main__':
    sys.exit(main())
