"""Adversarial pass over the hcmtl CLIs on the smoke preset.

Each case creates one fault in a temporary folder, runs the real command line (a subprocess with a timeout,
`HCMTL_PROGRESS=0`, `OMP_NUM_THREADS=1`) and classifies what happened:

- `clear`: exit != 0 with a message naming the file/field and no traceback; or, where the documented
  behaviour is to skip, a logged warning naming the file (and the result checked, e.g. the skip counted);
- `silent`: exit 0 with a wrong or changed result, or lost data (files of another run changed, a skip not counted);
- `traceback`: a Python traceback for a user error;
- `vague`: exit != 0 without a traceback, but the message does not name the file/field;
- `refused`: a failure where success is the right outcome;
- `ok`: a correct success where success is right.

Usage: `python tools/adversarial.py --out adversarial.csv [--world W] [--only SUBSTR ...] [--keep DIR]`.
The smoke world is `--world`, else `$HCMTL_TEST_WORLD`, else generated once into the work folder.
"""
from __future__ import annotations

import argparse, csv, hashlib, json, os, pickle, shutil, signal, subprocess, sys, tempfile, time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

CATEGORIES = ('media', 'splits', 'checkpoints', 'rundirs', 'configs', 'numerics', 'concurrent')
OUTCOMES = ('clear', 'ok', 'silent', 'traceback', 'vague', 'refused')
ENV = {**os.environ, 'HCMTL_PROGRESS': '0', 'OMP_NUM_THREADS': '1', 'MKL_NUM_THREADS': '1'}
ENV.pop('HCMTL_FAULT', None)
TIMEOUT = 120
_LOCK = __import__('threading').Lock()


@dataclass
class Result:
    rc: int
    out: str
    err: str
    secs: float
    cmd: list = field(default_factory=list)

    @property
    def text(self): return self.out + '\n' + self.err

    @property
    def tb(self): return 'Traceback (most recent call last)' in self.err or 'Traceback (most recent call last)' in self.out

    def last(self) -> str:
        "The last non-empty stderr line (the one-line error), else stdout's."
        for s in (self.err, self.out):
            lines = [l for l in s.splitlines() if l.strip()]
            if lines: return lines[-1].strip()
        return ''

    def line_with(self, *tokens) -> str:
        for l in (self.err + '\n' + self.out).splitlines():
            if any(t and t in l for t in tokens): return l.strip()
        return self.last()


def run(cmd, timeout=TIMEOUT, env=None, cwd=None) -> Result:
    "Run one command line with the pass's environment."
    t = time.time()
    try:
        p = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=timeout,
                           env={**ENV, **(env or {})}, cwd=cwd, errors='replace')
        return Result(p.returncode, p.stdout, p.stderr, time.time() - t, cmd)
    except subprocess.TimeoutExpired as e:
        o = e.stdout.decode(errors='replace') if isinstance(e.stdout, bytes) else (e.stdout or '')
        r = e.stderr.decode(errors='replace') if isinstance(e.stderr, bytes) else (e.stderr or '')
        return Result(124, o, r + f'\n[adversarial: timed out after {timeout}s]', time.time() - t, cmd)


def start(cmd, env=None):
    return subprocess.Popen([str(c) for c in cmd], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**ENV, **(env or {})}, errors='replace')


def finish(p, t0, timeout=TIMEOUT) -> Result:
    try: o, e = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        p.kill(); o, e = p.communicate(); e += '\n[adversarial: timed out]'
    return Result(p.returncode, o, e, time.time() - t0, p.args)


# ---------------------------------------------------------------- verdicts
def _named(r: Result, tokens) -> bool:
    msg = r.text
    return any(str(t) in msg for t in tokens)


def expect_fail(r: Result, *tokens, intact=None):
    "A user error: exit != 0, one line naming one of `tokens`, no traceback; `intact` files unchanged."
    if r.tb: return 'traceback', r.last()
    lost = _changed(intact)
    if lost: return 'silent', f'changed: {lost}; ' + r.last()
    if r.rc == 0: return 'silent', 'exit 0: ' + r.last()
    if tokens and not _named(r, tokens): return 'vague', r.last()
    return 'clear', (r.line_with(*tokens) if tokens else r.last())


def expect_warn(r: Result, *tokens, good=True, intact=None, refuse_ok=True):
    "A documented skip: exit 0 with a warning naming one of `tokens` and a right result (`good`), or a clear refusal."
    if r.tb: return 'traceback', r.last()
    lost = _changed(intact)
    if lost: return 'silent', f'changed: {lost}; ' + r.last()
    if r.rc != 0:
        if refuse_ok and _named(r, tokens): return 'clear', r.last()
        return ('vague' if refuse_ok else 'refused'), r.last()
    if not _named(r, tokens): return 'silent', 'no warning naming ' + ' / '.join(map(str, tokens))[:80] + ': ' + r.last()
    if good is not True: return 'silent', f'warned but {good}'
    return 'clear', r.line_with(*tokens)


def expect_ok(r: Result, good=True, intact=None):
    "A right success: exit 0 and `good` (True, or the reason the result is wrong)."
    if r.tb: return 'traceback', r.last()
    lost = _changed(intact)
    if lost: return 'silent', f'changed: {lost}; ' + r.last()
    if r.rc != 0: return 'refused', r.last()
    if good is not True: return 'silent', str(good)
    return 'ok', r.last()


def sha(p: Path) -> str:
    "Content hash; a run's config.yaml without its `out:` line (a copied run records its new place)."
    if not p.is_file(): return '<dir>' if p.is_dir() else '<none>'
    b = p.read_bytes()
    if p.name == 'config.yaml': b = b''.join(l for l in b.splitlines(True) if not l.startswith(b'out:'))
    return hashlib.sha256(b).hexdigest()


class Snap(dict):
    "Hashes of the files under some folders, to tell data loss."
    def __init__(self, *roots):
        super().__init__()
        for root in roots:
            for f in sorted(Path(root).rglob('*')):
                if f.is_file() and 'tensorboard' not in f.parts and f.name != 'environment.json': self[f] = sha(f)


def _changed(snap) -> str:
    if not snap: return ''
    bad = [f for f, h in snap.items() if sha(f) != h]
    return ', '.join(f.name for f in bad[:4]) + (f' (+{len(bad) - 4})' if len(bad) > 4 else '')


def lines(p: Path) -> int: return len(p.read_text().splitlines()) if p.exists() else -1


