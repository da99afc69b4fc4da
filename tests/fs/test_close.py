"""When a file at a model root becomes a version (SPEC §2.1, §2.3, §5;
issue 10): at the last close of its last descriptor, not the first (shell
redirection, exec 3>, a child that inherits the descriptor, a writer that
runs a subprocess); never when its writer dies of a signal (kill -9,
SIGTERM: nothing registered, nothing left, the refusal audited, no
on_register hook); cp -p keeps its times; cp after cp gives 1 then 2, seen
by ls at once. A draft file whose first close never came is gone after a
crash. A daemon that died in its own PID namespace (PID 1, alive to
kill(2)) leaves no pending file: another daemon on the store removes it
while running. Sealing a draft while the mount has a writer open in it,
with the CLI on the store or through another mount, fails with EBUSY and
the sealed bytes are those of the writer's last close.
"""
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mountlib import (MREGFS, Mount, Tap, pattern, run,  # noqa: E402
                      run_suite, sha, versions)

HOOK = '''#!/bin/sh
echo "$MREG_EVENT $MREG_MODEL/$MREG_VERSION" >> %s
'''

t = Tap()
m = Mount('close')
# a second daemon on the same store
m2 = Mount('close-b')
m2.store = m.store
src = tempfile.mkdtemp(prefix='mreg-src-')
hooked = os.path.join(m.tmp, 'hooked')


def model(*parts):
    return m.path('models', 'c', *parts)


def read(path):
    with open(path, 'rb') as f:
        return f.read()


def write(path, data):
    with open(path, 'wb') as f:
        f.write(data)


def wait_until(cond, timeout=60):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.05)
    return cond()


def audit():
    return read(m.path('.mreg', 'audit.log')).decode()


def hook_lines():
    try:
        with open(hooked) as f:
            return f.read().split('\n')[:-1]
    except FileNotFoundError:
        return []


def setup():
    hook = os.path.join(m.tmp, 'hook.sh')
    write(hook, (HOOK % hooked).encode())
    os.chmod(hook, 0o755)
    conf = os.path.join(m.tmp, 'mreg.conf')
    write(conf, ('[hooks]\non_register = %s\n' % hook).encode())
    m.args = ['-c', conf]
    m.start()
    os.mkdir(model())


def test_shell_redirect():
    r = run(['bash', '-c', 'echo hi > %s' % model('x.txt')])
    t.eq((r.returncode, r.stderr), (0, ''),
         "bash -c 'echo hi > M/x.txt' succeeds (no EROFS)")
    t.eq(versions(model()), [1], 'it made one version')
    t.eq(read(model('1', 'x.txt')), b'hi\n', 'holding what echo wrote')


def test_exec_fd():
    y = model('y')
    script = '''
exec 3>%(y)s
echo a >&3
(echo child; sleep 0.1)
bash -c 'true'
echo b >&3
ls %(dir)s
exec 3>&-
''' % {'y': y, 'dir': model()}
    r = run(['bash', '-c', script])
    t.eq(r.returncode, 0, 'exec 3>, a child and a subshell, exec 3>&-')
    t.ok('y' in r.stdout.split() and '2' not in r.stdout.split(),
         'before exec 3>&- it is still being written', r.stdout)
    t.eq(versions(model()), [1, 2], 'then it made one version')
    t.eq(read(model('2', 'y')), b'a\nb\n', 'with both lines')


WRITER = r'''
import subprocess, sys
f = open(sys.argv[1], 'wb')
f.write(b'x' * (1 << 20))
subprocess.run(['true'], check=True)      # a logger running git...
f.write(b'y' * (1 << 20))
f.flush()
pid = subprocess.Popen(['sleep', '0']).wait()
f.write(b'z' * 1000)
f.close()
print('closed')
'''


def test_subprocess_writer():
    r = run(['/usr/bin/python3', '-c', WRITER, model('p.bin')])
    t.ok((r.returncode, r.stdout.strip()) == (0, 'closed'),
         'a writer that runs subprocesses mid-write: close() returns 0',
         r.stderr)
    t.eq(versions(model()), [1, 2, 3], 'one version')
    t.eq(sha(read(model('3', 'p.bin'))),
         sha(b'x' * (1 << 20) + b'y' * (1 << 20) + b'z' * 1000),
         'with the whole file')


