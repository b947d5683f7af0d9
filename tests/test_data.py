"""Integration tests of the video data layer: split readers on the official UCF101 lists and on
HMDB51 lists in the official format, decoding backends, the health-check CLI, and epochs over
corrupt datasets (see nbs/02_video, 03_sampling, 04_transforms and 05_datasets for the unit tests)."""
import logging, os, shutil, subprocess, sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader
from torch.utils.data.distributed import DistributedSampler

from hcmtl.core import get_preset
from hcmtl.video import write_video
from hcmtl.testing import moving_square_frames
from hcmtl import datasets as hds
from hcmtl.datasets import (read_ucf101, read_hmdb51, carve_val, build_splits, check_videos_cli, Blacklist,
                            SpeedPairDataset, ClipDataset, VideoClipsDataset, UCF101_SPLIT_SIZES)
from hcmtl.video import read_frames, video_meta, clear_meta_cache

UCF_LISTS = Path(__file__).parent / 'fixtures' / 'ucf101' / 'ucfTrainTestlist'

HMDB51_CLASSES = """brush_hair cartwheel catch chew clap climb climb_stairs dive draw_sword dribble drink eat
fall_floor fencing flic_flac golf handstand hit hug jump kick kick_ball kiss laugh pick pour pullup punch push
pushup ride_bike ride_horse run shake_hands shoot_ball shoot_bow shoot_gun sit situp smile smoke somersault stand
swing_baseball sword sword_exercise talk throw turn walk wave""".split()


def listed_videos(lists: Path) -> set:
    "Every relative video path named by the UCF101 train/test lists."
    out = set()
    for f in lists.glob('*list0*.txt'):
        out |= {l.split()[0] for l in f.read_text().splitlines() if l.strip()}
    return out


@pytest.fixture(scope='module')
def ucf_root(tmp_path_factory):
    "The official UCF101 split files over an empty file tree (one zero-byte file per listed video)."
    root = tmp_path_factory.mktemp('ucf101')
    shutil.copytree(UCF_LISTS, root / 'ucfTrainTestlist')
    for rel in listed_videos(UCF_LISTS):
        p = root / 'UCF-101' / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.touch()
    return root


def test_fixture_lists_are_the_official_files():
    assert (UCF_LISTS / 'classInd.txt').read_bytes().count(b'\r\n') == 101  # CRLF, as released
    assert len(listed_videos(UCF_LISTS)) == 13320


@pytest.mark.parametrize('fold', [1, 2, 3])
def test_ucf101_official_folds(ucf_root, fold, caplog):
    caplog.set_level(logging.WARNING, logger='hcmtl')
    sp = read_ucf101(ucf_root, fold)
    assert len(sp.classes) == 101 and sp.classes[0] == 'ApplyEyeMakeup' and sp.classes[100] == 'YoYo'
    assert (len(sp.train), len(sp.test)) == UCF101_SPLIT_SIZES[fold] == {1: (9537, 3783), 2: (9586, 3734), 3: (9624, 3696)}[fold]
    assert sp.missing == ()
    assert caplog.records == []  # the real lists match the official numbers: no warning
    # the case quirk: folder HandstandPushups, files v_HandStandPushups_*, class 37 (1-based)
    hs = [i for i in sp.train if 'v_HandStandPushups_' in i.path]
    assert hs and all(i.label == sp.classes.index('HandstandPushups') == 36 for i in hs)
    assert all(Path(i.path).exists() for i in hs[:5])
    # the official folds hold out seven whole groups; a carved validation split holds out whole groups too
    test_groups, train_groups = {i.group for i in sp.test}, {i.group for i in sp.train}
    assert len(test_groups) == 7 and len(train_groups) == 18 and not test_groups & train_groups
    tr, va = carve_val(sp.train, 0.1, seed=0)
    assert len(tr) + len(va) == len(sp.train) and not {i.group for i in tr} & {i.group for i in va}
    assert len({i.group for i in va}) == 2 and {i.label for i in va} == set(range(101))
    assert carve_val(sp.train, 0.1, seed=0) == (tr, va) and carve_val(sp.train, 0.1, seed=1) != (tr, va)