# ---------------------------------------------------------------- the world and base runs
class Ctx:
    def __init__(self, work: Path, world: Path|None):
        self.work, self.n = work, 0
        self.world = world or self._make_world(work / 'world')
        self.P = work / 'base' / 'P'
        self.F = work / 'base' / 'F'

    def _make_world(self, w: Path) -> Path:
        if not (w / 'world.json').exists():
            r = run(['hcmtl-synth', '--preset', 'smoke', '--out', w, '--workers', '1'], timeout=600)
            if r.rc: sys.exit(f'adversarial: could not build the smoke world: {r.last()}')
        if not (w / 'teacher.pt').exists():
            code = ("from pathlib import Path\nfrom hcmtl.core import get_preset\nfrom hcmtl.teachers import train_synth_teacher\n"
                    "if __name__ == '__main__':\n    cfg = get_preset('smoke'); t = cfg.teacher; w = Path(%r)\n"
                    "    train_synth_teacher(w, w / 'teacher.pt', epochs=t.train_epochs, size=t.train_size, width=t.width,"
                    " seed=0, device='cpu', verbose=False)\n") % str(w)
            (self.work / 'mkteacher.py').write_text(code)
            r = run([sys.executable, self.work / 'mkteacher.py'], timeout=600)
            if r.rc: sys.exit(f'adversarial: could not train the smoke teacher: {r.err[-2000:]}')
        return w

    def base_runs(self):
        if not (self.P / 'encoder.pt').exists():
            r = run(self.pre(self.P))
            if r.rc: sys.exit(f'adversarial: base pretraining failed: {r.err[-2000:]}')
        if not (self.F / 'metrics.json').exists():
            r = run(self.ft(self.F))
            if r.rc: sys.exit(f'adversarial: base fine-tuning failed: {r.err[-2000:]}')

    def tmp(self, name) -> Path:
        with _LOCK: self.n += 1; n = self.n
        d = self.work / 'cases' / f'{n:03d}'  # no case name in the path: tokens must not match it
        shutil.rmtree(d, ignore_errors=True); d.mkdir(parents=True)
        return d

    def copy_world(self, d: Path, parts=('ucf101', 'hmdb51', 'kinetics', 'world.json', 'teacher.pt', 'manifest.csv', 'lip', 'parts')) -> Path:
        w = d / 'world'; w.mkdir()
        for p in parts:
            s = self.world / p
            if s.is_dir(): shutil.copytree(s, w / p, symlinks=True)
            elif s.exists(): shutil.copy2(s, w / p)
        return w

    def copy_run(self, src: Path, d: Path, name=None) -> Path:
        dst = d / (name or src.name); shutil.copytree(src, dst, symlinks=True); return dst

    def pre(self, out, *over, data=None, extra=()):
        return ['hcmtl-pretrain', '--preset', 'smoke', '--data', data or self.world, '--out', out, '--device', 'cpu',
                *extra, *over]

    def ft(self, out, *over, pretrained=None, data=None, dataset='ucf101', extra=()):
        return ['hcmtl-finetune', '--pretrained', pretrained or self.P, '--dataset', dataset, '--data', data or self.world,
                '--out', out, '--device', 'cpu', *extra, *over]


CASES = []


def case(cat, name, fast=False):
    "Register a case: `f(ctx, d) -> (outcome, message)`; `fast` cases need no base run and run in tests."
    assert cat in CATEGORIES
    def deco(f):
        CASES.append((cat, name, f, fast)); return f
    return deco


# ---------------------------------------------------------------- fault makers
def write_frames(p: Path, n: int, size=48):
    from hcmtl.video import write_video
    rng = np.random.default_rng(n)
    write_video(p, rng.integers(0, 255, (n, size, size, 3), dtype=np.uint8), codec='mpeg4')
    return p


class Evil:
    "Unpickling this creates the marker file (it must never happen)."
    def __init__(self, marker): self.marker = str(marker)
    def __reduce__(self): return (os.system, (f'touch {self.marker}',))


def evil_pt(p: Path, marker: Path) -> Path:
    import torch
    torch.save({'state_dict': Evil(marker), 'model': Evil(marker)}, p)
    return p


def flip(p: Path, n=64, at=None):
    b = bytearray(p.read_bytes()); rng = np.random.default_rng(0)
    lo = at if at is not None else len(b) // 2
    for i in rng.integers(lo, len(b), n): b[i] ^= 0xFF
    p.write_bytes(bytes(b))


def first_video(root: Path, ext=('.mp4', '.avi')):
    return sorted(f for f in root.rglob('*') if f.suffix in ext)[0]


def kin_copy(ctx, d):
    k = d / 'kinetics'; shutil.copytree(ctx.world / 'kinetics', k); return k


def check(root, *a): return ['hcmtl-check-videos', root, '--workers', '0', *a]


# ================================================================ media
@case('media', 'check-videos: zero-byte video')
def _(ctx, d):
    k = kin_copy(ctx, d); v = first_video(k); v.write_bytes(b'')
    r = run(check(k)); return expect_fail(r, v.name)


