"""mountlib.py — what the filesystem tests share: TAP output and a mount
that always goes away.

Each test file makes a fresh store and mount point under a temporary
directory, runs mregfs in the foreground (-f) as a child, waits until the
mount is in /proc/self/mountinfo and answers, and on teardown (also when a
test fails, raises, or the file is killed with SIGTERM/SIGINT) unmounts with
fusermount3 -u (lazily if busy), stops the daemon by its pid and removes
the temporary directory.

Binaries: $MREG_BUILD/mregfs and $MREG_BUILD/mreg (default: build/ at the
top of the tree). Run as a script, this file mounts an empty store and
checks the top of the namespace: a smoke test for the harness itself.

Standard library only (Debian's /usr/bin/python3).
"""
import atexit
import errno
import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback

TOP = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
BUILD = os.environ.get('MREG_BUILD') or os.path.join(TOP, 'build')
MREGFS = os.path.join(BUILD, 'mregfs')
MREG = os.path.join(BUILD, 'mreg')
# The run with every store on S3 (tests/run.sh, MREG_TEST_S3=1): mreg and
# mregfs through tests/s3wrap.sh, which puts each store's chunks in the
# run's radosgw. S3 is None otherwise.
S3 = os.environ.get('MREG_TEST_S3_DIR') or None
# ... and with every index in PostgreSQL too (MREG_TEST_PG=1).
PG = bool(S3 and os.environ.get('MREG_TEST_PG'))
if S3:
    MREGFS = os.path.join(S3, 'bin', 'mregfs')
    MREG = os.path.join(S3, 'bin', 'mreg')
FUSERMOUNT = shutil.which('fusermount3') or '/usr/bin/fusermount3'


class Tap:
    """TAP lines: "ok N - what" / "not ok N - what"; exit status 1 when
    anything failed."""

    def __init__(self):
        self.n = 0
        self.failed = 0

    def ok(self, cond, what, detail=None):
        self.n += 1
        if cond:
            print('ok %d - %s' % (self.n, what), flush=True)
        else:
            self.failed += 1
            print('not ok %d - %s' % (self.n, what), flush=True)
            if detail is not None:
                self.diag(detail)
        return bool(cond)

    def eq(self, got, want, what):
        return self.ok(got == want, what, 'got %r, want %r' % (got, want))

    def skip(self, what, why):
        self.n += 1
        print('ok %d - %s # SKIP %s' % (self.n, what, why), flush=True)

    def on_s3(self, what, why):
        """In the run with every store on S3: skips what (a check that
        cannot hold there by nature, why says how) and returns True; else
        False. Usage: if not t.on_s3(what, why): <the check>"""
        if S3:
            self.skip(what, 'on S3: ' + why)
        return bool(S3)

    def on_pg(self, what, why):
        """As on_s3, in the run with every index in PostgreSQL too."""
        if PG:
            self.skip(what, 'on PostgreSQL: ' + why)
        return bool(PG)

    def diag(self, text):
        for line in str(text).splitlines():
            print('#   ' + line, flush=True)

    def errno(self, want, what, fn, *args, **kw):
        """Calls fn(*args) and checks that it fails with OSError errno
        want (an errno number)."""
        try:
            fn(*args, **kw)
        except OSError as e:
            return self.ok(e.errno == want, what,
                           'got %s, want %s' % (errno.errorcode.get(
                               e.errno, e.errno), errno.errorcode[want]))
        return self.ok(False, what, 'succeeded, want %s' %
                       errno.errorcode[want])

    def run(self, what, fn, *args):
        """Runs a block of checks; an exception in it is one failure (with
        its traceback) instead of the end of the file."""
        try:
            return fn(*args)
        except Exception:
            self.ok(False, what + ' (raised)', traceback.format_exc())
            return None

    def done(self):
        print('# %d checks, %d failed' % (self.n, self.failed), flush=True)
        return 1 if self.failed else 0


def mounts_at(path):
    """How many mounts /proc/self/mountinfo has at path (a dead one under
    a new one counts)."""
    n = 0
    try:
        with open('/proc/self/mountinfo') as f:
            for line in f:
                mp = line.split()[4]
                mp = mp.replace('\\040', ' ').replace('\\011', '\t') \
                       .replace('\\012', '\n').replace('\\134', '\\')
                n += mp == path
    except OSError:
        pass
    return n