def killed_cp(name, sig):
    """cp from a FIFO into the model root, killed with sig once 1 MiB went
    in (the FIFO's writer keeps it open: cp is blocked in a read)."""
    fifo = os.path.join(src, name + '.fifo')
    os.mkfifo(fifo)
    done = threading.Event()

    def feed():
        with open(fifo, 'wb') as f:
            f.write(pattern(1 << 20, 7))
            f.flush()
            done.wait(60)
    feeder = threading.Thread(target=feed)
    feeder.start()
    dst = model(name)
    cp = subprocess.Popen(['cp', fifo, dst], stderr=subprocess.DEVNULL)
    try:
        went = wait_until(lambda: os.path.exists(dst) and
                          os.stat(dst).st_size >= 1 << 20, 30)
        t.ok(went and cp.poll() is None,
             'cp of %s is writing it' % name)
        cp.send_signal(sig)
        rc = cp.wait(30)
        t.eq(rc, -sig, 'cp dies of signal %d' % sig)
    finally:
        done.set()
        feeder.join()
        if cp.poll() is None:
            cp.kill()
            cp.wait()


def test_killed_writers():
    before = versions(model())
    for name, sig in (('k9.bin', signal.SIGKILL),
                      ('k15.bin', signal.SIGTERM)):
        killed_cp(name, sig)
        t.eq(versions(model()), before,
             'a writer killed by signal %d registers nothing' % sig)
        t.ok(name not in os.listdir(model()),
             'and leaves no file at the model root', os.listdir(model()))
        t.ok('"refused","model":"c","path":"%s"' % name in audit() and
             'killed by signal %d' % sig in audit(),
             'the refusal is audited', audit()[-600:])
    # the hook queue is in order: once the next version's hook ran, the
    # killed files' would have too
    write(os.path.join(src, 'after.bin'), b'after')
    r = run(['cp', os.path.join(src, 'after.bin'), model()])
    t.eq(r.returncode, 0, 'cp after.bin')
    n = before[-1] + 1
    t.ok(wait_until(lambda: 'register c/%d' % n in hook_lines()),
         'on_register ran for version %d' % n, hook_lines())
    t.eq(hook_lines(), ['register c/%d' % v for v in range(1, n + 1)],
         'on_register ran once per version, never for a killed writer')


def test_cp_p():
    s = os.path.join(src, 'timed.bin')
    write(s, b'timed')
    os.utime(s, ns=(981173106000000123, 981173106000000123))
    before = versions(model())
    r = run(['cp', '-p', s, model()])
    t.eq(r.returncode, 0, 'cp -p to the model root')
    v = versions(model())[-1]
    t.eq(len(versions(model())), len(before) + 1, 'one version')
    st = os.stat(model(str(v), 'timed.bin'))
    t.eq((st.st_mtime_ns, st.st_atime_ns),
         (981173106000000123, 981173106000000123),
         'cp -p keeps the times it set on the descriptor')


def test_sequential_cp():
    a, b = os.path.join(src, 'a.bin'), os.path.join(src, 'b.bin')
    write(a, b'first')
    write(b, b'second')
    n = versions(model())[-1]
    r = run(['cp', a, model('seq.bin')])
    seen = os.listdir(model())
    t.ok(r.returncode == 0 and str(n + 1) in seen and 'seq.bin' not in seen,
         'ls right after the first cp shows version %d' % (n + 1), seen)
    r = run(['cp', b, model('seq.bin')])
    seen = os.listdir(model())
    t.ok(r.returncode == 0 and str(n + 2) in seen and 'seq.bin' not in seen,
         'ls right after the second shows version %d' % (n + 2), seen)
    t.eq((read(model(str(n + 1), 'seq.bin')),
          read(model(str(n + 2), 'seq.bin'))), (b'first', b'second'),
         'each with its bytes')