@case('media', 'check-videos: truncated video (half its bytes)')
def _(ctx, d):
    k = kin_copy(ctx, d); v = first_video(k); b = v.read_bytes(); v.write_bytes(b[:len(b) // 2])
    r = run(check(k)); return expect_fail(r, v.name)


@case('media', 'check-videos: 1-frame video')
def _(ctx, d):
    k = kin_copy(ctx, d); v = write_frames(k / 'train' / 'walk' / 'one_frame.avi', 1)
    r = run(check(k, '--preset', 'smoke')); return expect_fail(r, v.name)


@case('media', 'check-videos --preset smoke: 3-frame video (shorter than the window)')
def _(ctx, d):
    k = kin_copy(ctx, d); v = write_frames(k / 'train' / 'walk' / 'three_frames.avi', 3)
    r = run(check(k, '--preset', 'smoke')); return expect_fail(r, v.name)


@case('media', 'check-videos: garbage bytes named .mp4')
def _(ctx, d):
    k = kin_copy(ctx, d); v = k / 'train' / 'walk' / 'garbage.mp4'; v.write_bytes(os.urandom(5000))
    r = run(check(k)); return expect_fail(r, v.name)


@case('media', 'check-videos: text file named .mp4')
def _(ctx, d):
    k = kin_copy(ctx, d); v = k / 'train' / 'walk' / 'notes.mp4'; v.write_text('not a video\n' * 20)
    r = run(check(k)); return expect_fail(r, v.name)


def _blacklisted_name(ctx, d, name: str, *tokens):
    "An empty video called `name` in the copied Kinetics tree: check-videos names it, its blacklist holds exactly it."
    k = kin_copy(ctx, d); v = k / 'train' / 'walk' / name; v.write_bytes(b'')
    bl = d / 'bl.txt'; o = expect_fail(run(check(k, '--out', bl)), *tokens)
    good = _blacklist_ok(bl, v, k) if o[0] == 'clear' else True
    return ('silent', good) if good is not True else o


@case('media', 'check-videos: bad video with a tab in its name (blacklist names it exactly)')
def _(ctx, d): return _blacklisted_name(ctx, d, 'tab\there.mp4', 'tab', 'here')


@case('media', 'check-videos: bad video with a newline in its name')
def _(ctx, d): return _blacklisted_name(ctx, d, 'new\nline.mp4', 'new', 'line.mp4')


def _blacklist_ok(bl: Path, v: Path, root: Path):
    "The blacklist, read back by the package, names exactly the bad file."
    code = ("import sys\nfrom pathlib import Path\nimport hcmtl.datasets as D\n"
            "f = getattr(D, 'read_blacklist', None) or getattr(D, 'load_blacklist', None)\n"
            "print('NOAPI' if f is None else repr(sorted(map(str, f(Path(sys.argv[1]))))))\n")
    r = run([sys.executable, '-c', code, bl])
    if r.rc or 'NOAPI' in r.out:  # fall back to the raw text: one entry per bad file, no stray split
        raw = bl.read_text(errors='replace') if bl.exists() else ''
        return True if (v.name in raw or repr(v.name)[1:-1] in raw or json.dumps(v.name)[1:-1] in raw) else f'blacklist does not name {v.name!r}: {raw[:80]!r}'
    names = eval(r.out.strip())
    if any(n.endswith(v.name) for n in names): return True
    return f'blacklist read back as {names} (bad file {v.name!r})'


@case('media', 'check-videos: .mov video is checked or named')
def _(ctx, d):
    k = kin_copy(ctx, d); v = k / 'train' / 'walk' / 'clip.mov'; v.write_bytes(b'')
    r = run(check(k)); return expect_fail(r, v.name)


@case('media', 'check-videos: symlink loop')
def _(ctx, d):
    k = kin_copy(ctx, d); (k / 'train' / 'loop').symlink_to(k / 'train')
    r = run(check(k), timeout=60)
    if r.rc == 124: return 'silent', 'hangs on the link loop'
    return expect_warn(r, 'loop')


@case('media', 'check-videos: dangling symlink video')
def _(ctx, d):
    k = kin_copy(ctx, d); v = k / 'train' / 'walk' / 'gone.mp4'; v.symlink_to(d / 'nowhere.mp4')
    r = run(check(k)); return expect_fail(r, v.name)


@case('media', 'check-videos: directory named x.mp4')
def _(ctx, d):
    k = kin_copy(ctx, d); (k / 'train' / 'walk' / 'dir.mp4').mkdir()
    write_frames(k / 'train' / 'walk' / 'dir.mp4' / 'inner.avi', 16)
    r = run(check(k)); return expect_ok(r)


@case('media', 'check-videos: missing root', fast=True)
def _(ctx, d):
    r = run(check(d / 'no_such_root')); return expect_fail(r, 'no_such_root')


@case('media', 'check-videos: --min-frames -3', fast=True)
def _(ctx, d):
    r = run(check(ctx.world / 'ucf101', '--min-frames', '-3')); return expect_fail(r, 'min-frames', 'min_frames')


@case('media', 'check-videos: clean smoke world passes')
def _(ctx, d):
    r = run(check(ctx.world / 'ucf101', '--preset', 'smoke', '--out', d / 'bl.txt')); return expect_ok(r)


@case('media', 'pretrain: zero-byte video in the pool (skip named)')
def _(ctx, d):
    w = ctx.copy_world(d); v = first_video(w / 'kinetics'); v.write_bytes(b'')
    r = run(ctx.pre(d / 'run', data=w)); return expect_warn(r, v.name)


@case('media', 'pretrain: 3-frame video in the pool (short clip named)')
def _(ctx, d):
    w = ctx.copy_world(d); v = first_video(w / 'kinetics'); write_frames(v.with_suffix('.avi'), 3); v.unlink()
    r = run(ctx.pre(d / 'run', data=w)); return expect_warn(r, v.with_suffix('.avi').name)


@case('media', 'finetune: zero-byte test video dropped and counted')
def _(ctx, d):
    w = ctx.copy_world(d)
    rel = (w / 'ucf101' / 'ucfTrainTestlist' / 'testlist01.txt').read_text().split()[0]
    v = w / 'ucf101' / 'UCF-101' / rel; v.write_bytes(b'')
    out = d / 'run'; r = run(ctx.ft(out, data=w))
    return expect_warn(r, v.name, good=_skipped(out, 1), refuse_ok=False)


def _skipped(run_dir: Path, n: int):
    m = run_dir / 'metrics.json'
    if not m.exists(): return 'no metrics.json'
    s = json.loads(m.read_text()).get('skipped_videos')
    if isinstance(s, dict): s = s.get('test', s)
    s = len(s) if isinstance(s, (list, dict)) else s
    return True if s == n else f'metrics.json skipped_videos={s}, expected {n}'


@case('media', 'eval: zero-byte test video after fine-tuning dropped and counted')
def _(ctx, d):
    w = ctx.copy_world(d); F = ctx.copy_run(ctx.F, d)
    for f in ('config.yaml', 'finetune.json'):  # the copied run reads the copied world
        if (F / f).exists(): (F / f).write_text((F / f).read_text().replace(str(ctx.world), str(w)))
    rel = (w / 'ucf101' / 'ucfTrainTestlist' / 'testlist01.txt').read_text().split()[0]
    v = w / 'ucf101' / 'UCF-101' / rel; v.write_bytes(b'')
    r = run(['hcmtl-eval', '--run', F, '--device', 'cpu'])
    good = True if '"skipped_videos": 1' in r.out else 'no "skipped_videos": 1 in the summary'
    return expect_warn(r, v.name, good=good, refuse_ok=False)


@case('media', 'transcode: zero-byte video in the source')
def _(ctx, d):
    s = d / 'src'; shutil.copytree(ctx.world / 'hmdb51', s); v = first_video(s); v.write_bytes(b'')
    r = run(['hcmtl-transcode', s, d / 'dst', '--workers', '1']); return expect_fail(r, v.name)


@case('media', 'transcode: destination inside the source does not nest')
def _(ctx, d):
    s = d / 'src'; shutil.copytree(ctx.world / 'hmdb51', s)
    r = run(['hcmtl-transcode', s, s / 'out', '--workers', '1'])
    nested = list((s / 'out').rglob('out')) if (s / 'out').exists() else []
    if r.rc != 0 and not r.tb: return expect_fail(r, 'out', str(s))
    return expect_ok(r, good=True if not nested else f'nested {nested[0]}')


@case('media', 'transcode: rerun with another --short-side redoes the outputs')
def _(ctx, d):
    s = d / 'src'; shutil.copytree(ctx.world / 'hmdb51', s); dst = d / 'dst'
    r1 = run(['hcmtl-transcode', s, dst, '--workers', '1', '--short-side', '32'])
    if r1.rc: return expect_ok(r1)
    v = first_video(dst); h1 = sha(v)
    r = run(['hcmtl-transcode', s, dst, '--workers', '1', '--short-side', '24'])
    return expect_ok(r, good=True if sha(v) != h1 else f'{v.name} kept from the --short-side 32 run')


@case('media', 'transcode: missing source', fast=True)
def _(ctx, d):
    r = run(['hcmtl-transcode', d / 'nosrc', d / 'dst']); return expect_fail(r, 'nosrc')


@case('media', 'transcode: killed mid-run, rerun leaves every copied file whole')
def _(ctx, d):
    s = d / 'src'; shutil.copytree(ctx.world / 'ucf101', s); dst = d / 'dst'
    cmd = ['hcmtl-transcode', s, dst, '--workers', '1']
    t0 = time.time(); p = start(cmd)
    while time.time() - t0 < 60 and not (dst.exists() and any(f.is_file() for f in dst.rglob('*'))): time.sleep(0.05)
    time.sleep(0.3); p.kill(); p.communicate()
    r = run(cmd)
    bad = [f.name for f in s.rglob('*.txt') if not (dst / f.relative_to(s)).exists()
           or (dst / f.relative_to(s)).read_bytes() != f.read_bytes()]
    stubs = [f.name for f in dst.rglob('*') if f.is_file() and f.stat().st_size == 0]
    return expect_ok(r, good=True if not bad and not stubs else f'after the rerun: differing {bad[:3]}, empty {stubs[:3]}')


# ================================================================ splits
def _ucf(w): return w / 'ucf101' / 'ucfTrainTestlist'


def _ucf_copy(ctx, d) -> tuple:
    "A copy of the world (UCF101 and world.json) for one case, and its split-list folder."
    w = ctx.copy_world(d, parts=('ucf101', 'world.json')); return w, _ucf(w)


def _ft_on(ctx, d, w, fold=None) -> Result:
    return run(ctx.ft(d / 'run', data=w, **({'extra': ('--fold', str(fold))} if fold else {})))


def _ucf_case(ctx, d, edit, *tokens, check=None, fold=None):
    "Fine-tune on a copied world whose UCF101 split lists `edit(L)` changed; `check` (default expect_fail) on it."
    w, L = _ucf_copy(ctx, d); edit(L)
    return (check or expect_fail)(_ft_on(ctx, d, w, fold), *tokens)


def _append(f: Path, line: str):
    with open(f, 'a') as fh: fh.write(line + '\n')


def _first(f: Path, sep=None) -> str: return f.read_text().split(sep)[0]


@case('splits', 'ucf101: train/test overlap')
def _(ctx, d):
    w, L = _ucf_copy(ctx, d); test = _first(L / 'testlist01.txt')
    _append(L / 'trainlist01.txt', f'{test} 1')
    return expect_warn(_ft_on(ctx, d, w), test.split('/')[-1], 'overlap')


@case('splits', 'ucf101: duplicated train line')
def _(ctx, d):
    w, L = _ucf_copy(ctx, d); first = _first(L / 'trainlist01.txt', '\n')
    _append(L / 'trainlist01.txt', first)
    return expect_warn(_ft_on(ctx, d, w), first.split()[0].split('/')[-1], 'duplicate', 'repeated')


@case('splits', 'ucf101: split lists a missing video')
def _(ctx, d): return _ucf_case(ctx, d, lambda L: _append(L / 'trainlist01.txt', 'WaveOne/v_WaveOne_g99_c01.avi 1'),
                                'v_WaveOne_g99_c01', check=expect_warn)


@case('splits', 'ucf101: empty test list')
def _(ctx, d): return _ucf_case(ctx, d, lambda L: (L / 'testlist01.txt').write_text(''), 'testlist01', '0 test videos')


@case('splits', 'ucf101: missing classInd.txt')
def _(ctx, d): return _ucf_case(ctx, d, lambda L: (L / 'classInd.txt').unlink(), 'classInd')


@case('splits', 'ucf101: label 99 not in classInd')
def _(ctx, d):
    def edit(L):
        t = (L / 'trainlist01.txt').read_text().splitlines(); t[0] = t[0].split()[0] + ' 99'
        (L / 'trainlist01.txt').write_text('\n'.join(t) + '\n')
    return _ucf_case(ctx, d, edit, 'trainlist01', '99')


@case('splits', 'ucf101: malformed line')
def _(ctx, d): return _ucf_case(ctx, d, lambda L: _append(L / 'trainlist01.txt', 'this is not a split line at all'),
                                'trainlist01')


@case('splits', 'ucf101: CRLF line endings are read')
def _(ctx, d):
    def edit(L):
        for f in L.glob('*.txt'): f.write_bytes(f.read_bytes().replace(b'\r\n', b'\n').replace(b'\n', b'\r\n'))
    return _ucf_case(ctx, d, edit, check=lambda r: expect_ok(r, good=_skipped(d / 'run', 0)))


@case('splits', 'ucf101: --fold 4', fast=True)
def _(ctx, d):
    r = run(ctx.ft(d / 'run', pretrained='none', extra=('--preset', 'smoke', '--fold', '4')))
    return expect_fail(r, 'fold')


@case('splits', 'ucf101: missing trainlist02.txt with --fold 2')
def _(ctx, d):
    return _ucf_case(ctx, d, lambda L: (L / 'trainlist02.txt').unlink(), 'trainlist02', fold=2)


@case('splits', 'hmdb51: missing class split file')
def _(ctx, d):
    w = ctx.copy_world(d, parts=('hmdb51', 'world.json'))
    f = w / 'hmdb51' / 'testTrainMulti_7030_splits' / 'push_test_split1.txt'; f.unlink()
    r = run(ctx.ft(d / 'run', data=w, dataset='hmdb51')); return expect_warn(r, 'push')


@case('splits', 'hmdb51: bad tag value 7')
def _(ctx, d):
    w = ctx.copy_world(d, parts=('hmdb51', 'world.json'))
    f = w / 'hmdb51' / 'testTrainMulti_7030_splits' / 'punch_test_split1.txt'
    t = f.read_text().splitlines(); t[0] = t[0].split()[0] + ' 7 '; f.write_text('\n'.join(t) + '\n')
    r = run(ctx.ft(d / 'run', data=w, dataset='hmdb51')); return expect_fail(r, 'punch_test_split1')


@case('splits', 'hmdb51: duplicated line')
def _(ctx, d):
    w = ctx.copy_world(d, parts=('hmdb51', 'world.json'))
    f = w / 'hmdb51' / 'testTrainMulti_7030_splits' / 'punch_test_split1.txt'
    first = f.read_text().splitlines()[0]
    with open(f, 'a') as g: g.write(first + '\n')
    r = run(ctx.ft(d / 'run', data=w, dataset='hmdb51')); return expect_warn(r, first.split()[0])


@case('splits', 'data root without ucf101 layout', fast=True)
def _(ctx, d):
    (d / 'empty').mkdir()
    r = run(ctx.ft(d / 'run', pretrained='none', data=d / 'empty', extra=('--preset', 'smoke')))
    return expect_fail(r, 'empty', 'ucfTrainTestlist', 'classInd')


# ================================================================ checkpoints
def _pre_again(ctx, P, *over): return run(['hcmtl-pretrain', '--resume', P, '--device', 'cpu', *over])


@case('checkpoints', 'bogus ckpt-99999999.pt + ckpt-99999998.pt dir, then resume: real checkpoints kept')
def _(ctx, d):
    P = ctx.copy_run(ctx.P, d); (P / 'done.json').unlink(missing_ok=True); (P / 'done.json.sha256').unlink(missing_ok=True)
    ck = P / 'checkpoints'; real = sorted(ck.glob('ckpt-*.pt'))
    (ck / 'ckpt-99999999.pt').write_bytes(b''); (ck / 'ckpt-99999998.pt').mkdir()
    r = _pre_again(ctx, P, 'pretrain.max_steps=8')
    left = [p for p in ck.glob('ckpt-*.pt') if p.is_file() and p.stat().st_size > 0]
    good = True if left else 'no loadable checkpoint left after pruning'
    return expect_warn(r, 'ckpt-99999999', 'ckpt-99999998', good=good)


@case('checkpoints', 'truncated newest checkpoint: resume falls back with a warning')
def _(ctx, d):
    P = ctx.copy_run(ctx.P, d); (P / 'done.json').unlink(missing_ok=True); (P / 'done.json.sha256').unlink(missing_ok=True)
    ck = sorted((P / 'checkpoints').glob('ckpt-*.pt'))[-1]
    import shutil as _s; new = ck.with_name('ckpt-00000003.pt'); _s.copy(ck, new)
    new.write_bytes(new.read_bytes()[:1000])
    r = _pre_again(ctx, P)
    return expect_warn(r, new.name)


@case('checkpoints', 'bit-flipped encoder.pt given to finetune')
def _(ctx, d):
    P = ctx.copy_run(ctx.P, d); flip(P / 'encoder.pt')
    r = run(ctx.ft(d / 'run', pretrained=P)); return expect_fail(r, 'encoder.pt')


@case('checkpoints', 'bit-flipped encoder.pt given as a file')
def _(ctx, d):
    P = ctx.copy_run(ctx.P, d); flip(P / 'encoder.pt')
    r = run(ctx.ft(d / 'run', pretrained=P / 'encoder.pt')); return expect_fail(r, 'encoder.pt')


@case('checkpoints', 'missing encoder.pt.sha256 warns')
def _(ctx, d):
    P = ctx.copy_run(ctx.P, d); (P / 'encoder.pt.sha256').unlink()
    r = run(ctx.ft(d / 'run', pretrained=P)); return expect_warn(r, 'sha256', 'checksum')


@case('checkpoints', 'bit-flipped best.pt scored by hcmtl-eval')
def _(ctx, d):
    F = ctx.copy_run(ctx.F, d); flip(F / 'best.pt')
    r = run(['hcmtl-eval', '--run', F, '--device', 'cpu']); return expect_fail(r, 'best.pt')


@case('checkpoints', 'bit-flipped best.pt without its checksum file')
def _(ctx, d):
    F = ctx.copy_run(ctx.F, d); flip(F / 'best.pt'); (F / 'best.pt.sha256').unlink()
    r = run(['hcmtl-eval', '--run', F, '--device', 'cpu']); return expect_warn(r, 'best.pt')


@case('checkpoints', 'missing best.pt.sha256 warns')
def _(ctx, d):
    F = ctx.copy_run(ctx.F, d); (F / 'best.pt.sha256').unlink()
    r = run(['hcmtl-eval', '--run', F, '--device', 'cpu']); return expect_warn(r, 'sha256', 'checksum')


@case('checkpoints', 'malicious pickle as encoder.pt does not execute', fast=True)
def _(ctx, d):
    m = d / 'PWNED'; p = evil_pt(d / 'encoder.pt', m)
    r = run(ctx.ft(d / 'run', pretrained=p, extra=('--preset', 'smoke')))
    if m.exists(): return 'silent', 'the pickle EXECUTED (marker file created)'
    return expect_fail(r, 'encoder.pt')


@case('checkpoints', 'malicious pickle as --teacher does not execute', fast=True)
def _(ctx, d):
    m = d / 'PWNED'; p = evil_pt(d / 'evil_teacher.pt', m)
    r = run(['hcmtl-pretrain', '--preset', 'smoke', '--data', ctx.world, '--teacher', p, '--out', d / 'run', '--device', 'cpu'])
    if m.exists(): return 'silent', 'the pickle EXECUTED (marker file created)'
    return expect_fail(r, 'evil_teacher.pt')


@case('checkpoints', 'malicious pickle as newest checkpoint does not execute')
def _(ctx, d):
    P = ctx.copy_run(ctx.P, d); (P / 'done.json').unlink(missing_ok=True); (P / 'done.json.sha256').unlink(missing_ok=True)
    m = d / 'PWNED'; evil_pt(P / 'checkpoints' / 'ckpt-00000003.pt', m)
    r = _pre_again(ctx, P)
    if m.exists(): return 'silent', 'the pickle EXECUTED (marker file created)'
    return expect_warn(r, 'ckpt-00000003')


@case('checkpoints', 'malicious pickle as best.pt does not execute')
def _(ctx, d):
    F = ctx.copy_run(ctx.F, d); m = d / 'PWNED'; evil_pt(F / 'best.pt', m); (F / 'best.pt.sha256').unlink()
    r = run(['hcmtl-eval', '--run', F, '--device', 'cpu'])
    if m.exists(): return 'silent', 'the pickle EXECUTED (marker file created)'
    return expect_fail(r, 'best.pt')


@case('checkpoints', '--pretrained missing file', fast=True)
def _(ctx, d):
    r = run(ctx.ft(d / 'run', pretrained=d / 'nope.pt', extra=('--preset', 'smoke'))); return expect_fail(r, 'nope.pt')


@case('checkpoints', '--pretrained a text file', fast=True)
def _(ctx, d):
    p = d / 'enc.pt'; p.write_text('hello')
    r = run(ctx.ft(d / 'run', pretrained=p, extra=('--preset', 'smoke'))); return expect_fail(r, 'enc.pt')


@case('checkpoints', '--teacher missing file', fast=True)
def _(ctx, d):
    r = run(['hcmtl-pretrain', '--preset', 'smoke', '--data', ctx.world, '--teacher', d / 'noteacher.pt', '--out', d / 'run', '--device', 'cpu'])
    return expect_fail(r, 'noteacher.pt')


@case('checkpoints', '--teacher is an encoder.pt')
def _(ctx, d):
    r = run(['hcmtl-pretrain', '--preset', 'smoke', '--data', ctx.world, '--teacher', ctx.P / 'encoder.pt', '--out', d / 'run', '--device', 'cpu'])
    return expect_fail(r, 'encoder.pt')


@case('checkpoints', '--pretrained a fine-tuning run')
def _(ctx, d):
    r = run(ctx.ft(d / 'run', pretrained=ctx.F)); return expect_fail(r, str(ctx.F))


# ================================================================ run directories
def _issue_loss(d, P, r):
    "encoder.pt, done.json and log.csv of P untouched."
    return expect_fail(r, str(P), P.name)


@case('rundirs', 'pretrain --out onto a finished run without checkpoints/ (same config)')
def _(ctx, d):
    P = ctx.copy_run(ctx.P, d); shutil.rmtree(P / 'checkpoints'); n = lines(P / 'log.csv'); h = sha(P / 'encoder.pt')
    r = run(ctx.pre(P))
    good = True if (lines(P / 'log.csv') >= n and sha(P / 'encoder.pt') == h) else \
        f'log.csv {n} -> {lines(P / "log.csv")} lines, encoder.pt {"same" if sha(P / "encoder.pt") == h else "changed"}'
    if r.rc == 0: return expect_ok(r, good=good)
    return expect_fail(r, str(P)) if good is True else ('silent', good)


@case('rundirs', 'pretrain --out onto another run (other seed)')
def _(ctx, d):
    P = ctx.copy_run(ctx.P, d); s = Snap(P)
    r = run(ctx.pre(P, extra=('--seed', '7'))); return expect_fail(r, 'seed', intact=s)


@case('rundirs', 'pretrain --out onto a fine-tuning run')
def _(ctx, d):
    F = ctx.copy_run(ctx.F, d); s = Snap(F)
    r = run(ctx.pre(F)); return expect_fail(r, str(F), intact=s)


@case('rundirs', 'finetune --out onto a pretraining run')
def _(ctx, d):
    P = ctx.copy_run(ctx.P, d); s = Snap(P)
    r = run(ctx.ft(P, pretrained=ctx.P)); return expect_fail(r, str(P), intact=s)


@case('rundirs', 'finetune --out onto its own pretraining run dir')
def _(ctx, d):
    P = ctx.copy_run(ctx.P, d); s = Snap(P)
    r = run(ctx.ft(P, pretrained=P)); return expect_fail(r, str(P), intact=s)


@case('rundirs', 'finetune --out onto another fine-tuning run (hmdb51)')
def _(ctx, d):
    F = ctx.copy_run(ctx.F, d); s = Snap(F)
    r = run(ctx.ft(F, dataset='hmdb51')); return expect_fail(r, 'dataset', 'hmdb51', intact=s)


@case('rundirs', 'same pretrain command again on a finished run: nothing changes')
def _(ctx, d):
    P = ctx.copy_run(ctx.P, d); s = Snap(P)
    r = run(ctx.pre(P)); return expect_ok(r, intact=s)


@case('rundirs', 'pretrain --out onto a folder with user files')
def _(ctx, d):
    o = d / 'mine'; o.mkdir(); (o / 'notes.txt').write_text('my notes'); s = Snap(o)
    r = run(ctx.pre(o))
    if r.rc == 0: return expect_ok(r, good=True if (o / 'notes.txt').read_text() == 'my notes' else 'notes.txt changed')
    return expect_fail(r, 'mine', intact=s)


@case('rundirs', 'pretrain --out is a regular file', fast=True)
def _(ctx, d):
    o = d / 'afile'; o.write_text('x')
    r = run(ctx.pre(o)); return expect_fail(r, 'afile')


@case('rundirs', 'failed start leaves no stray run folder', fast=True)
def _(ctx, d):
    o = d / 'newrun'; r = run(ctx.pre(o, 'pretrain.batch_size=-4'))
    if o.exists() and any(o.iterdir()): return 'silent', f'stray {o.name}/ with {[p.name for p in o.iterdir()]}'
    return expect_fail(r, 'batch_size')


@case('rundirs', 'pretrain --resume a fine-tuning run')
def _(ctx, d):
    F = ctx.copy_run(ctx.F, d); s = Snap(F)
    r = run(['hcmtl-pretrain', '--resume', F, '--device', 'cpu']); return expect_fail(r, str(F), intact=s)


@case('rundirs', 'finetune --resume a finished fine-tuning run')
def _(ctx, d):
    F = ctx.copy_run(ctx.F, d); s = Snap(F)
    r = run(['hcmtl-finetune', '--resume', F, '--device', 'cpu'])
    if r.rc == 0: return expect_ok(r, intact=s)
    return expect_fail(r, str(F), intact=s)


@case('rundirs', 'finetune --resume a pretraining run')
def _(ctx, d):
    P = ctx.copy_run(ctx.P, d); s = Snap(P)
    r = run(['hcmtl-finetune', '--resume', P, '--device', 'cpu']); return expect_fail(r, str(P), intact=s)


@case('rundirs', '--resume a missing directory', fast=True)
def _(ctx, d):
    r = run(['hcmtl-pretrain', '--resume', d / 'gone', '--device', 'cpu']); return expect_fail(r, 'gone')


@case('rundirs', 'hcmtl-eval --run a pretraining run')
def _(ctx, d):
    P = ctx.copy_run(ctx.P, d); s = Snap(P)
    r = run(['hcmtl-eval', '--run', P, '--device', 'cpu']); return expect_fail(r, str(P), intact=s)


@case('rundirs', 'hcmtl-eval --run a missing directory', fast=True)
def _(ctx, d):
    r = run(['hcmtl-eval', '--run', d / 'gone']); return expect_fail(r, 'gone')


@case('rundirs', 'run config.yaml replaced by garbage, then rerun')
def _(ctx, d):
    P = ctx.copy_run(ctx.P, d); (P / 'config.yaml').write_text(': : [unclosed\n'); s = Snap(P)
    r = run(ctx.pre(P)); return expect_fail(r, 'config.yaml', intact=s)


@case('rundirs', 'run.json deleted, then --out onto it with another seed')
def _(ctx, d):
    P = ctx.copy_run(ctx.P, d); (P / 'run.json').unlink(); s = Snap(P)
    r = run(ctx.pre(P, extra=('--seed', '3'))); return expect_fail(r, str(P), 'seed', intact=s)


@case('rundirs', 'saved config.yaml records the real --out')
def _(ctx, d):
    import yaml
    out = d / 'myrun'; r = run(ctx.pre(out))
    got = yaml.safe_load((out / 'config.yaml').read_text()).get('out') if (out / 'config.yaml').exists() else None
    return expect_ok(r, good=True if got and Path(got).resolve() == out.resolve() else f'config.yaml out: {got!r}')


# ================================================================ configs
def _cfg(ctx, d, *over, extra=(), token=None):
    r = run(ctx.pre(d / 'run', *over, extra=extra), timeout=90)
    key = token or (over[0].split('=')[0] if over else '')
    o = expect_fail(r, key)
    if o[0] == 'clear' and (d / 'run').exists() and any((d / 'run').iterdir()):
        return 'silent', f'stray run folder left: {[p.name for p in (d / "run").iterdir()]}'
    return o


def _cfgcase(name, *over, extra=(), token=None):
    case('configs', name, fast=True)(lambda ctx, d: _cfg(ctx, d, *over, extra=extra, token=token))


_cfgcase('pretrain.max_steps=-1', 'pretrain.max_steps=-1')
_cfgcase('pretrain.epochs=2.7', 'pretrain.epochs=2.7')
_cfgcase('pretrain.amp=maybe', 'pretrain.amp=maybe')
_cfgcase('pretrain.precision=maybe', 'pretrain.precision=maybe')
_cfgcase('pretrain.batch_size=2.5', 'pretrain.batch_size=2.5')
_cfgcase('pretrain.batch_size=0', 'pretrain.batch_size=0')
_cfgcase('data.speeds=abc', 'data.speeds=abc')
_cfgcase('data.speeds=[]', 'data.speeds=[]')
_cfgcase('data.crop_scale=big', 'data.crop_scale=big')
_cfgcase('data.crop_scale=[1.0,0.2] (lo > hi)', 'data.crop_scale=[1.0,0.2]')
_cfgcase('data.clip_len=0', 'data.clip_len=0')
_cfgcase('data.size=-5', 'data.size=-5')
_cfgcase('data.backend=nope', 'data.backend=nope')
_cfgcase('data.mean=[1,2] (wrong length)', 'data.mean=[1,2]')
_cfgcase('huge seed 10**30', extra=('--seed', str(10 ** 30)), token='seed')
_cfgcase('--seed abc', extra=('--seed', 'abc'), token='seed')
_cfgcase('--device mps without MPS', extra=('--device', 'mps'), token='mps')
_cfgcase('teacher.num_classes=5 vs a 7-class teacher', 'teacher.num_classes=5', token='teacher.num_classes')
_cfgcase('unknown key typo pretrain.lrr=0.1', 'pretrain.lrr=0.1', token='lrr')
_cfgcase('unknown section foo.bar=1', 'foo.bar=1', token='foo')
_cfgcase('model=c3d (section given a value)', 'model=c3d', token='model')
_cfgcase('model.backbone=vgg', 'model.backbone=vgg')
_cfgcase('pretrain.schedule=foo', 'pretrain.schedule=foo')
_cfgcase('loss.tau=0', 'loss.tau=0')
_cfgcase('pretrain.lr=-0.1', 'pretrain.lr=-0.1')
_cfgcase('pretrain.lr=nan', 'pretrain.lr=nan')
_cfgcase('model.width=-1', 'model.width=-1')
_cfgcase('override without =', 'pretrain.lr', token='pretrain.lr')


@case('configs', '--preset nope', fast=True)
def _(ctx, d):
    r = run(['hcmtl-pretrain', '--preset', 'nope', '--data', ctx.world, '--out', d / 'run']); return expect_fail(r, "'nope'")


_HAS_CONFIG = []


def cfg_cli(ctx, d, *a):
    "`hcmtl-pretrain --config ...` when the CLI takes --config, else hcmtl.config's own command line (hcmtl-config)."
    if not _HAS_CONFIG: _HAS_CONFIG.append('--config' in run(['hcmtl-pretrain', '--help']).out)
    if _HAS_CONFIG[0]: return ctx.pre(d / 'run', extra=a)
    return [sys.executable, '-c', 'import sys; from hcmtl.config import config_cli; sys.exit(config_cli())', '--preset', 'smoke', *a]


@case('configs', 'malicious YAML !!python/object config does not execute', fast=True)
def _(ctx, d):
    m = d / 'PWNED'; c = d / 'evil.yaml'
    c.write_text(f"pretrain: !!python/object/apply:os.system ['touch {m}']\n")
    r = run(cfg_cli(ctx, d, '--config', c))
    if m.exists(): return 'silent', 'the YAML EXECUTED (marker file created)'
    return expect_fail(r, 'evil.yaml')


@case('configs', '--config missing file', fast=True)
def _(ctx, d):
    r = run(cfg_cli(ctx, d, '--config', d / 'nocfg.yaml')); return expect_fail(r, 'nocfg.yaml')


@case('configs', '--config invalid YAML syntax', fast=True)
def _(ctx, d):
    c = d / 'bad.yaml'; c.write_text('pretrain: {lr: [1, 2\n')
    r = run(cfg_cli(ctx, d, '--config', c)); return expect_fail(r, 'bad.yaml')


@case('configs', '--config a YAML list, not a mapping', fast=True)
def _(ctx, d):
    c = d / 'list.yaml'; c.write_text('- 1\n- 2\n')
    r = run(cfg_cli(ctx, d, '--config', c)); return expect_fail(r, 'list.yaml')


@case('configs', '--config with an unknown key', fast=True)
def _(ctx, d):
    c = d / 'typo.yaml'; c.write_text('pretrain:\n  bach_size: 8\n')
    r = run(cfg_cli(ctx, d, '--config', c)); return expect_fail(r, 'bach_size')


@case('configs', 'finetune.lr=abc in hcmtl-finetune', fast=True)
def _(ctx, d):
    r = run(ctx.ft(d / 'run', 'finetune.lr=abc', pretrained='none', extra=('--preset', 'smoke'))); return expect_fail(r, 'finetune.lr')


@case('configs', 'finetune.epochs=0 in hcmtl-finetune', fast=True)
def _(ctx, d):
    r = run(ctx.ft(d / 'run', 'finetune.epochs=0', pretrained='none', extra=('--preset', 'smoke'))); return expect_fail(r, 'finetune.epochs')


@case('configs', '--print-config exits 0 with YAML', fast=True)
def _(ctx, d):
    import yaml
    r = run(cfg_cli(ctx, d, '--print-config', 'pretrain.lr=0.2'))
    try: good = True if yaml.safe_load(r.out)['pretrain']['lr'] == 0.2 else 'lr not 0.2 in printed config'
    except Exception as e: good = f'not YAML: {e}'
    return expect_ok(r, good=good)


# ================================================================ numerics
def _num(ctx, d, *over, token='pretrain.lr', ft=False):
    out = d / 'run'
    r = run(ctx.ft(out, *over) if ft else ctx.pre(out, *over))
    o = expect_fail(r, token, 'NaN', 'nan', 'finite', 'explod', 'diverg')
    if o[0] == 'silent':
        return o
    # the kept checkpoints must hold finite values
    bad = _nonfinite_ckpts(out)
    if bad: return 'silent', f'{o[1]}; non-finite values kept in {bad}'
    return o


def _nonfinite_ckpts(out: Path) -> str:
    code = ("import sys, torch\nfrom pathlib import Path\nbad=[]\n"
            "def walk(x, n):\n"
            "  if torch.is_tensor(x):\n"
            "    if x.is_floating_point() and not torch.isfinite(x).all(): bad.append(n)\n"
            "  elif isinstance(x, dict): [walk(v, n) for v in x.values()]\n"
            "  elif isinstance(x, (list, tuple)): [walk(v, n) for v in x]\n"
            "for p in sorted(Path(sys.argv[1]).rglob('*.pt')):\n"
            "  try: walk(torch.load(p, map_location='cpu', weights_only=True), p.name)\n"
            "  except Exception: pass\n"
            "print(','.join(sorted(set(bad))))\n")
    if not out.exists(): return ''
    return run([sys.executable, '-c', code, out]).out.strip()


for _n, _o, _t in [('pretrain.lr=1e6', ('pretrain.lr=1e6',), 'pretrain.lr'), ('pretrain.lr=1e3', ('pretrain.lr=1e3',), 'pretrain.lr'),
                   ('all loss weights 0', ('loss.lambda_kd=0', 'loss.lambda_motion=0', 'loss.lambda_app=0'), 'lambda'),
                   ('pretrain.lr=inf', ('pretrain.lr=inf',), 'pretrain.lr'),
                   ('pretrain.momentum=10', ('pretrain.momentum=10',), 'pretrain.momentum'),
                   ('pretrain.weight_decay=1e6', ('pretrain.weight_decay=1e6',), 'pretrain.weight_decay')]:
    case('numerics', _n)(lambda ctx, d, _o=_o, _t=_t: _num(ctx, d, *_o, token=_t))

case('numerics', 'finetune.lr=1e6')(lambda ctx, d: _num(ctx, d, 'finetune.lr=1e6', token='finetune.lr', ft=True))


@case('numerics', 'injected NaN loss at step 2 (HCMTL_FAULT=nan:loss@2)')
def _(ctx, d):
    out = d / 'run'; r = run(ctx.pre(out, 'pretrain.epochs=2'), env={'HCMTL_FAULT': 'nan:loss@2'})
    o = expect_fail(r, 'NaN', 'nan', 'finite', 'step 2')
    bad = _nonfinite_ckpts(out)
    return ('silent', f'non-finite values kept in {bad}') if bad else o


@case('numerics', 'SIGKILL at step 1 then rerun: resumes, log.csv steps unique')
def _(ctx, d):
    out = d / 'run'; r1 = run(ctx.pre(out, 'pretrain.epochs=2'), env={'HCMTL_FAULT': 'kill@1'})
    if r1.rc == 0: return 'silent', 'kill fault did not stop the run'
    r = run(ctx.pre(out, 'pretrain.epochs=2'))
    good = _log_unique(out)
    return expect_ok(r, good=good)


def _log_unique(out: Path):
    p = out / 'log.csv'
    if not p.exists(): return 'no log.csv'
    rows = list(csv.DictReader(p.open()))
    if not rows: return 'empty log.csv'
    key = 'step' if 'step' in rows[0] else list(rows[0])[0]
    steps = [(r.get('kind', ''), r.get('phase', ''), r[key]) for r in rows]
    dup = [s for s, c in Counter(steps).items() if c > 1]
    return True if not dup else f'duplicated log.csv steps {dup[:3]}'


# ================================================================ concurrent runs
def _two(cmd_a, cmd_b, lock_dir: Path, delay=0.5):
    "Start A and, `delay` s later, B (both import at once, so they overlap); the refused one is returned second."
    t0 = time.time(); a = start(cmd_a); time.sleep(delay); b = start(cmd_b)
    rb = finish(b, t0); ra = finish(a, t0)
    return (ra, rb) if ra.rc == 0 or rb.rc != 0 else (rb, ra)


def _two_same(cmd, out: Path):
    "The same command twice into one --out: one completes, the other is refused naming the lock and its pid."
    ra, rb = _two(cmd, cmd, out)
    if ra.rc: return expect_ok(ra)
    o = expect_fail(rb, 'pid', 'lock', str(out))
    good = _log_unique(out)
    return ('silent', good) if good is not True else o


@case('concurrent', 'two pretrain processes, same --out: second refused with the pid')
def _(ctx, d): return _two_same(ctx.pre(d / 'run', 'pretrain.epochs=8', 'pretrain.max_steps=null'), d / 'run')


@case('concurrent', 'two finetune processes, same --out')
def _(ctx, d): return _two_same(ctx.ft(d / 'run', 'finetune.epochs=8'), d / 'run')


@case('concurrent', 'finetune --pretrained a run still pretraining')
def _(ctx, d):
    out = d / 'run'; t0 = time.time(); a = start(ctx.pre(out, 'pretrain.epochs=8', 'pretrain.max_steps=null'))
    time.sleep(0.5); r = run(ctx.ft(d / 'ft', pretrained=out)); finish(a, t0)  # both import at once: they overlap
    return expect_fail(r, str(out), 'encoder.pt', 'done')


@case('concurrent', 'two check-videos writing one blacklist')
def _(ctx, d):
    k = kin_copy(ctx, d); v = first_video(k); v.write_bytes(b''); bl = d / 'bl.txt'
    t0 = time.time(); a, b = start(check(k, '--out', bl)), start(check(k, '--out', bl))
    ra, rb = finish(a, t0), finish(b, t0)
    raw = bl.read_text(errors='replace') if bl.exists() else ''
    good = True if raw.count(v.name) == 1 else f'blacklist holds {v.name} {raw.count(v.name)} times'
    for r in (ra, rb):
        if r.tb: return 'traceback', r.last()
    return ('clear', ra.last()) if good is True and ra.rc and rb.rc else ('silent', good if good is not True else 'exit 0')


@case('concurrent', 'two transcodes into one destination')
def _(ctx, d):
    s = d / 'src'; shutil.copytree(ctx.world / 'hmdb51', s); dst = d / 'dst'
    cmd = ['hcmtl-transcode', s, dst, '--workers', '1']
    t0 = time.time(); a, b = start(cmd), start(cmd); ra, rb = finish(a, t0), finish(b, t0)
    for r in (ra, rb):
        if r.tb: return 'traceback', r.last()
    r3 = run(['hcmtl-check-videos', dst, '--workers', '0', '--out', d / 'bl.txt'])
    if ra.rc and rb.rc: return 'refused', f'both failed: {ra.last()}'
    return expect_ok(r3, good=True)


@case('concurrent', 'SIGTERM at step 1 then rerun completes')
def _(ctx, d):
    out = d / 'run'; r1 = run(ctx.pre(out, 'pretrain.epochs=2'), env={'HCMTL_FAULT': 'term@1'})
    if r1.tb: return 'traceback', r1.last()
    if r1.rc == 0 and (out / 'encoder.pt').exists(): return 'silent', 'SIGTERM ignored: run finished'
    r = run(ctx.pre(out, 'pretrain.epochs=2')); return expect_ok(r, good=_log_unique(out))


@case('concurrent', 'hcmtl-eval while the same run is fine-tuning')
def _(ctx, d):
    out = d / 'run'; t0 = time.time(); a = start(ctx.ft(out, 'finetune.epochs=8'))
    time.sleep(0.5); r = run(['hcmtl-eval', '--run', out, '--device', 'cpu']); ra = finish(a, t0)
    if ra.rc: return 'silent', f'the fine-tuning died: {ra.last()}'
    return expect_fail(r, str(out), 'best.pt', 'lock', 'pid')


# ---------------------------------------------------------------- driver
def run_cases(ctx, cases, log=print, jobs=1):
    "Run the cases (`jobs` at a time; the concurrent ones alone) and return one row per case."
    from concurrent.futures import ThreadPoolExecutor
    one = lambda c: _one(ctx, *c, log=log)
    par, alone = [c for c in cases if c[0] != 'concurrent'], [c for c in cases if c[0] == 'concurrent']
    with ThreadPoolExecutor(max(1, jobs)) as ex: rows = list(ex.map(one, par))
    return rows + [one(c) for c in alone]


def _one(ctx, cat, name, f, _fast, log=print):
    if True:
        d = ctx.tmp(''.join(c if c.isalnum() else '_' for c in name)[:40]); t = time.time()
        try: outcome, msg = f(ctx, d)
        except Exception as e:  # a bug of this tool, not of the package
            outcome, msg = 'error', f'adversarial tool error: {type(e).__name__}: {e}'
        msg = (msg or '').splitlines()[0][:160] if msg else ''
        rows = [dict(category=cat, case=name, outcome=outcome, secs=round(time.time() - t, 1), message=msg)]
        log(f'{cat:11s} {outcome:9s} {time.time() - t:5.1f}s  {name}  | {msg}')
    return rows[0]


def summary(rows) -> str:
    cats = [c for c in CATEGORIES if any(r['category'] == c for r in rows)]
    outs = [o for o in (*OUTCOMES, 'error') if any(r['outcome'] == o for r in rows)]
    cnt = Counter((r['category'], r['outcome']) for r in rows)
    w = max(len(c) for c in cats + ['total'])
    s = ' ' * w + ''.join(f'{o:>10s}' for o in outs) + f'{"all":>6s}\n'
    for c in cats: s += f'{c:{w}s}' + ''.join(f'{cnt[c, o]:10d}' for o in outs) + f'{sum(cnt[c, o] for o in outs):6d}\n'
    s += f'{"total":{w}s}' + ''.join(f'{sum(cnt[c, o] for c in cats):10d}' for o in outs) + f'{len(rows):6d}\n'
    return s


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--out', default='adversarial.csv', help='CSV of the outcomes (category, case, outcome, secs, message)')
    ap.add_argument('--world', default=os.environ.get('HCMTL_TEST_WORLD'), help='smoke world to reuse (default: generate one)')
    ap.add_argument('--keep', default=None, help='work folder to keep (default: a temporary one, removed)')
    ap.add_argument('--only', nargs='*', default=None, help='run the cases whose category or name contains one of these')
    ap.add_argument('--fast', action='store_true', help='only the cases that need no base run')
    ap.add_argument('--jobs', type=int, default=2, help='cases run at once (the concurrent category runs alone)')
    ap.add_argument('--list', action='store_true', help='list the cases and exit')
    a = ap.parse_args(argv)
    cases = [c for c in CASES if (not a.only or any(s in c[0] or s in c[1] for s in a.only)) and (not a.fast or c[3])]
    if a.list:
        for c in cases: print(f'{c[0]:11s} {c[1]}')
        print(len(cases), 'cases'); return 0
    t0 = time.time()
    work = Path(a.keep) if a.keep else Path(tempfile.mkdtemp(prefix='hcmtl-adv-'))
    work.mkdir(parents=True, exist_ok=True)
    try:
        ctx = Ctx(work.resolve(), Path(a.world).resolve() if a.world else None)
        if not all(c[3] for c in cases): ctx.base_runs()
        print(f'smoke world {ctx.world}; base runs ready in {time.time() - t0:.0f}s; {len(cases)} cases', flush=True)
        rows = run_cases(ctx, cases, log=lambda s: print(s, flush=True), jobs=a.jobs)
    finally:
        if not a.keep: shutil.rmtree(work, ignore_errors=True)
    with open(a.out, 'w', newline='') as f:
        wr = csv.DictWriter(f, fieldnames=['category', 'case', 'outcome', 'secs', 'message']); wr.writeheader(); wr.writerows(rows)
    print('\n' + summary(rows))
    print(f'{len(rows)} cases in {time.time() - t0:.0f}s; outcomes in {a.out}')
    return 0


if __name__ == '__main__': sys.exit(main())
