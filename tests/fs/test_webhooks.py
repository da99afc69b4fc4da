"""Hooks that are URLs (issue 14, "Hooks fire once"): a registration and a
promotion through a mount are each POSTed once, as JSON with the fields a
hook program gets in its environment (event, model, version, stage,
previous, user, uid, store, mount) and a delivery id and timestamp,
signed the way MLflow 3.3 signs its webhooks (X-MLflow-Delivery-Id,
X-MLflow-Timestamp, X-MLflow-Signature "v1," base64 HMAC-SHA256 of
"ID.TIMESTAMP.BODY" with the secret of [hooks] secret_file), over TLS
checked against [hooks] ca_file. The receiver is an HTTPS server in this
process, on loopback, with a self-signed certificate made with
/usr/bin/openssl; it checks every signature with its own copy of the
secret and answers 401 when it does not hold.

A 503 twice then 200 is one delivery after three attempts (with one
delivery id); a receiver that always fails is a failed delivery; a
receiver with another secret refuses (401, not retried); a process
killed while its delivery waits for the answer leaves it to the mount's
daemon, which delivers it again with the same delivery id. Each delivery
is one audit record (the URL without its query string, the status, the
attempts, the delivery id) and counted in .mreg/metrics by outcome.
Configs that break the rules (http:// to another host, a secret file
others may read, a URL without a secret) are refused with FILE:LINE, by
mreg and mregfs; `mreg policy hook` refuses the same URLs.
"""
import base64
import hashlib
import hmac
import http.server
import json
import os
import re
import ssl
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mountlib import (MREG, MREGFS, S3, Mount, Tap, run,  # noqa: E402
                      run_suite)

SECRET = b'correct horse battery staple'
TOKEN = 'tok-9f3a'    # in the URL's query string: never logged or audited
# Waits for what must come are long (a loaded machine runs hooks late);
# what the checks judge is what came, never how soon.
WAIT = 60

t = Tap()
m = Mount('webhooks', env={'DAEMON_ONLY': 'x'})
R = {}


class Receiver(http.server.ThreadingHTTPServer):
    """Records every POST (headers, body, whether its signature holds
    for self.secret) and answers 503 for the next fail_next requests,
    `always` for every request when set, 401 to a bad signature, else
    200."""
    daemon_threads = True

    def __init__(self, ctx):
        super().__init__(('127.0.0.1', 0), Handler)
        self.socket = ctx.wrap_socket(self.socket, server_side=True)
        self.lock = threading.Lock()
        self.got = []
        self.secret = SECRET
        self.fail_next = 0
        self.always = None
        self.hold = None      # a stage whose first POST waits for release
        self.release = threading.Event()

    def handle_error(self, request, client_address):
        pass    # a client killed before its answer

    def deliveries(self, n=0, timeout=WAIT, **match):
        """The requests whose JSON has the fields of match, once there
        are n (or timeout seconds passed)."""
        end = time.monotonic() + timeout
        while True:
            with self.lock:
                got = [g for g in self.got if g['json'] and all(
                    g['json'].get(k) == v for k, v in match.items())]
            if len(got) >= n or time.monotonic() >= end:
                return got
            time.sleep(0.05)


