"End-to-end tests of `hcmtl-synth`: layout, counts, determinism, idempotence."
import hashlib, json, os, shutil, subprocess, sys
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from hcmtl.core import get_preset
from hcmtl.synth import synth_cli, generate_world

SM = get_preset('smoke').synth


@pytest.fixture(scope='module')
def world(smoke_world):
    "The session's smoke world (tests/conftest.py), generated with the preset's workers; read-only."
    return smoke_world


def _decode(path):
    with av.open(str(path)) as c: return np.stack([f.to_ndarray(format='rgb24') for f in c.decode(video=0)])


def _files(root, pattern): return sorted(p.relative_to(root) for p in Path(root).rglob(pattern))


def test_layout_and_counts(world, capsys):
    info = json.loads((world / 'world.json').read_text())
    assert info['seed'] == 0 and info['preset'] == 'smoke' and info['config']['frame_size'] == SM.frame_size
    # Kinetics-like pool
    mp4 = _files(world / 'kinetics/train', '*.mp4')
    assert len(mp4) == SM.pool_classes * SM.pool_per_class
    assert len({p.parent for p in mp4}) == SM.pool_classes == len(info['classes']['kinetics'])
    # UCF101-like: videos, classInd (1-based, CRLF), 3 folds split by group
    avi = _files(world / 'ucf101/UCF-101', '*.avi')
    assert len(avi) == SM.ucf_classes * SM.ucf_groups * SM.ucf_clips_per_group
    assert all(p.name.startswith(f'v_{p.parent.name}_g') for p in avi)
    lists = world / 'ucf101/ucfTrainTestlist'
    ci = (lists / 'classInd.txt').read_bytes()
    assert ci.count(b'\r\n') == SM.ucf_classes and ci.startswith(b'1 ')
    names = {str(p) for p in avi}
    for fold in (1, 2, 3):
        train = (lists / f'trainlist{fold:02d}.txt').read_bytes().decode().split('\r\n')[:-1]
        test = (lists / f'testlist{fold:02d}.txt').read_bytes().decode().split('\r\n')[:-1]
        assert len(train) + len(test) == len(avi) and len(test) == SM.ucf_classes * SM.ucf_clips_per_group
        assert {l.split()[0] for l in train} | set(test) == names
        groups = lambda ls: {l.split()[0].split('_g')[1][:2] for l in ls}
        assert groups(test) == {f'{fold:02d}'} and not groups(train) & groups(test)
        assert all(1 <= int(l.split()[1]) <= SM.ucf_classes for l in train)
    # HMDB51-like: per-class split files with 1 train / 2 test
    hm = _files(world / 'hmdb51/videos', '*.avi')
    per = SM.hmdb_train_per_class + SM.hmdb_test_per_class
    assert len(hm) == SM.hmdb_classes * per
    splits = _files(world / 'hmdb51/testTrainMulti_7030_splits', '*.txt')
    assert len(splits) == 3 * SM.hmdb_classes
    for s in splits:
        rows = [l.split() for l in (world / 'hmdb51/testTrainMulti_7030_splits' / s).read_text().splitlines()]
        assert len(rows) == per and sum(r[1] == '2' for r in rows) == SM.hmdb_test_per_class
        cls = s.name.rsplit('_test_split', 1)[0]
        assert all((world / 'hmdb51/videos' / cls / r[0]).exists() for r in rows)
    # LIP-like stills and per-video part labels
    for split, n in (('train', SM.lip_train), ('val', SM.lip_val)):
        imgs, labs = _files(world / f'lip/{split}/images', '*.png'), _files(world / f'lip/{split}/labels', '*.png')
        assert len(imgs) == len(labs) == n
        lab = cv2.imread(str(world / f'lip/{split}/labels' / labs[0]), cv2.IMREAD_UNCHANGED)
        assert lab.dtype == np.uint8 and lab.shape == (SM.frame_size,) * 2 and lab.max() <= 6
    for ds, root, vids in (('kinetics', 'kinetics/train', mp4), ('ucf101', 'ucf101/UCF-101', avi), ('hmdb51', 'hmdb51/videos', hm)):
        for v in vids[:3]:
            rel = (Path(root) / v).relative_to(ds)
            parts = np.load(world / 'parts' / ds / rel.with_suffix('.npz'))['parts']
            frames = _decode(world / root / v)
            assert parts.dtype == np.uint8 and parts.shape == frames.shape[:3] == (SM.num_frames, SM.frame_size, SM.frame_size)
            assert 0 < (parts > 0).mean() < 0.6 and parts.max() <= 6
    assert len(_files(world / 'parts', '*.npz')) == len(mp4) + len(avi) + len(hm)
    assert not _files(world, '*.tmp') and not _files(world, '*.part')