def test_ucf101_case_insensitive_paths_and_missing_report(tmp_path, caplog):
    root = tmp_path / 'ucf'
    shutil.copytree(UCF_LISTS, root / 'ucfTrainTestlist')
    rels = sorted(listed_videos(UCF_LISTS))
    for rel in rels:
        if rel.startswith('YoYo/'): continue  # a whole class missing on disk
        if rel.startswith('HandstandPushups/'): rel = rel.replace('v_HandStandPushups_', 'v_HandstandPushups_')
        if rel.startswith('Archery/'): rel = rel.lower()  # a copy made on a case-insensitive file system
        p = root / 'UCF-101' / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.touch()
    caplog.set_level(logging.WARNING, logger='hcmtl')
    sp = read_ucf101(root, 1)
    n_yoyo = sum(1 for r in rels if r.startswith('YoYo/'))
    assert len(sp.missing) == n_yoyo and all(m.startswith('YoYo/') for m in sp.missing)
    assert len(sp.train) + len(sp.test) == 9537 + 3783 - n_yoyo
    assert any(i.path.endswith('v_HandstandPushups_g08_c01.avi') for i in sp.train)
    assert any('/archery/' in i.path for i in sp.train)
    msgs = [r.getMessage() for r in caplog.records]
    assert any('trainlist01.txt' in m and 'missing' in m and 'v_YoYo_g' in m for m in msgs), msgs
    with pytest.raises(FileNotFoundError, match='v_YoYo_g'):
        read_ucf101(root, 1, missing='raise')


def test_ucf101_count_mismatch_warns(ucf_root, tmp_path, caplog):
    root = tmp_path / 'ucf'
    shutil.copytree(UCF_LISTS, root / 'ucfTrainTestlist')
    os.symlink(ucf_root / 'UCF-101', root / 'UCF-101')
    f = root / 'ucfTrainTestlist' / 'trainlist01.txt'
    f.write_bytes(b''.join(f.read_bytes().splitlines(keepends=True)[:-10]))
    caplog.set_level(logging.WARNING, logger='hcmtl')
    sp = read_ucf101(root, 1)
    assert len(sp.train) == 9527
    assert any('lists 9527 train / 3783 test' in r.getMessage() for r in caplog.records)


def write_hmdb_splits(root: Path, classes, per_class=(70, 30, 10), folder='videos'):
    "HMDB51 split files in the official format, with an empty video per line; folds rotate the ids."
    sd = root / 'testTrainMulti_7030_splits'
    sd.mkdir(parents=True, exist_ok=True)
    n = sum(per_class)
    for c in classes:
        names = [f"{'Veoh_(1)_' if k % 7 == 0 else ''}{c}_clip{k}_f_cm_np1_fr_med_{k}.avi" for k in range(n)]
        base = [1] * per_class[0] + [2] * per_class[1] + [0] * per_class[2]
        for fold in (1, 2, 3):
            ids = base[(fold - 1) * 11:] + base[:(fold - 1) * 11]
            (sd / f'{c}_test_split{fold}.txt').write_text(''.join(f'{v} {i} \n' for v, i in zip(names, ids)))
        for v in names:
            p = root / folder / c / v
            p.parent.mkdir(parents=True, exist_ok=True)
            p.touch()
    return root


@pytest.mark.parametrize('fold', [1, 2, 3])
def test_hmdb51_official_format(tmp_path, fold, caplog):
    root = write_hmdb_splits(tmp_path / 'hmdb', HMDB51_CLASSES, folder='hmdb51_org')
    caplog.set_level(logging.WARNING, logger='hcmtl')
    sp = read_hmdb51(root, fold)
    assert sp.classes == sorted(HMDB51_CLASSES) and len(sp.classes) == 51
    assert (len(sp.train), len(sp.test)) == (51 * 70, 51 * 30)
    assert caplog.records == []
    assert all(sum(1 for i in sp.test if i.label == c) == 30 for c in range(51))
    assert not {i.path for i in sp.train} & {i.path for i in sp.test}
    other = read_hmdb51(root, 1 + fold % 3)
    assert {i.path for i in other.test} != {i.path for i in sp.test}
    s = build_splits('hmdb51', root, fold=fold, val_fraction=0.1, seed=0)
    assert len(s['val']) == 51 * 7 and len(s['train']) == 51 * 63


