"""mutate.py — proves that breaking a rule of mreg fails the test suite.

Reads tests/mutate/mutations.txt (its header says how entries are
written and kept up to date), copies the source tree to a scratch
directory (never touching the working tree), builds it once and runs
every test the chosen mutations name, which must all pass (else the
harness stops: a failing suite proves nothing). Then, for each mutation,
one at a time: replaces its text in the copy, rebuilds, runs the tests
it names (or the whole suite with --full) until one fails, and restores
the file. A mutation is "killed" when a test fails (a "not ok" line, or
a non-zero exit status, or a hang past the time limit) and "SURVIVED"
when every test passes with the rule broken.

Prints a table (mutation, rule, result, the test that caught it) and
exits 0 when every mutation was killed, 1 when one survived, 2 when the
harness could not do its job (an entry's text not found, exactly once,
in its file; a mutation that does not build; the suite failing unmutated).

    /usr/bin/python3 tests/mutate/mutate.py [--full] [--keep] [--check]
                                            [NAME...]

NAME picks mutations (by name or a prefix of it: "policy" runs every
"policy-*"); --check only checks that every entry's text is found, and
builds nothing; --keep leaves the scratch tree (its path is printed);
--full runs `sh tests/run.sh` for each mutation instead of its tests.
`make mutate [MUTATE="NAME..."] [FULL=1]` runs it.

Standard library only (Debian's /usr/bin/python3).
"""
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(os.path.dirname(HERE))
LIST = os.path.join(HERE, 'mutations.txt')
KEYS = ('name', 'rule', 'file', 'find', 'replace', 'tests')
TEST_TIMEOUT = 900    # seconds for one test file; a hang counts as killed
PYTHON = '/usr/bin/python3'


class ListError(Exception):
    pass


def unescape(s):
    """The value of a find/replace field: \\n, \\t and \\\\ escapes."""
    out, i = [], 0
    while i < len(s):
        c = s[i]
        if c == '\\' and i + 1 < len(s):
            n = s[i + 1]
            if n in 'nt\\':
                out.append({'n': '\n', 't': '\t', '\\': '\\'}[n])
                i += 2
                continue
        out.append(c)
        i += 1
    return ''.join(out)


def parse(path):
    """The entries of the list file, in order, as dicts of KEYS."""
    entries, cur, start = [], {}, 0
    with open(path) as f:
        lines = f.read().split('\n')
    for no, line in enumerate(lines + [''], 1):
        if line.startswith('#'):
            continue
        if not line.strip():
            if cur:
                missing = [k for k in KEYS if k not in cur]
                if missing:
                    raise ListError('%s:%d: entry %r lacks %s' % (
                        path, start, cur.get('name', '?'),
                        ', '.join(missing)))
                cur['line'] = start
                entries.append(cur)
                cur = {}
            continue
        m = re.match(r'([a-z]+):\s?(.*)$', line)
        if not m or m.group(1) not in KEYS:
            raise ListError('%s:%d: expected "KEY: value" (KEY one of %s)'
                            % (path, no, ', '.join(KEYS)))
        key, val = m.group(1), m.group(2).strip()
        if key in cur:
            raise ListError('%s:%d: %s given twice (a blank line ends an '
                            'entry)' % (path, no, key))
        if not cur:
            start = no
        if key in ('find', 'replace'):
            val = unescape(val)
        if key == 'tests':
            val = val.split()
        cur[key] = val
    names = [e['name'] for e in entries]
    dup = sorted(set(n for n in names if names.count(n) > 1))
    if dup:
        raise ListError('%s: names used twice: %s' % (path, ', '.join(dup)))
    for e in entries:
        if e['find'] == e['replace']:
            raise ListError('%s:%d: %s: find and replace are the same' % (
                path, e['line'], e['name']))
    return entries


def source_files(top):
    """Paths (relative) of the tree to copy: git's files, tracked and
    untracked but not ignored, without build output."""
    try:
        r = subprocess.run(['git', '-C', top, 'ls-files', '-z', '--cached',
                            '--others', '--exclude-standard'],
                           stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                           check=True)
        files = [p for p in r.stdout.decode().split('\0') if p]
    except (OSError, subprocess.CalledProcessError):
        files = []
        for d, dirs, names in os.walk(top):
            dirs[:] = [x for x in dirs if x not in ('.git', 'build')]
            files += [os.path.relpath(os.path.join(d, n), top)
                      for n in names]
    return [p for p in files
            if not p.startswith('build/') and '__pycache__' not in p and
            os.path.isfile(os.path.join(top, p))]


def copy_tree(top, dest):
    for rel in source_files(top):
        dst = os.path.join(dest, rel)
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        shutil.copy2(os.path.join(top, rel), dst)