def test_same_seed_same_world(world, tmp_path):
    "A second generation, through the command line with one worker, reproduces every file byte for byte and every frame exactly."
    other = tmp_path / 'again'
    assert synth_cli(['--preset', 'smoke', '--out', str(other), '--workers', '1', '--no-progress']) == 0
    for p in _files(world / 'parts', '*.npz'):
        a, b = np.load(world / 'parts' / p)['parts'], np.load(other / 'parts' / p)['parts']
        assert a.tobytes() == b.tobytes(), p
    for p in _files(world / 'lip', '*.png'):
        assert (world / 'lip' / p).read_bytes() == (other / 'lip' / p).read_bytes(), p
    videos = _files(world, '*.avi') + _files(world, '*.mp4')
    assert len(videos) == SM.pool_classes * SM.pool_per_class + SM.ucf_classes * SM.ucf_groups * SM.ucf_clips_per_group \
        + SM.hmdb_classes * (SM.hmdb_train_per_class + SM.hmdb_test_per_class)
    differ = [str(p) for p in videos if (world / p).read_bytes() != (other / p).read_bytes()]
    assert not differ, f"{len(differ)} of {len(videos)} videos differ in bytes, e.g. {differ[:3]}"
    for p in videos:
        assert np.array_equal(_decode(world / p), _decode(other / p)), p
    for name in ('manifest.csv', 'ucf101/ucfTrainTestlist/trainlist02.txt'):
        assert (world / name).read_bytes() == (other / name).read_bytes()


def test_other_seed_differs_and_is_refused_in_place(world, tmp_path):
    other = tmp_path / 'seed1'
    cfg = get_preset('smoke'); cfg.seed = 1; cfg.synth.lip_train = cfg.synth.lip_val = 1
    generate_world(cfg, other, workers=1, progress=False)
    p = next((world / 'parts/ucf101').rglob('*.npz')).relative_to(world)
    assert np.load(world / p)['parts'].tobytes() != np.load(other / p)['parts'].tobytes()
    assert synth_cli(['--preset', 'smoke', '--out', str(other), '--no-progress']) == 2  # seed 0 into a seed-1 world