def test_hmdb51_count_mismatch_warns(tmp_path, caplog):
    root = write_hmdb_splits(tmp_path / 'hmdb', HMDB51_CLASSES[:50] + ['zzz_extra'], per_class=(70, 30, 0))
    f = root / 'testTrainMulti_7030_splits' / 'brush_hair_test_split1.txt'
    f.write_text(f.read_text().replace(' 1 \n', ' 2 \n', 1))
    caplog.set_level(logging.WARNING, logger='hcmtl')
    read_hmdb51(root, 1)
    msgs = ' | '.join(r.getMessage() for r in caplog.records)
    assert 'brush_hair 69/31' in msgs and '51 classes' not in msgs
    caplog.clear()
    small = write_hmdb_splits(tmp_path / 'small', ['a', 'b'], per_class=(3, 2, 0))
    assert len(read_hmdb51(small, 1).train) == 6 and caplog.records == []  # a scaled-down set is not compared


@pytest.mark.parametrize('ext,size,gop', [('.avi', (48, 64), 12), ('.mp4', (64, 48), 5), ('.mp4', (40, 40), 30)])
def test_backends_agree(tmp_path, ext, size, gop):
    frames = moving_square_frames(50, max(size), speed=3, seed=1)[:, :size[0], :size[1]]
    p = write_video(tmp_path / f'v{ext}', frames, gop=gop)
    assert video_meta(p) == video_meta(p, 'pyav')
    rng = np.random.default_rng(0)
    for idx in ([0], [49], list(range(20, 36)), rng.integers(0, 50, 12).tolist(), [44, 3, 3, 17]):
        a, b = read_frames(p, idx), read_frames(p, idx, backend='pyav')
        assert a.shape == (len(idx), *size, 3)
        np.testing.assert_array_equal(a, b)  # tolerance 0: same FFmpeg decoder and colour conversion
    a, b = read_frames(p, [5, 30], short_side=32), read_frames(p, [5, 30], backend='pyav', short_side=32)
    assert a.shape == b.shape and min(a.shape[1:3]) == 32
    assert np.abs(a.astype(float) - b).mean() < 4  # resize filters may differ slightly


def make_video_tree(root: Path, n=6, frames=20, size=32):
    paths = [write_video(root / f'c{k % 2}' / f'v{k}.mp4', moving_square_frames(frames, size, 1 + k % 3, k)) for k in range(n)]
    return paths


