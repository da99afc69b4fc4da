"""fsstress in a draft (issue 11): four processes each run a seeded random
mix of creates, writes at random offsets (files grow sparse and are
rewritten in place), truncations, reads, fsyncs, closes, renames,
unlinks of open files, mkdirs, rmdirs and symlinks in a draft, and the
same run in a native directory; every call must give what it gives
natively and the trees must end equal. Then the draft is sealed and the
store is fsck-clean. (The full `fsstress -p 4 -n 2000` runs the same way,
in seconds; here n is small to keep the suite quick.)
"""
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mountlib import BUILD, Mount, Tap, run_suite  # noqa: E402

t = Tap()
m = Mount('fsstress')
FSSTRESS = os.path.join(BUILD, 'tests', 'fsstress')
native_top = tempfile.mkdtemp(prefix='mreg-native-')


def stress(seed, name):
    d = m.path('models', 'st', '1', name)
    nat = os.path.join(native_top, name)
    os.mkdir(d)
    os.mkdir(nat)
    r = subprocess.run([FSSTRESS, '-d', d, '-p', '4', '-n', '150', '-s',
                        str(seed), '-c', nat], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True, timeout=600)
    t.ok(r.returncode == 0 and 'agree' in r.stdout,
         'fsstress -p 4 -n 150 -s %d: the draft and a native directory '
         'agree' % seed, r.stdout[-3000:])


def test_stress():
    stress(1, 'a')
    stress(2, 'b')


def test_seal():
    r = subprocess.run(['chmod', 'a-w', m.path('models', 'st', '1')])
    t.eq(r.returncode, 0, 'the draft seals')
    r = m.mreg('fsck', '--full')
    t.ok(r.returncode == 0, 'mreg fsck --full is clean', r.stdout + r.stderr)
    r = subprocess.run(['diff', '-r', '--no-dereference',
                        m.path('models', 'st', '1'), native_top],
                       stdout=subprocess.PIPE, text=True)
    t.ok(r.returncode == 0, 'the sealed version still equals the native '
         'trees', r.stdout[-2000:])


def setup():
    m.start()
    os.mkdir(m.path('models', 'st'))
    os.mkdir(m.path('models', 'st', '1'))


def cleanup():
    subprocess.run(['rm', '-rf', native_top])


if __name__ == '__main__':
    if not os.access(FSSTRESS, os.X_OK):
        t.ok(False, 'fsstress is built', FSSTRESS + ' is missing')
        sys.exit(t.done())
    sys.exit(run_suite(t, m, 'fsstress', setup,
                       [('stress', test_stress), ('seal', test_seal)],
                       cleanup=[cleanup]))
