"""make-store.py — makes tests/compat/store.tar.gz and tests/compat/expected/
with the binaries of $MREG_BUILD: a store that the binaries of a later tree
must open and read as these did (test_compat.sh).

Run once, with the binary of the tree before a change of the on-disk
format or of the code that reads it (issue 16 made it with main 11cf830,
before core/ moved into subdirectories):

	MREG_BUILD=/path/to/old/build /usr/bin/python3 tests/compat/make-store.py

What the store holds: two models; versions pushed with metadata and
sharing chunks (v2 repeats most of v1); promotions and a rollback; model
and version metadata set and unset; a version removed and collected by
gc; a draft (made through a mount, where drafts are made) with a file in
a subdirectory. expected/ holds what the commands of tests/compat/commands
printed on it, and digests.txt the sha256 of every file as `mreg cat` gives
it. Needs root (FUSE) and Debian's /usr/bin/python3.
"""
import hashlib
import os
import random
import shutil
import subprocess
import sys
import tarfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), 'fs'))
from mountlib import MREG, Mount  # noqa: E402

ENV = dict(os.environ, TZ='UTC', LC_ALL='C')


def data(n, seed):
    return random.Random(seed).randbytes(n)


def write(path, b):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, 'wb') as f:
        f.write(b)


def main():
    m = Mount('compat')
    # small chunks (kept in the store: the test opens it with this config)
    # make many records of little data
    conf = os.path.join(HERE, 'mreg.conf')
    m.args = ['-c', conf]
    src = os.path.join(m.tmp, 'src')

    def mreg(*args):
        r = subprocess.run([MREG, '-c', conf, '-q', '--store', m.store] +
                           list(args), env=ENV, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE)
        if r.returncode != 0:
            sys.exit('mreg %s: status %d: %s' %
                     (' '.join(args), r.returncode, r.stderr.decode()))
        return r.stdout

    try:
        m.ensure_store()
        w1, cfg = data(48 << 10, 1), b'{"layers": 12}\n'
        write(os.path.join(src, 'v1', 'weights.bin'), w1)
        write(os.path.join(src, 'v1', 'config.json'), cfg)
        write(os.path.join(src, 'v1', 'tok', 'vocab.txt'), data(6000, 2))
        mreg('push', 'resnet', os.path.join(src, 'v1'), '--metric',
             'accuracy=0.91', '--tag', 'team=vision', '--param', 'lr=0.01',
             '--lineage', 'git_commit=abc123', '--description', 'first')
        # v2 shares its first 32 KiB with v1, and config.json whole
        write(os.path.join(src, 'v2', 'weights.bin'),
              w1[:32 << 10] + data(16 << 10, 3))
        write(os.path.join(src, 'v2', 'config.json'), cfg)
        mreg('push', 'resnet', os.path.join(src, 'v2'), '--metric',
             'accuracy=0.93', '--param', 'lr=0.005')
        write(os.path.join(src, 'v3', 'weights.bin'), data(16 << 10, 4))
        mreg('push', 'resnet', os.path.join(src, 'v3'), '--metric',
             'accuracy=0.89')
        write(os.path.join(src, 'v4', 'weights.bin'), data(24 << 10, 5))
        mreg('push', 'resnet', os.path.join(src, 'v4'))
        write(os.path.join(src, 'b', 'model.onnx'), data(12 << 10, 6))
        mreg('push', 'bert', os.path.join(src, 'b', 'model.onnx'),
             '--version', 'base', '--tag', 'size=small')

        mreg('promote', 'resnet', '1', 'Staging')
        mreg('promote', 'resnet', '2', 'Production')
        mreg('promote', 'resnet', '3', 'Production')
        mreg('rollback', 'resnet', 'Production')
        mreg('promote', 'resnet', '3', 'Staging')
        mreg('promote', 'bert', 'base', 'Production')
        mreg('meta', 'resnet', 'set', 'description', 'an image classifier')
        mreg('meta', 'resnet', 'set', 'tag.owner', 'ml-team')
        mreg('meta', 'resnet/2', 'set', 'tag.reviewed', 'yes')
        mreg('meta', 'resnet/1', 'unset', 'tag.team')
        mreg('rm', 'resnet', '4')
        mreg('gc')

        # a draft: made through a mount, where drafts are made
        m.start()
        draft = m.path('models', 'resnet', 'exp')
        os.mkdir(draft)
        write(os.path.join(draft, 'notes', 'todo.txt'), b'try lr 0.002\n')
        write(os.path.join(draft, 'weights.bin'), data(8 << 10, 7))
        if m.stop() != 0:
            sys.exit('mregfs did not exit 0:\n' + m.log_tail())

        # what test_compat.sh compares
        exp = os.path.join(HERE, 'expected')
        shutil.rmtree(exp, ignore_errors=True)
        os.makedirs(exp)
        with open(os.path.join(HERE, 'commands')) as f:
            for ln in f:
                ln = ln.strip()
                if not ln or ln.startswith('#'):
                    continue
                name, args = ln.split(None, 1)
                with open(os.path.join(exp, name), 'wb') as out:
                    out.write(mreg(*args.split()))
        with open(os.path.join(exp, 'digests.txt'), 'w') as out:
            for v, files in (('resnet/1', ['weights.bin', 'config.json',
                                           'tok/vocab.txt']),
                             ('resnet/2', ['weights.bin', 'config.json']),
                             ('resnet/3', ['weights.bin']),
                             ('resnet/exp', ['weights.bin',
                                             'notes/todo.txt']),
                             ('bert/base', ['model.onnx'])):
                for p in files:
                    b = mreg('cat', v + '/' + p)
                    out.write('%s %s/%s\n' %
                              (hashlib.sha256(b).hexdigest(), v, p))

        # owner root, times of the files as they are: the store is
        # extracted into a fresh directory by the test
        def norm(ti):
            if ti.name.endswith('/lock.mdb'):
                return None  # LMDB's reader table: made at open
            ti.uid = ti.gid = 0
            ti.uname = ti.gname = 'root'
            return ti
        out = os.path.join(HERE, 'store.tar.gz')
        with tarfile.open(out, 'w:gz', compresslevel=9) as tf:
            tf.add(m.store, arcname='store', filter=norm)
        print('%s: %d bytes' % (out, os.path.getsize(out)))
    finally:
        m.close()


if __name__ == '__main__':
    main()