def corrupt(paths):
    "Make paths[0] zero bytes, paths[1] text, paths[2] a truncated MP4 (index lost)."
    paths[0].write_bytes(b'')
    paths[1].write_text('definitely not a video\n' * 30)
    data = paths[2].read_bytes()
    paths[2].write_bytes(data[:len(data) // 2])
    return paths[:3]


def run_cli(args):
    exe = shutil.which('hcmtl-check-videos')
    cmd = [exe] if exe else [sys.executable, '-c', 'import sys; from hcmtl.datasets import check_videos_cli; sys.exit(check_videos_cli())']
    return subprocess.run(cmd + [str(a) for a in args], capture_output=True, text=True, timeout=120)


def test_check_videos_cli(tmp_path):
    root = tmp_path / 'data'
    paths = make_video_tree(root)
    write_video(root / 'short.avi', moving_square_frames(6, 32))
    assert check_videos_cli([str(root), '--out', str(tmp_path / 'clean.txt'), '--min-frames', '5']) == 0
    assert len(Blacklist.from_file(tmp_path / 'clean.txt')) == 0
    bad_files = corrupt(paths)
    r = run_cli([root, '--out', tmp_path / 'bl.txt', '--min-frames', '10', '--workers', '2'])  # the installed console script
    assert r.returncode == 1, r.stdout + r.stderr
    assert 'checked 7 videos' in r.stdout
    bad_lines = [l for l in r.stdout.splitlines() if l.startswith('BAD ')]
    assert len(bad_lines) == 4 and any('short.avi: too short: 6 frames < 10' in l for l in bad_lines)
    for p in bad_files: assert any(str(p) in l for l in bad_lines)
    bl = Blacklist.from_file(tmp_path / 'bl.txt')
    assert len(bl) == 4 and all(p in bl for p in bad_files) and paths[3] not in bl
    # in-process, default output ROOT/blacklist.txt, PyAV backend, default --preset quick: 16-frame window
    assert check_videos_cli([str(root), '--backend', 'pyav']) == 1
    bl = Blacklist.from_file(root / 'blacklist.txt')
    assert len(bl) == 4 and root / 'short.avi' in bl
    assert check_videos_cli([str(tmp_path / 'nope')]) == 2


@pytest.mark.parametrize('workers', [0, 2])
def test_epoch_over_corrupt_files(tmp_path, workers, caplog):
    clear_meta_cache()
    paths = make_video_tree(tmp_path / 'kinetics' / 'train', n=8)
    bad = corrupt(paths)
    items = hds.read_kinetics(tmp_path / 'kinetics').train
    cfg = get_preset('smoke').data
    caplog.set_level(logging.WARNING, logger='hcmtl')
    for ds, key in ((SpeedPairDataset(items, cfg), 'windows'), (ClipDataset(items, cfg), 'clip'),
                    (VideoClipsDataset(items, cfg), 'clips')):
        n, skipped, seen = 0, 0, set()
        for b in DataLoader(ds, batch_size=3, shuffle=True, num_workers=workers):
            n += len(b['index']); skipped += int(b['skipped'].sum()) if 'skipped' in b else 0
            seen |= set(b['index'].tolist())
            assert b[key].dtype == torch.uint8
        assert n == len(items) and skipped >= 3
        assert not seen & {k for k, i in enumerate(items) if Path(i.path) in bad}
    if workers == 0:
        msgs = [r.getMessage() for r in caplog.records]
        for p in bad: assert any(m.startswith('skipping unreadable video') and str(p) in m for m in msgs), msgs


def test_blacklist_in_config_and_distributed_sampler(tmp_path):
    paths = make_video_tree(tmp_path / 'data', n=6)
    bad = corrupt(paths)
    assert check_videos_cli([str(tmp_path / 'data'), '--out', str(tmp_path / 'bl.txt'), '--preset', 'smoke']) == 1
    cfg = get_preset('smoke').data
    cfg.blacklist = str(tmp_path / 'bl.txt')
    items = [hds.VideoItem(str(p), k % 2) for k, p in enumerate(paths)]
    ds = ClipDataset(items, cfg, train=True)
    assert len(ds) == 3 and not {i.path for i in ds.items} & {str(p) for p in bad}
    got = []
    for rank in (0, 1):
        sampler = DistributedSampler(ds, num_replicas=2, rank=rank, shuffle=True, seed=3)
        sampler.set_epoch(1)
        for b in DataLoader(ds, batch_size=2, sampler=sampler):
            got += b['index'].tolist()
            assert int(b['skipped'].sum()) == 0
    assert sorted(set(got)) == [0, 1, 2] and len(got) == 4


def test_speed_pair_is_one_read(tmp_path, monkeypatch):
    paths = make_video_tree(tmp_path / 'data', n=2, frames=40)
    calls = []
    real = hds.read_frames
    monkeypatch.setattr(hds, 'read_frames', lambda *a, **k: calls.append(a[1]) or real(*a, **k))
    cfg = get_preset('smoke').data
    cfg.speeds = (1, 2, 4)
    it = SpeedPairDataset([hds.VideoItem(str(p), 0) for p in paths], cfg)[1]
    assert len(calls) == 1 and len(calls[0]) == 2 * 4 * cfg.clip_len
    assert it['windows'].shape == (2, 3, 16, cfg.size, cfg.size)
    np.testing.assert_array_equal(it['frame_idx'].numpy().ravel(), calls[0])
    assert (torch.diff(it['frame_idx'], dim=1) == 1).all()