def where_else(top, text):
    """Files of core/, fs/, tools/ holding the first line of text (for a
    message when an entry's file no longer does)."""
    first = text.split('\n')[0].strip()
    hits = []
    for sub in ('core', 'fs', 'tools'):
        for d, _, names in os.walk(os.path.join(top, sub)):
            for n in names:
                p = os.path.join(d, n)
                try:
                    with open(p, errors='replace') as f:
                        for no, line in enumerate(f, 1):
                            if first and first in line:
                                hits.append('%s:%d' % (
                                    os.path.relpath(p, top), no))
                except OSError:
                    pass
    return hits


def locate(tree, e):
    """Checks that e's find text occurs exactly once in its file: None,
    or the reason it does not."""
    path = os.path.join(tree, e['file'])
    try:
        with open(path) as f:
            text = f.read()
    except OSError as x:
        hits = where_else(tree, e['find'])
        return '%s: cannot read %s (%s)%s' % (
            e['name'], e['file'], x.strerror,
            '; its text is now in ' + ', '.join(hits[:5]) if hits else '')
    n = text.count(e['find'])
    if n == 1:
        return None
    if n == 0:
        hits = where_else(tree, e['find'])
        return ('%s: "%s" is not in %s%s' % (
            e['name'], e['find'].split('\n')[0].strip(), e['file'],
            '; its first line is now in ' + ', '.join(hits[:5]) if hits
            else '; the line changed: find the rule\'s new line'))
    at = [text.count('\n', 0, m.start()) + 1
          for m in re.finditer(re.escape(e['find']), text)]
    return ('%s: "%s" is in %s %d times (lines %s): give more of the line, '
            'or the line before it (\\n)' % (
                e['name'], e['find'].split('\n')[0].strip(), e['file'], n,
                ', '.join(map(str, at))))


def clean_env(tree):
    env = dict(os.environ)
    for k in ('MAKEFLAGS', 'MFLAGS', 'MAKELEVEL', 'MAKEOVERRIDES'):
        env.pop(k, None)
    env.update(MREG_BUILD=os.path.join(tree, 'build'), MREG_TOP=tree,
               PYTHONDONTWRITEBYTECODE='1')
    env.pop('MREG_STORE', None)
    return env


def build(tree):
    """The programs and the test binaries in the scratch tree: (ok, the
    tail of its output)."""
    r = subprocess.run(['make', '-C', tree, '-j2', 'programs', 'testbins'],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       env=clean_env(tree))
    out = r.stdout.decode(errors='replace')
    return r.returncode == 0, '\n'.join(out.splitlines()[-15:])


def test_command(tree, spec):
    """The command line of a test named in the list."""
    if spec == 'suite':
        return ['sh', os.path.join(tree, 'tests', 'run.sh')]
    if spec.startswith('test-'):
        return [os.path.join(tree, 'build', 'tests', spec)]
    path = os.path.join(tree, 'tests', spec)
    if spec.endswith('.sh'):
        return ['sh', path]
    if spec.endswith('.py'):
        return [PYTHON, path]
    raise ListError('unknown test %r: test-NAME (a unit test binary), '
                    'cli/NAME.sh, fs/NAME.py or suite' % spec)


def check_tests(tree, specs):
    bad = []
    for s in specs:
        try:
            cmd = test_command(tree, s)
        except ListError as x:
            bad.append(str(x))
            continue
        if s.startswith('test-'):
            continue  # built later
        if not os.path.exists(cmd[-1]):
            bad.append('no such test: tests/%s' % s)
    return bad


def run_test(tree, spec, log):
    """Runs one test file: (passed, a short reason when it failed)."""
    cmd = test_command(tree, spec)
    with open(log, 'wb') as out:
        p = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT,
                             stdin=subprocess.DEVNULL, cwd=tree,
                             env=clean_env(tree), start_new_session=True)
        try:
            rc = p.wait(TEST_TIMEOUT)
        except subprocess.TimeoutExpired:
            # its own process group: the test and what it started
            os.killpg(p.pid, signal.SIGTERM)
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
            return False, 'timed out after %ds' % TEST_TIMEOUT
    with open(log, errors='replace') as f:
        lines = f.read().splitlines()
    fails = [ln for ln in lines if ln.startswith('not ok ')]
    if spec == 'suite' and rc != 0:
        fails = [ln.strip() for ln in lines if ln.startswith('    not ok')]
    if fails:
        # "not ok N - what (tests/unit/x.c:12: cond)": the what
        return False, re.sub(r' \((tests/|[a-z-]+\.c:).*$', '',
                             fails[0])[:90]
    if rc != 0:
        return False, 'exit status %d' % rc
    return True, ''