def test_idempotent(world, tmp_path, capsys):
    w = tmp_path / 'w'; shutil.copytree(world, w)
    capsys.readouterr()
    assert synth_cli(['--preset', 'smoke', '--out', str(w), '--workers', '1', '--no-progress']) == 0
    assert json.loads((w / 'world.json').read_text())['generated'] == 0
    assert 'generated 0 items' in capsys.readouterr().out
    video = _files(w, '*.avi')[2]; parts = _files(w / 'parts', '*.npz')[-1]; still = _files(w / 'lip', '*.png')[0]
    before = {p: (w / p).read_bytes() for p in (video, Path('parts') / parts, Path('lip') / still)}
    (w / video).unlink()
    data = (w / 'parts' / parts).read_bytes(); (w / 'parts' / parts).write_bytes(data[:len(data) // 2])  # truncated
    (w / 'lip' / still).write_bytes(b'')
    (w / video).with_name((w / video).name + '.part').write_bytes(b'junk')  # a killed run's leftover
    assert synth_cli(['--preset', 'smoke', '--out', str(w), '--no-progress']) == 0
    assert json.loads((w / 'world.json').read_text())['generated'] == 3
    assert np.load(w / 'parts' / parts)['parts'].tobytes() == np.load(world / 'parts' / parts)['parts'].tobytes()
    assert (w / 'lip' / still).read_bytes() == before[Path('lip') / still]
    assert np.array_equal(_decode(w / video), _decode(world / video))
    assert not _files(w, '*.part')


def test_concurrent_generation(world, tmp_path):
    "Several runs may start on one complete world at once: each succeeds and none removes a file another live one writes."
    w = tmp_path / 'w'; shutil.copytree(world, w)
    ended = subprocess.run([sys.executable, '-c', 'import os; print(os.getpid())'], capture_output=True, text=True)
    live, dead = w / f'.x.txt.{os.getpid()}.tmp', w / f'.x.txt.{int(ended.stdout)}.tmp'
    live.write_bytes(b''); dead.write_bytes(b'')
    cmd = ['hcmtl-synth', '--preset', 'smoke', '--out', str(w), '--workers', '1', '--no-progress']
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for _ in range(3)]
    outs = [p.communicate(timeout=300)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], outs
    assert live.exists() and not dead.exists()
    assert json.loads((w / 'world.json').read_text())['generated'] == 0


def test_read_by_dataset_loaders(world):
    "The UCF101-like and HMDB51-like trees are read by the loaders of the real datasets."
    import hcmtl.datasets as ds
    u = ds.read_ucf101(world / 'ucf101', 1)
    assert len(u.classes) == SM.ucf_classes
    assert (len(u.train), len(u.test)) == (SM.ucf_classes * (SM.ucf_groups - 1) * SM.ucf_clips_per_group,
                                           SM.ucf_classes * SM.ucf_clips_per_group)
    h = ds.read_hmdb51(world / 'hmdb51', 1)
    assert (len(h.train), len(h.test)) == (SM.hmdb_classes * SM.hmdb_train_per_class, SM.hmdb_classes * SM.hmdb_test_per_class)
    k = ds.read_kinetics(world / 'kinetics', 'train')
    assert len(k.train) == SM.pool_classes * SM.pool_per_class


def test_world_pinned(world):
    """The smoke world's generator key, plan, split files, part labels and stills hash to the recorded values: the world
    a seed gives does not change unnoticed (the videos depend on the encoder build, so they are checked by decoding
    elsewhere)."""
    info = json.loads((world / 'world.json').read_text())
    assert info['key'] == '76902caae7', info['key']
    assert hashlib.sha256((world / 'manifest.csv').read_bytes()).hexdigest() == \
        '6ee7a915ebca5d5ba82604c5123b52f1de1fc42c013ad8dcf24f98e529f5955f'
    digest = lambda paths, read: hashlib.sha256(b''.join(read(p) for p in paths)).hexdigest()
    splits = sorted(world.rglob('*.txt'))
    assert digest(splits, lambda p: str(p.relative_to(world)).encode() + p.read_bytes()) == \
        '7abc04e8afce93863efc22b1d6e92d7b3a7db8c7a45848001cbe0e72c9d92971'
    assert digest(sorted((world / 'parts').rglob('*.npz')), lambda p: np.load(p)['parts'].tobytes()) == \
        'c1911e6ef54c7d5655477ee7cb6e71e02114871c093e628eeb551df9ed6eac2e'
    assert digest(sorted((world / 'lip').rglob('*.png')), lambda p: cv2.imread(str(p), cv2.IMREAD_UNCHANGED).tobytes()) == \
        'a3bc61e4e4b6ecd4f2d6742799c821594d66fbe5bfc4837316dc777e0a1f6b57'


def test_package_reexports():
    "`hcmtl.synth` re-exports every public name of its modules, and `hcmtl-synth` resolves to its `synth_cli`."
    import importlib.metadata as md
    import hcmtl.synth as synth
    from hcmtl.synth import body, render, world, calibration
    mods = (body, render, world, calibration)
    assert sorted(synth.__all__) == sorted(n for m in mods for n in m.__all__)
    for m in mods:
        for name in m.__all__: assert getattr(synth, name) is getattr(m, name), (m.__name__, name)
    for name in ('generate_world', 'plan_world', 'render_clip', 'calibrate', 'world_split', 'synth_cli', 'DIFFICULTY'):
        assert name in synth.__all__
    ep = [e for e in md.entry_points(group='console_scripts') if e.name == 'hcmtl-synth']
    assert ep and ep[0].value == 'hcmtl.synth:synth_cli' and ep[0].load() is synth.synth_cli
