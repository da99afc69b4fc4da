"""services.py — the test services (pg.sh, rgw.sh) from Python tests.

    import services
    why = services.unavailable("rgw")       # None, or why it cannot run
    with services.Service("rgw") as env:     # a fresh instance, stopped
        env["MREG_S3_ENDPOINT"], env["AWS_ACCESS_KEY_ID"], ...
        services.halt("rgw", env.dir)        # take it away (kill: crash)
        services.start("rgw", env.dir)       # give it back

    with services.FaultProxy(env) as p:      # faultproxy.py before it
        p.endpoint                           # "http://127.0.0.1:PORT"
        p.cmd("status 503 2 on=/packs/")     # see faultproxy.py

KIND is "pg" or "rgw"; the keys of env are those of DIR/pg.env and
DIR/rgw.env (see the top of pg.sh and rgw.sh). Every call runs the shell
script, which stops daemons by PID only.
"""
import os
import shutil
import socket
import subprocess
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
KINDS = ("pg", "rgw")


def _script(kind):
    if kind not in KINDS:
        raise ValueError("unknown service %r" % kind)
    return os.path.join(HERE, kind + ".sh")


def unavailable(kind):
    """None when KIND can run here, else the reason (a line)."""
    p = subprocess.run(["sh", _script(kind), "check"], text=True,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    return None if p.returncode == 0 else (p.stdout.strip() or "unknown")


def read_env(path):
    """The KEY=VALUE lines of an env file, as a dict."""
    env = {}
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line or line.startswith("#") or " " in line:
                continue
            k, _, v = line.partition("=")
            env[k] = v
    return env


def start(kind, dir):
    """Starts KIND in DIR (or finds it running); returns its env."""
    p = subprocess.run(["sh", _script(kind), "start", dir], text=True,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if p.returncode != 0:
        raise RuntimeError("%s.sh start %s: %s" % (kind, dir,
                                                   p.stderr.strip()))
    env = Env(read_env(p.stdout.strip()))
    env.dir = dir
    return env


def halt(kind, dir):
    """Stops the server (pg) or radosgw alone (rgw), keeping the data."""
    subprocess.run(["sh", _script(kind), "halt", dir], check=True)


def kill(dir):
    """Kills radosgw at once (SIGKILL), as in a crash."""
    subprocess.run(["sh", _script("rgw"), "kill", dir], check=True)


def stop(kind, dir):
    """Stops KIND and removes its files; harmless when it is not running."""
    subprocess.run(["sh", _script(kind), "stop", dir], check=True)


class Env(dict):
    """The env of a started service; .dir is its directory."""
    dir = None


class Service:
    """A throw-away instance of KIND in a temp dir, for a with block."""

    def __init__(self, kind):
        self.kind = kind
        self.tmp = None

    def __enter__(self):
        self.tmp = tempfile.mkdtemp(prefix="mreg-%s." % self.kind)
        try:
            return start(self.kind, os.path.join(self.tmp, self.kind))
        except BaseException:
            self.__exit__(None, None, None)
            raise

    def __exit__(self, *exc):
        stop(self.kind, os.path.join(self.tmp, self.kind))
        shutil.rmtree(self.tmp, ignore_errors=True)
        return False


def with_rgw(fn):
    """fn(env) against radosgw: the one MREG_RGW_DIR names when set (a
    run that started one for all its tests), else a throw-away one."""
    if os.environ.get('MREG_RGW_DIR'):
        return fn(start('rgw', os.environ['MREG_RGW_DIR']))
    with Service('rgw') as env:
        return fn(env)


class FaultProxy:
    """tests/services/faultproxy.py in front of the radosgw of env (a
    started rgw's env), for a with block: stopped (by its pid) at the
    end."""

    def __init__(self, env):
        self.tmp = tempfile.mkdtemp(prefix="mreg-proxy.")
        ports = os.path.join(self.tmp, "ports")
        self.proc = subprocess.Popen(
            ["/usr/bin/python3", os.path.join(HERE, "faultproxy.py"),
             "--upstream", "127.0.0.1:%s" % env["MREG_RGW_PORT"],
             "--port-file", ports], stdin=subprocess.DEVNULL)
        end = time.monotonic() + 10
        while not os.path.exists(ports):
            if time.monotonic() > end or self.proc.poll() is not None:
                self.close()
                raise RuntimeError("faultproxy.py does not start")
            time.sleep(0.02)
        with open(ports) as f:
            self.port, self.ctl = (int(w) for w in f.read().split())
        self.endpoint = "http://127.0.0.1:%d" % self.port

    def cmd(self, line):
        """Sends one control command; its answer ("ok", "ok N"), or
        raises on "error"."""
        with socket.create_connection(("127.0.0.1", self.ctl), 10) as c:
            c.sendall(line.encode() + b"\n")
            reply = c.makefile().readline().strip()
        if not reply.startswith("ok"):
            raise RuntimeError("faultproxy: %s: %s" % (line, reply))
        return reply

    def close(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False