def fmt_time(s):
    return '%dm%02ds' % (s // 60, s % 60)


def table(rows):
    w = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    w[-1] = 0
    out = []
    for n, r in enumerate(rows):
        out.append('  '.join(c.ljust(w[i]) if i < len(r) - 1 else c
                             for i, c in enumerate(r)).rstrip())
        if n == 0:
            out.append('  '.join('-' * x for x in w[:-1]) + '  ' +
                       '-' * len(r[-1]))
    return '\n'.join(out)


def main(argv):
    args = [a for a in argv if not a.startswith('--')]
    opts = set(a for a in argv if a.startswith('--'))
    unknown = opts - {'--full', '--keep', '--check', '--help'}
    if unknown or '--help' in opts:
        print(__doc__.strip())
        return 2 if unknown else 0
    try:
        entries = parse(LIST)
    except ListError as x:
        print('mutate: %s' % x, file=sys.stderr)
        return 2
    if args:
        picked = [e for e in entries
                  if any(e['name'].startswith(a) for a in args)]
        if not picked:
            print('mutate: no mutation named %s' % ' '.join(args),
                  file=sys.stderr)
            return 2
        entries = picked

    problems = [p for p in (locate(TOP, e) for e in entries) if p]
    if problems:
        print('mutate: tests/mutate/mutations.txt is out of date with '
              'the code (see its header):', file=sys.stderr)
        for p in problems:
            print('  ' + p, file=sys.stderr)
        return 2
    if '--check' in opts:
        specs = sorted(set(s for e in entries for s in e['tests']))
        bad = check_tests(TOP, specs)
        for b in bad:
            print('mutate: ' + b, file=sys.stderr)
        if not bad:
            print('%d mutations, each found exactly once' % len(entries))
        return 2 if bad else 0

    t0 = time.monotonic()
    tree = tempfile.mkdtemp(prefix='mreg-mutate-')
    # the multi-user tests run the built programs as other users
    os.chmod(tree, 0o755)
    logs = os.path.join(tree, 'mutate-logs')
    try:
        copy_tree(TOP, tree)
        os.makedirs(logs)
        full = '--full' in opts
        specs = ['suite'] if full else \
            list(dict.fromkeys(s for e in entries for s in e['tests']))
        bad = check_tests(tree, specs)
        if bad:
            for b in bad:
                print('mutate: ' + b, file=sys.stderr)
            return 2
        print('mutate: %d mutations, scratch tree %s' % (len(entries), tree),
              flush=True)
        ok, out = build(tree)
        if not ok:
            print('mutate: the unmutated tree does not build:\n' + out,
                  file=sys.stderr)
            return 2
        # unmutated, every test used must pass, or a kill proves nothing
        failing = []
        for s in specs:
            passed, why = run_test(tree, s, os.path.join(
                logs, 'baseline-' + s.replace('/', '_')))
            if not passed:
                failing.append('%s: %s' % (s, why))
        if failing:
            print('mutate: without any mutation these tests fail (logs in '
                  '%s):' % logs, file=sys.stderr)
            for f in failing:
                print('  ' + f, file=sys.stderr)
            opts.add('--keep')
            return 2
        print('mutate: baseline passes (%d tests, %s)' % (
            len(specs), fmt_time(time.monotonic() - t0)), flush=True)

        rows = [('mutation', 'rule it breaks', 'result', 'caught by')]
        survived = broken = 0
        for i, e in enumerate(entries, 1):
            m0 = time.monotonic()
            path = os.path.join(tree, e['file'])
            with open(path) as f:
                orig = f.read()
            stat = os.stat(path)
            with open(path, 'w') as f:
                f.write(orig.replace(e['find'], e['replace'], 1))
            try:
                ok, out = build(tree)
                if not ok:
                    broken += 1
                    result, by = 'NOT BUILT', out.splitlines()[-1:] or ['']
                    by = by[0][:60]
                    print('mutate: %s does not build:\n%s' % (e['name'],
                                                              out))
                else:
                    result, by = 'SURVIVED', ''
                    for s in (['suite'] if full else e['tests']):
                        log = os.path.join(logs, '%s-%s' % (
                            e['name'], s.replace('/', '_')))
                        passed, why = run_test(tree, s, log)
                        if not passed:
                            result, by = 'killed', '%s: %s' % (s, why)
                            break
                    if result == 'SURVIVED':
                        survived += 1
            finally:
                with open(path, 'w') as f:
                    f.write(orig)
                # newer than the mutated file's objects: rebuilt next time
                os.utime(path, (stat.st_atime, time.time() + 1))
            rows.append((e['name'], e['rule'], result, by))
            print('[%d/%d] %-28s %-9s %s (%s)' % (
                i, len(entries), e['name'], result, by,
                fmt_time(time.monotonic() - m0)), flush=True)
        print()
        print(table(rows))
        print()
        killed = len(entries) - survived - broken
        print('%d mutations: %d killed, %d survived%s (%s)' % (
            len(entries), killed, survived,
            ', %d not built' % broken if broken else '',
            fmt_time(time.monotonic() - t0)))
        if survived or broken:
            opts.add('--keep')
        return 2 if broken else 1 if survived else 0
    finally:
        if '--keep' in opts:
            print('mutate: scratch tree kept: %s (logs in %s)' % (tree, logs))
        else:
            shutil.rmtree(tree, ignore_errors=True)


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