def test_dead_daemon():
    """A daemon in its own PID namespace is PID 1 there, and kill(1, 0)
    always succeeds: its pending file must still go once it is dead."""
    a = Mount('close-a')
    a.store = m.store
    try:
        a.spawn(['unshare', '--pid', '--fork', '--kill-child', MREGFS, '-f',
                 '--store', a.store, a.mnt])
        m2.start()
        fd = os.open(a.path('models', 'c', 'stale.bin'),
                     os.O_WRONLY | os.O_CREAT, 0o644)
        os.write(fd, b'half written')
        t.ok('stale.bin' in os.listdir(m2.path('models', 'c')),
             'a pending file of a daemon running as PID 1')
        # SIGKILL to unshare, which --kill-child passes on to the daemon
        # (the namespace's auto_unmount helper dies with it)
        with open('/proc/%d/task/%d/children' % (a.pid(), a.pid())) as f:
            daemon = int(f.read().split()[0])
        a.proc.kill()
        a.proc.wait()
        try:
            os.close(fd)
        except OSError:
            pass
        t.ok(wait_until(lambda: not os.path.exists('/proc/%d' % daemon)),
             'that daemon is killed')
        t.ok(wait_until(lambda: 'stale.bin' not in
                        os.listdir(m2.path('models', 'c'))),
             'another daemon on the store removes it while running',
             os.listdir(m2.path('models', 'c')))
    finally:
        a.close()


def test_seal_while_writing():
    d = model('s')
    os.mkdir(d)
    fd = os.open(os.path.join(d, 'w.bin'), os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        os.write(fd, b'abc')
        os.fsync(fd)
        r = m.mreg('seal', 'c', 's')
        t.ok(r.returncode != 0 and 'open for writing' in r.stderr,
             'mreg seal on the store while a writer is open: EBUSY',
             r.stdout + r.stderr)
        r = m.mreg('promote', 'c', 's', 'Staging')
        t.ok(r.returncode != 0 and 'open for writing' in r.stderr,
             'mreg promote of the draft: EBUSY', r.stdout + r.stderr)
        r = m.mreg('rm', 'c', 's')
        t.ok(r.returncode != 0 and 'open for writing' in r.stderr,
             'mreg rm of the draft: EBUSY, said as such',
             r.stdout + r.stderr)
        t.errno(16, 'chmod a-w through another mount: EBUSY',
                os.chmod, m2.path('models', 'c', 's'), 0o555)
        t.errno(16, 'chmod a-w through this mount: EBUSY',
                os.chmod, d, 0o555)
        t.eq(os.write(fd, b'def'), 3, 'the writer goes on')
    finally:
        os.close(fd)
    r = m.mreg('seal', 'c', 's')
    t.ok(r.returncode == 0, 'after its close mreg seal succeeds', r.stderr)
    t.eq((read(os.path.join(d, 'w.bin')),
          read(m2.path('models', 'c', 's', 'w.bin'))), (b'abcdef', b'abcdef'),
         'both mounts read the bytes of its last close')
    t.errno(30, 'the sealed file cannot be opened for writing',
            os.open, os.path.join(d, 'w.bin'), os.O_WRONLY)


def test_crash_draft():
    d = model('cr')
    os.mkdir(d)
    write(os.path.join(d, 'done.bin'), b'complete')
    fd = os.open(os.path.join(d, 'open.bin'), os.O_WRONLY | os.O_CREAT,
                 0o644)
    os.write(fd, b'never closed')
    m2.stop()
    m.kill9()  # auto_unmount may miss the dead mount: the start detaches it
    t.ok(m.proc.poll() is not None,
         'kill -9 of the daemon while a draft file is open')
    try:
        os.close(fd)
    except OSError:
        pass
    m.start()
    t.eq(sorted(os.listdir(d)), ['done.bin'],
         'after the crash the file whose first close never came is absent')
    t.eq(read(os.path.join(d, 'done.bin')), b'complete',
         'the closed one is intact')
    r = m.mreg('fsck')
    t.ok(r.returncode == 0, 'fsck is clean', r.stdout + r.stderr)


def main():
    return run_suite(t, m, 'close', setup, [
        ('shell redirection', test_shell_redirect),
        ('exec 3>', test_exec_fd),
        ('a writer running subprocesses', test_subprocess_writer),
        ('killed writers', test_killed_writers),
        ('cp -p', test_cp_p),
        ('cp after cp', test_sequential_cp),
        ('a dead daemon in a PID namespace', test_dead_daemon),
        ('sealing while writing', test_seal_while_writing),
        ('a crash with a draft file open', test_crash_draft),
    ], cleanup=(m2.close,
                lambda: __import__('shutil').rmtree(src, ignore_errors=True)))


if __name__ == '__main__':
    sys.exit(main())