def mountinfo_has(path):
    """True when path is a mount point, read from /proc/self/mountinfo (no
    file system call: a dead FUSE mount cannot hang us)."""
    return mounts_at(path) > 0


_live = []


def _cleanup_all():
    for m in list(_live):
        try:
            m.close()
        except Exception:
            traceback.print_exc()


def _on_signal(signum, frame):
    _cleanup_all()
    os._exit(128 + signum)


atexit.register(_cleanup_all)
signal.signal(signal.SIGTERM, _on_signal)
signal.signal(signal.SIGHUP, _on_signal)


class Mount:
    """A store and a mount of it. m.start() mounts; m.stop() unmounts and
    stops the daemon; m.close() also removes the temporary directory (run
    at exit in any case)."""

    def __init__(self, tag='fs', args=(), env=None, tmp=None):
        self.tmp = tmp or tempfile.mkdtemp(prefix='mreg-%s-' % tag)
        self.store = os.path.join(self.tmp, 'store')
        self.mnt = os.path.join(self.tmp, 'mnt')
        os.makedirs(self.mnt, exist_ok=True)
        self.args = list(args)
        self.env = dict(os.environ)
        self.env.pop('MREG_STORE', None)
        if env:
            self.env.update(env)
        self.proc = None
        self.log = os.path.join(self.tmp, 'mregfs.log')
        self.closed = False
        _live.append(self)

    # -- paths and the CLI --------------------------------------------

    def path(self, *parts):
        return os.path.join(self.mnt, *parts)

    def ensure_store(self):
        """Makes the store with `mreg init` where there is nothing yet
        (only mreg init makes a store, and mregfs its default one: a store
        named with --store must exist), with the config of the mount's
        -c."""
        if os.path.exists(self.store) and os.listdir(self.store):
            return  # a store, or what a test made of one
        conf = []
        for opt in ('-c', '--config'):
            if opt in self.args[:-1]:
                conf = [opt, self.args[self.args.index(opt) + 1]]
        # a config mreg refuses is mregfs's to report (a test of it)
        subprocess.run([MREG] + conf + ['--store', self.store, 'init'],
                       env=self.env, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, timeout=60)

    def mreg(self, *args, check=False, input=None):
        """Runs the CLI on this store (made first if need be): a
        CompletedProcess (text)."""
        self.ensure_store()
        env = dict(self.env, MREG_STORE=self.store)
        return subprocess.run([MREG] + list(args), env=env, input=input,
                              stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True,
                              timeout=300, check=check)

    def audit(self):
        """The records of .mreg/audit.log, parsed."""
        with open(self.path('.mreg', 'audit.log')) as f:
            return [json.loads(ln) for ln in f if ln.strip()]

    def metric(self, name):
        """The value of one line of .mreg/metrics ('name{labels}'), or
        None."""
        with open(self.path('.mreg', 'metrics')) as f:
            for ln in f:
                if ln.startswith(name + ' '):
                    return int(ln.split()[1])
        return None

    # -- mounting -----------------------------------------------------

    def start(self, timeout=15, extra=()):
        """Mounts: mregfs -f --store STORE [args] [extra] MNT (the store
        made first if need be)."""
        self.ensure_store()
        return self.spawn([MREGFS, '-f', '--store', self.store] +
                          self.args + list(extra) + [self.mnt], timeout)

    def spawn(self, cmd, timeout=15, env=None):
        """Runs a foreground mregfs command line cmd and waits until it
        serves the mount point."""
        assert self.proc is None or self.proc.poll() is not None
        logf = open(self.log, 'ab')
        self.proc = subprocess.Popen(cmd, stdout=logf, stderr=logf,
                                     env=env or self.env,
                                     stdin=subprocess.DEVNULL)
        logf.close()
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise RuntimeError('mregfs exited with %d:\n%s' %
                                   (self.proc.returncode, self.log_tail()))
            if mountinfo_has(self.mnt):
                try:
                    # waits for FUSE_INIT; statfs, never answered from a
                    # cache (a stat of a dead mount's root can be)
                    os.statvfs(self.mnt)
                    return self
                except OSError as e:
                    # a dead mount a killed daemon left (auto_unmount
                    # missed it): the new daemon detaches it first
                    if e.errno != errno.ENOTCONN:
                        raise
            time.sleep(0.02)
        raise RuntimeError('mregfs did not mount within %ds:\n%s' %
                           (timeout, self.log_tail()))

    def pid(self):
        return self.proc.pid if self.proc else None

    def log_tail(self, n=30):
        try:
            with open(self.log, errors='replace') as f:
                return ''.join(f.readlines()[-n:])
        except OSError:
            return ''

    def log_has(self, text, timeout=0, lines=300):
        """Whether text is in the last lines of the daemon's log, waiting
        up to timeout seconds for it to come."""
        end = time.monotonic() + timeout
        while True:
            if text in self.log_tail(lines):
                return True
            if time.monotonic() >= end:
                return False
            time.sleep(0.05)

    def unmount(self):
        """fusermount3 -u, lazily (-z) when the mount is busy."""
        for attempt in range(50):
            if not mountinfo_has(self.mnt):
                return True
            r = subprocess.run([FUSERMOUNT, '-u', self.mnt],
                               stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
            if r.returncode == 0:
                continue
            if attempt > 5:
                subprocess.run([FUSERMOUNT, '-u', '-z', self.mnt],
                               stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
            time.sleep(0.1)
        return not mountinfo_has(self.mnt)

    def wait_exit(self, timeout=10):
        if not self.proc:
            return None
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self):
        """Unmounts and stops the daemon (by its pid). The daemon's exit
        status, or None when it had to be killed."""
        self.unmount()
        if not self.proc:
            return None
        rc = self.wait_exit(10)
        if rc is None:
            self.proc.terminate()
            rc = self.wait_exit(5)
        if rc is None:
            self.proc.kill()
            self.proc.wait()
        return rc

    def kill9(self, timeout=60):
        """SIGKILL to the daemon; waits (up to timeout seconds) until its
        auto_unmount watcher (fusermount3) decided and exited. What the
        mount point then holds: 'removed' (the watcher unmounted it),
        'dead' (it was left: statfs answers ENOTCONN, and the next start
        detaches it) or 'stuck' (the watcher still runs, or the mount
        answers)."""
        watchers = unmount_watchers(self.mnt)
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        # the watcher wakes when the daemon's end of its socket closes; a
        # loaded machine (a sanitizer build, CI) can take its time
        if not wait_exited(watchers, timeout):
            return 'stuck'
        if not mountinfo_has(self.mnt):
            return 'removed'
        try:
            os.statvfs(self.mnt)
        except OSError as e:
            if e.errno == errno.ENOTCONN:
                return 'dead'
        return 'stuck'

    def close(self):
        if self.closed:
            return
        self.closed = True
        try:
            self.stop()
        finally:
            if self in _live:
                _live.remove(self)
            if not mountinfo_has(self.mnt):
                shutil.rmtree(self.tmp, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.close()


# -- small helpers the tests share ------------------------------------------

def seen_within(cond, bound, timeout=60, step=0.02):
    """Probes cond() until it holds (up to timeout seconds), for a change
    that must show within bound seconds of the call. Returns (came, late):
    whether it came, and when (seconds after the call) the last probe
    that found it missing started, if that was past the bound, else None.
    Judged by when a probe started, not when it ended: a loaded machine
    runs the probes late, but one that started past the bound and saw the
    old state is a real miss."""
    t0 = time.monotonic()
    late = None
    while True:
        start = time.monotonic() - t0
        if cond():
            return True, late
        if start > bound:
            late = start
        if start > timeout:
            return False, late
        time.sleep(step)


def unmount_watchers(mnt):
    """The pids of the fusermount3 processes that watch mnt for
    auto_unmount: each waits for its daemon's death, then unmounts the
    mount point if opening it answers ENOTCONN, and exits."""
    pids = []
    for d in os.listdir('/proc'):
        try:
            with open('/proc/%s/cmdline' % d, 'rb') as f:
                argv = f.read().split(b'\0')
        except (OSError, ValueError):
            continue
        if (d.isdigit() and os.path.basename(argv[0]) == b'fusermount3'
                and b'auto_unmount' in b','.join(argv) and
                os.fsencode(mnt) in argv):
            pids.append(int(d))
    return pids


def running(pid):
    """Whether pid runs (a zombie no longer does)."""
    try:
        with open('/proc/%d/stat' % pid) as f:
            return f.read().rsplit(')', 1)[1].split()[0] != 'Z'
    except (OSError, IndexError):
        return False


def wait_exited(pids, timeout):
    """Waits up to timeout seconds until none of pids (not our children)
    runs; True when none does."""
    end = time.monotonic() + timeout
    while True:
        alive = [p for p in pids if running(p)]
        if not alive or time.monotonic() >= end:
            return not alive
        time.sleep(0.02)


def write_file(path, data, block=1 << 20):
    """Writes data to path (through a mount) in writes of block bytes; the
    errno of the first failing write or close, or 0."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    except OSError as e:
        return e.errno
    err = 0
    try:
        for off in range(0, len(data), block):
            os.write(fd, data[off:off + block])
    except OSError as e:
        err = e.errno
    try:
        os.close(fd)
    except OSError as e:
        err = err or e.errno
    return err


def fill_dir(d, leave=0):
    """A file d/filler that takes every free byte of d's file system but
    leave (another writer filling a disk). Its path."""
    path = os.path.join(d, 'filler')
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        for block in (1 << 20, 65536, 4096):
            try:
                while True:
                    os.write(fd, b'\0' * block)
            except OSError:
                pass
        if leave:
            os.ftruncate(fd, max(0, os.fstat(fd).st_size - leave))
    finally:
        os.close(fd)
    return path


def sha(data):
    return hashlib.sha256(data).hexdigest()


def file_sha(path):
    h = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(1 << 20), b''):
            h.update(block)
    return h.hexdigest()


def pattern(n, seed):
    """n bytes that differ with seed (reproducible, incompressible, so
    chunks of two seeds never match)."""
    return random.Random(seed).randbytes(n)


def versions(mnt_model_dir):
    """Integer version names in a model directory, sorted."""
    return sorted(int(n) for n in os.listdir(mnt_model_dir) if n.isdigit())


def run_suite(t, m, what, setup, blocks, cleanup=()):
    """The main() of a test file: setup() (which mounts m), each (name, fn)
    of blocks, a check that the daemon exits 0 on unmount; then, whatever
    happened, m.close() and each of cleanup (callables). Returns the exit
    status for sys.exit."""
    try:
        setup()
        for name, fn in blocks:
            t.run(name, fn)
        rc = m.stop()
        t.ok(rc == 0, 'the daemon exits 0 on unmount',
             None if rc == 0 else 'exit status %s; its log:\n%s' %
             (rc, m.log_tail()))
    except Exception as e:
        t.ok(False, what, '%s\n%s' % (e, m.log_tail()))
    finally:
        m.close()
        for fn in cleanup:
            fn()
    return t.done()


def run(cmd, **kw):
    """subprocess.run with text output captured."""
    kw.setdefault('stdout', subprocess.PIPE)
    kw.setdefault('stderr', subprocess.PIPE)
    kw.setdefault('text', True)
    kw.setdefault('timeout', 120)
    return subprocess.run(cmd, **kw)


def main():
    t = Tap()
    if not os.access(MREGFS, os.X_OK):
        t.ok(False, 'mregfs is built', MREGFS + ' is missing')
        return t.done()
    m = Mount('lib')
    try:
        m.start()
        t.ok(mountinfo_has(m.mnt), 'mregfs mounts an empty store')
        t.eq(sorted(os.listdir(m.mnt)), ['.mreg', 'models'],
             'the top of the namespace is models/ and .mreg/')
        t.eq(os.listdir(m.path('models')), [], 'models/ starts empty')
        rc = m.stop()
        t.ok(not mountinfo_has(m.mnt), 'fusermount3 -u unmounts')
        t.ok(rc == 0, 'the daemon exits 0 after the unmount',
             None if rc == 0 else 'exit status %s; its log:\n%s' %
             (rc, m.log_tail()))
    except Exception:
        t.ok(False, 'harness', traceback.format_exc())
    finally:
        m.close()
    return t.done()


if __name__ == '__main__':
    sys.exit(main())