class Handler(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        srv = self.server
        body = self.rfile.read(int(self.headers.get('Content-Length', 0)))
        did = self.headers.get('X-MLflow-Delivery-Id', '')
        ts = self.headers.get('X-MLflow-Timestamp', '')
        sig = self.headers.get('X-MLflow-Signature', '')
        # how an MLflow receiver checks it
        want = 'v1,' + base64.b64encode(hmac.new(
            srv.secret, did.encode() + b'.' + ts.encode() + b'.' + body,
            hashlib.sha256).digest()).decode()
        ok = hmac.compare_digest(sig, want)
        try:
            doc = json.loads(body)
        except ValueError:
            doc = None
        with srv.lock:
            srv.got.append({'path': self.path, 'headers': dict(
                self.headers), 'body': body, 'json': doc, 'verified': ok,
                'id': did, 'ts': ts})
            hold = doc and srv.hold and doc.get('stage') == srv.hold
            if hold:
                srv.hold = None
            if srv.fail_next > 0:
                srv.fail_next -= 1
                status = 503
            elif srv.always:
                status = srv.always
            else:
                status = 200 if ok else 401
        if hold:
            srv.release.wait(WAIT)
        self.send_response(status)
        self.send_header('Content-Length', '0')
        self.end_headers()

    def log_message(self, *args):
        pass


def audit_hooks(n=0, timeout=WAIT):
    """The audit records of URL deliveries, once there are n."""
    end = time.monotonic() + timeout
    while True:
        got = [a for a in m.audit() if a['op'] == 'hook' and 'url' in a]
        if len(got) >= n or time.monotonic() >= end:
            return got
        time.sleep(0.1)


def write_file(path, text, mode):
    with open(path, 'w') as f:
        f.write(text)
    os.chmod(path, mode)
    return path


def setup():
    d = m.tmp
    key, cert = os.path.join(d, 'key.pem'), os.path.join(d, 'cert.pem')
    r = run(['/usr/bin/openssl', 'req', '-x509', '-newkey', 'ec',
             '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
             '-keyout', key, '-out', cert, '-days', '2',
             '-subj', '/CN=127.0.0.1', '-addext',
             'subjectAltName=IP:127.0.0.1'])
    assert r.returncode == 0, r.stderr
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    srv = Receiver(ctx)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    R['srv'] = srv
    R['url'] = 'https://127.0.0.1:%d/hook' % srv.server_address[1]
    R['secret'] = write_file(os.path.join(d, 'secret'),
                             SECRET.decode() + '\n', 0o600)
    R['cert'] = cert
    conf = write_file(os.path.join(d, 'mreg.conf'), (
        '[hooks]\non_register = %(u)s?token=%(t)s\n'
        'on_promote = %(u)s?token=%(t)s\nsecret_file = %(s)s\n'
        'ca_file = %(c)s\ntimeout = 30\nattempts = 3\n'
        'attempt_timeout = 10\n[log]\nlevel = info\n') % {
            'u': R['url'], 't': TOKEN, 's': R['secret'], 'c': cert}, 0o644)
    m.args = ['-c', conf]
    R['conf'] = conf
    m.start()
    os.mkdir(m.path('models', 'wm'))
    src = os.path.join(d, 'model.bin')
    with open(src, 'wb') as f:
        f.write(os.urandom(3000))
    r = run(['cp', src, m.path('models', 'wm') + '/'])
    assert r.returncode == 0, r.stderr


def promote(stage, version='1'):
    os.symlink('../' + version, m.path('models', 'wm', 'stages', stage))


def one_delivery(what, **match):
    """The one delivery of an event: (its request, its audit record)."""
    got = R['srv'].deliveries(1, **match)
    t.eq(len(got), 1, what + ': one POST')
    if not got:
        return None, None
    did = got[0]['id']
    recs = [a for a in audit_hooks(len(R.get('seen', ())) + 1)
            if a.get('delivery') == did]
    t.eq(len(recs), 1, what + ': one audit record of its delivery id')
    R.setdefault('seen', set()).add(did)
    return got[0], recs[0] if recs else None


def check_request(what, g, want):
    doc = dict(g['json'])
    did, ts = doc.pop('delivery_id', None), doc.pop('timestamp', None)
    t.eq(doc, want, what + ': the JSON has the fields of the hook '
         'environment')
    t.ok(re.fullmatch(r'[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]'
                      r'{3}-[0-9a-f]{12}', did or '') and did == g['id'],
         what + ': and delivery_id, a UUID, the X-MLflow-Delivery-Id',
         (did, g['id']))
    t.ok(re.fullmatch(r'\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z', ts or '')
         and g['ts'].isdigit() and abs(int(g['ts']) - time.time()) < 3600,
         what + ': a timestamp (ISO 8601) and X-MLflow-Timestamp (Unix '
         'seconds)', (ts, g['ts']))
    t.ok(g['verified'], what + ': X-MLflow-Signature holds for the '
         'secret', g['headers'])
    t.eq((g['path'], g['headers'].get('Content-Type')),
         ('/hook?token=' + TOKEN, 'application/json'),
         what + ': POSTed to the URL, as application/json')


def base(**kw):
    want = {'event': 'register', 'model': 'wm', 'version': '1',
            'stage': '', 'previous': '', 'user': 'root',
            'uid': os.geteuid(), 'store': m.store, 'mount': m.mnt}
    want.update(kw)
    return want


def check_record(what, a, result, status, attempts):
    t.eq((a.get('result'), a.get('url'), a.get('status'),
          a.get('attempts')), (result, R['url'], status, attempts),
         what + ': audited with its result, the URL without its query, '
         'the status and the attempts')


def test_register():
    g, a = one_delivery('register', event='register', model='wm')
    if g:
        check_request('register', g, base(user='root'))
    if a:
        check_record('register', a, 'ok', 200, 1)
        t.eq((a.get('event'), a.get('model'), a.get('version')),
             ('register', 'wm', '1'), 'register: with its event')


def test_promote():
    promote('Staging')
    g, a = one_delivery('promote', event='promote', stage='Staging')
    if g:
        check_request('promote', g, base(event='promote', stage='Staging'))
    if a:
        check_record('promote', a, 'ok', 200, 1)


def test_retries():
    R['srv'].fail_next = 2
    promote('Retry')
    g, a = one_delivery('503 twice, then 200', stage='Retry')
    tries = [x for x in R['srv'].got if g and x['id'] == g['id']]
    t.eq(len(tries), 3, '503 twice then 200: three attempts of one '
         'delivery id')
    t.ok(tries and all(x['verified'] for x in tries),
         'each signed again (its own timestamp)')
    if a:
        check_record('503 twice, then 200', a, 'ok', 200, 3)


def test_always_failing():
    R['srv'].always = 503
    try:
        promote('Down')
        g, a = one_delivery('a receiver that always fails', stage='Down')
        tries = [x for x in R['srv'].got if g and x['id'] == g['id']]
        t.eq(len(tries), 3, 'tried [hooks] attempts = 3 times')
    finally:
        R['srv'].always = None
    if a:
        check_record('always 503', a, 'failed', 503, 3)
        t.ok('HTTP 503' in a.get('reason', ''), 'with the reason', a)
    t.eq(m.metric('mreg_hooks_total{result="failed"}'), 1,
         'and counted in .mreg/metrics as failed')


def test_wrong_secret():
    R['srv'].secret = b'not the secret'
    try:
        promote('Forged')
        g, a = one_delivery('a receiver with another secret',
                            stage='Forged')
    finally:
        R['srv'].secret = SECRET
    t.ok(g and not g['verified'], 'the receiver finds the signature wrong '
         '(the test checks it)')
    if a:
        check_record('refused by the receiver', a, 'error', 401, 1)
        t.ok('HTTP 401' in a.get('reason', ''), 'with the reason', a)
    t.eq(m.metric('mreg_hooks_total{result="error"}'), 1,
         'counted as error (the receiver refused it: not retried)')
    t.eq(m.metric('mreg_hooks_total{result="ok"}'), 3,
         'the three delivered are counted as ok')


def test_nothing_leaks():
    with open(m.path('.mreg', 'audit.log')) as f:
        audit = f.read()
    deliveries = json.dumps(audit_hooks())
    log = m.log_tail(10000)
    t.ok(TOKEN not in deliveries and TOKEN not in log,
         'the query string is in neither the records of deliveries nor '
         'the daemon log', [ln for ln in log.splitlines() if TOKEN in ln])
    t.ok(SECRET.decode() not in audit and SECRET.decode() not in log,
         'the secret is in neither the audit log nor the daemon log')
    t.ok(m.log_has("delivered (HTTP 200, 3 attempts, delivery "),
         'the daemon log says how each delivery went', m.log_tail(10))


def test_takeover():
    """The process that made a change dies while its delivery waits for
    the answer: the mount's daemon takes the event over from the
    registry's queue and delivers it again, with the same delivery id."""
    srv = R['srv']
    srv.hold = 'Crash'
    p = subprocess.Popen([MREG, '-c', R['conf'], '--store', m.store,
                          'promote', 'wm', '1', 'Crash'], env=m.env,
                         stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    try:
        first = srv.deliveries(1, stage='Crash')
        t.eq(len(first), 1, 'mreg promote on the store delivers its hook')
    finally:
        p.kill()
        p.wait()
        srv.release.set()
    got = srv.deliveries(2, stage='Crash')
    t.ok(len(got) == 2 and got[0]['id'] == got[1]['id'] and
         all(g['verified'] for g in got),
         'killed before the answer, its delivery comes again from the '
         'daemon, with the same delivery id (a receiver drops a duplicate '
         'by it)', [(g['id'], g['verified']) for g in got])
    recs = [a for a in audit_hooks(len(R['seen']) + 1)
            if got and a.get('delivery') == got[0]['id']]
    t.ok(len(recs) == 1 and recs[0].get('result') == 'ok' and
         recs[0].get('stage') == 'Crash', 'audited once, as delivered',
         recs)
    if recs:
        R['seen'].add(recs[0]['delivery'])


def refused(conf_text, want, what, mregfs=False):
    """mreg (and mregfs) refuse the config with the message want (a regex,
    FILE:LINE first)."""
    conf = write_file(os.path.join(m.tmp, 'bad.conf'), conf_text, 0o644)
    store = os.path.join(m.tmp, 'store2')
    r = run([MREG, '-c', conf, '--store', store, 'init'])
    t.ok(r.returncode == 2 and re.search(re.escape(conf) + want, r.stderr),
         'mreg: ' + what, (r.returncode, r.stderr))
    if mregfs:
        mnt = os.path.join(m.tmp, 'mnt2')
        os.makedirs(mnt, exist_ok=True)
        r = run([MREGFS, '-f', '-c', conf, '--store', store, mnt],
                timeout=60)
        t.ok(r.returncode != 0 and re.search(re.escape(conf) + want,
                                             r.stderr),
             'mregfs: ' + what, (r.returncode, r.stderr))


def test_bad_configs():
    secret = R['secret']
    refused('[hooks]\non_promote = http://192.0.2.1/deploy\n'
            'secret_file = %s\n' % secret,
            r":2: invalid value 'http://192\.0\.2\.1/deploy' for "
            r"'on_promote': http:// is for a loopback address only "
            r"\(127\.0\.0\.0/8 or \[::1\]\): use https:// for '192\.0\.2\.1'",
            'http:// to another host is refused at its line', mregfs=True)
    open_secret = write_file(os.path.join(m.tmp, 'secret-open'), 'x\n',
                             0o644)
    refused('[log]\nlevel = info\n[hooks]\non_promote = %s\n'
            'secret_file = %s\n' % (R['url'], open_secret),
            r":5: invalid value '.*secret-open' for 'secret_file': secret "
            r"file '.*secret-open' is open to others \(mode 0644\): chmod "
            r"600 it", 'a secret file others may read is refused at its '
            'line', mregfs=True)
    refused('[hooks]\ntimeout = 5\non_register = %s\n' % R['url'],
            r":3: a hook URL needs \[hooks\] secret_file",
            'a URL without a secret file is refused at its line')


def test_policy_hook():
    store = os.path.join(m.tmp, 'store3')
    env = dict(m.env, MREG_STORE=store)
    r = run([MREG, 'init'], env=env)
    t.ok(r.returncode == 0, 'a store of its own', r.stderr)
    r = run([MREG, 'policy', 'hook', 'on_promote', 'http://10.0.0.1/x'],
            env=env)
    t.ok(r.returncode == 2 and
         "mreg: policy: hook on_promote: http:// is for a loopback address "
         "only" in r.stderr, 'mreg policy hook refuses http:// to another '
         'host', (r.returncode, r.stderr))
    r = run([MREG, 'policy', 'hook', 'on_promote', R['url']], env=env)
    t.ok(r.returncode == 2 and
         'mreg: policy: hook on_promote: a hook URL needs [hooks] '
         'secret_file' in r.stderr, 'and a URL its config gives no secret '
         'for', (r.returncode, r.stderr))
    conf = write_file(os.path.join(m.tmp, 'cli.conf'),
                      '[hooks]\nsecret_file = %s\n' % R['secret'], 0o644)
    r = run([MREG, '-c', conf, 'policy', 'hook', 'on_promote',
             R['url'] + '?token=x'], env=env)
    t.ok(r.returncode == 0, 'with a secret file, it stores the URL',
         r.stderr)
    r = run([MREG, 'policy', 'show', '--json'], env=env)
    t.ok(r.returncode == 0 and json.loads(r.stdout)['hooks'] ==
         {'on_promote': R['url'] + '?token=x'}, 'policy show lists it',
         r.stdout + r.stderr)


def main():
    # Deliveries do not depend on where chunks and records are; the
    # messages checked name the config file, which the S3 run copies:
    # the main run has it all, CI's other runs would repeat it.
    if S3 or os.environ.get('MREG_SERVE_EAGER'):
        t.skip('hook URLs', 'deliveries do not depend on the store or the '
               'serving: the main run has them')
        return t.done()
    return run_suite(t, m, 'webhooks', setup, [
        ('a registration', test_register),
        ('a promotion', test_promote),
        ('retries', test_retries),
        ('a receiver that always fails', test_always_failing),
        ('a wrong secret', test_wrong_secret),
        ('a host dies before the answer', test_takeover),
        ('nothing leaks', test_nothing_leaks),
        ('configs refused', test_bad_configs),
        ('mreg policy hook', test_policy_hook),
    ], cleanup=(lambda: R.get('srv') and R['srv'].shutdown(),))


if __name__ == '__main__':
    sys.exit(main())
