"""Integration tests of the video data layer: split readers on the official UCF101 lists and on
HMDB51 lists in the official format, decoding backends, the health-check CLI, and epochs over
corrupt datasets (see nbs/02_video, 03_sampling, 04_transforms and 05_datasets for the unit tests)."""
import json, logging, os, shutil, subprocess, sys
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


# ---- reliability of the data layer: each fault created, the clear outcome asserted ----------------------------------

from hcmtl.video import available_backends, transcode_cli, transcode_tree, MANIFEST
from hcmtl.datasets import read_kinetics, read_mmaction, unreadable_in


def small_tree(root: Path) -> Path:
    "A dataset tree with two videos and two non-video files."
    write_video(root / 'a' / 'x.avi', moving_square_frames(10, 64))
    write_video(root / 'b' / 'y.mp4', moving_square_frames(10, 64, 2))
    (root / 'list.txt').write_text('a/x.avi 0\nb/y.mp4 1\n')
    (root / 'labels.csv').write_text('path,label\na/x.avi,0\n')
    return root


def test_transcode_killed_copy_leaves_no_accepted_stub(tmp_path, monkeypatch):
    src, dst = small_tree(tmp_path / 'src'), tmp_path / 'dst'
    real = os.replace
    def killed(a, b):  # the process dies after writing the temporary file, before the rename
        if str(b).endswith('list.txt'): raise KeyboardInterrupt
        return real(a, b)
    monkeypatch.setattr(os, 'replace', killed)
    with pytest.raises(KeyboardInterrupt): transcode_tree(src, dst, 32, workers=1)
    assert not (dst / 'list.txt').exists()  # no stub under the final name
    monkeypatch.setattr(os, 'replace', real)
    r = transcode_tree(src, dst, 32, workers=1)
    assert (dst / 'list.txt').read_text() == (src / 'list.txt').read_text()
    assert r['failed'] == [] and r['done'] >= 1
    # a stub left by an older, non-atomic copy (no manifest record) is not accepted either
    (dst / 'labels.csv').write_text('path,la')
    m = json.loads((dst / MANIFEST).read_text()); del m['outputs']['labels.csv']; (dst / MANIFEST).write_text(json.dumps(m))
    r = transcode_tree(src, dst, 32, workers=1)
    assert r['done'] == 1 and (dst / 'labels.csv').read_text() == (src / 'labels.csv').read_text()


def _transcode_in_step(src, dst, barrier, results):
    "Child of the test below: transcode_tree with every video rename held until the other process reaches it too."
    real = os.replace
    def in_step(a, b):
        if str(a).endswith('.part'): barrier.wait(timeout=60)  # both processes have written this video's temporary file
        return real(a, b)
    os.replace = in_step
    r = transcode_tree(src, dst, 32, workers=1)
    results.put(r['failed'])


def test_two_transcodes_into_one_tree_both_finish(tmp_path):
    import multiprocessing as mp
    from hcmtl.video import clear_meta_cache, video_meta
    src, dst = small_tree(tmp_path / 'src'), tmp_path / 'dst'
    ctx = mp.get_context('fork')
    barrier, results = ctx.Barrier(2), ctx.Queue()
    procs = [ctx.Process(target=_transcode_in_step, args=(src, dst, barrier, results)) for _ in range(2)]
    for p in procs: p.start()
    for p in procs: p.join(120)
    assert [p.exitcode for p in procs] == [0, 0]
    assert [results.get(timeout=5) for _ in procs] == [[], []]  # neither lost a video to the other's rename
    assert not list(dst.rglob('*.part'))
    clear_meta_cache()
    for rel in ('a/x.avi', 'b/y.mp4'): assert video_meta(dst / rel, 'pyav').num_frames == 10


def test_transcode_rerun_with_other_settings_redoes_videos(tmp_path, capsys):
    src, dst = small_tree(tmp_path / 'src'), tmp_path / 'dst'
    assert transcode_cli([str(src), str(dst), '--short-side', '32', '--workers', '2']) == 0
    assert video_meta(dst / 'a' / 'x.avi').height == 32 and video_meta(dst / 'b' / 'y.mp4').height == 32
    assert transcode_cli([str(src), str(dst), '--short-side', '32', '--workers', '1']) == 0
    assert 'wrote 0 files' in capsys.readouterr().out.splitlines()[-1]
    assert transcode_cli([str(src), str(dst), '--short-side', '48', '--workers', '1']) == 0
    assert 'wrote 2 files (2 to transcode' in capsys.readouterr().out.splitlines()[-1]  # the videos, not the lists
    clear_meta_cache()
    assert video_meta(dst / 'a' / 'x.avi').height == 48 and video_meta(dst / 'b' / 'y.mp4').height == 48
    os.utime(src / 'list.txt', ns=(1, 1))  # a changed source is redone too
    assert transcode_tree(src, dst, 48, workers=1)['done'] == 1


def test_transcode_destination_inside_source_does_not_nest(tmp_path, capsys):
    src = small_tree(tmp_path / 'src')
    for _ in range(2):
        assert transcode_cli([str(src), str(src / 'small'), '--short-side', '32', '--workers', '1']) == 0
    assert not (src / 'small' / 'small').exists()
    assert sorted(p.relative_to(src / 'small').as_posix() for p in (src / 'small').rglob('*') if p.is_file()) == \
        sorted([MANIFEST, 'a/x.avi', 'b/y.mp4', 'labels.csv', 'list.txt'])
    capsys.readouterr()
    assert transcode_cli([str(src / 'a'), str(src), '--workers', '1']) == 2  # SRC inside DST: outputs would overwrite inputs
    assert 'inside DST' in capsys.readouterr().err


def short_videos(root: Path) -> dict:
    "A 1-frame, a 3-frame, a long and a truncated (mid-stream) AVI."
    out = {n: write_video(root / 'c' / f'{n}.avi', moving_square_frames(k, 32, seed=k)) for n, k in
           (('one', 1), ('three', 3), ('long', 40), ('cut', 40))}
    data = out['cut'].read_bytes(); out['cut'].write_bytes(data[:len(data) // 2])
    return out


def test_short_videos_warned_counted_and_flagged(tmp_path, caplog, capsys):
    clear_meta_cache()
    v = short_videos(tmp_path / 'data')
    cfg = get_preset('smoke').data  # pretraining window 2 x 4 = 8 frames
    items = [hds.VideoItem(str(v[n]), 0) for n in ('one', 'three', 'long', 'cut')]
    caplog.set_level(logging.WARNING, logger='hcmtl')
    ds = SpeedPairDataset(items, cfg)
    for _ in range(2): shorts = sum(int(b['short'].sum()) for b in DataLoader(ds, batch_size=2))
    assert shorts == 2  # counted per epoch
    warned = [r.getMessage() for r in caplog.records if r.getMessage().startswith('short video')]
    assert len(warned) == 2 and any('one.avi: 1 frames, fewer than the 8' in m for m in warned)  # once per file
    rc = check_videos_cli([str(tmp_path / 'data'), '--preset', 'smoke', '--out', str(tmp_path / 'bl.txt')])
    out = capsys.readouterr().out
    assert rc == 1
    assert 'one.avi: too short: 1 frames < 8' in out and 'three.avi: too short: 3 frames < 8' in out
    assert 'cut.avi: truncated: header claims 40 frames' in out and 'long.avi' not in out
    assert '(min 8 frames)' in out
    assert check_videos_cli([str(tmp_path / 'data'), '--min-frames', '1', '--out', str(tmp_path / 'b2.txt')]) == 1
    assert 'three.avi' not in capsys.readouterr().out  # --min-frames overrides the preset
    assert check_videos_cli([str(tmp_path / 'data'), '--preset', 'nope']) == 2


def test_split_overlap_and_repeats(ucf_root, tmp_path, caplog):
    root = tmp_path / 'ucf'
    shutil.copytree(UCF_LISTS, root / 'ucfTrainTestlist')
    os.symlink(ucf_root / 'UCF-101', root / 'UCF-101')
    tr = root / 'ucfTrainTestlist' / 'trainlist01.txt'
    orig = tr.read_bytes()
    test_line = (root / 'ucfTrainTestlist' / 'testlist01.txt').read_text().splitlines()[0].strip()
    tr.write_bytes(orig + f'{test_line} 1\r\n'.encode())  # a test video in the training list
    with pytest.raises(ValueError, match=r'trainlist01|ucfTrainTestlist.*in both the training and the test list.*v_ApplyEyeMakeup_g01_c01'):
        read_ucf101(root, 1)  # official split claimed: an error
    tr.write_bytes(orig + orig.splitlines(keepends=True)[5])
    with pytest.raises(ValueError, match='listed twice in the training list'): read_ucf101(root, 1)
    sp = read_ucf101(root, 1, official=False)  # not claimed: repeats dropped with a warning
    assert len(sp.train) == 9537 and any('listed twice' in r.getMessage() for r in caplog.records)
    # a hand-made HMDB51 subset: a video with id 1 and id 2 is removed from training, with a warning naming it
    small = write_hmdb_splits(tmp_path / 'h', ['a', 'b'], per_class=(3, 2, 0))
    f = small / 'testTrainMulti_7030_splits' / 'a_test_split1.txt'
    first = f.read_text().splitlines()[0].split()[0]
    f.write_text(f.read_text() + f'{first} 2\n')
    caplog.clear()
    sp = read_hmdb51(small, 1)
    assert first not in {Path(i.path).name for i in sp.train} and first in {Path(i.path).name for i in sp.test}
    assert any('in both the training and the test list' in r.getMessage() and first in r.getMessage() for r in caplog.records)


def test_hmdb51_deleted_class_file_is_named(tmp_path):
    root = write_hmdb_splits(tmp_path / 'hmdb', HMDB51_CLASSES, per_class=(3, 2, 0))
    (root / 'testTrainMulti_7030_splits' / 'kiss_test_split2.txt').unlink()
    with pytest.raises(FileNotFoundError, match=r'kiss_test_split2\.txt'): read_hmdb51(root, 2)
    assert len(read_hmdb51(root, 1, official=False).classes) == 51
    for fold in (1, 2, 3): (root / 'testTrainMulti_7030_splits' / f'kiss_test_split{fold}.txt').unlink(missing_ok=True)
    with pytest.raises(FileNotFoundError, match=r'kiss_test_split1\.txt'): read_hmdb51(root, 1)  # its videos folder remains


def test_blacklist_with_tab_and_newline_names(tmp_path, capsys):
    root = tmp_path / 'kinetics' / 'train'
    good = [write_video(root / 'c' / n, moving_square_frames(20, 32, seed=k)) for k, n in enumerate(('v.mp4', 'w.mp4', 'z.mp4'))]
    bad = [root / 'c' / 'v.mp4\tz.mp4', root / 'c' / 'w.mp4\nq.mp4']  # an old `path<TAB>reason` line would name v.mp4 / w.mp4
    for p in bad: p.write_bytes(b'')
    assert check_videos_cli([str(tmp_path / 'kinetics'), '--preset', 'smoke', '--out', str(tmp_path / 'bl.txt')]) == 1
    bl = Blacklist.from_file(tmp_path / 'bl.txt')
    assert len(bl) == 2 and all(p in bl for p in bad) and not any(p in bl for p in good)
    items = read_kinetics(tmp_path / 'kinetics').train
    assert len(items) == 5
    kept = ClipDataset(items, get_preset('smoke').data, blacklist=tmp_path / 'bl.txt').items
    assert sorted(Path(i.path).name for i in kept) == ['v.mp4', 'w.mp4', 'z.mp4']
    (tmp_path / 'old.txt').write_text(f'# root: {tmp_path / "kinetics"}\ntrain/c/z.mp4\tempty file (0 bytes)\n')
    old = Blacklist.from_file(tmp_path / 'old.txt')  # the older format still reads
    assert good[2] in old and good[0] not in old


def test_check_videos_reports_mov_and_symlink_loops(tmp_path, capsys):
    root = tmp_path / 'data'
    write_video(root / 'c' / 'clip.mov', moving_square_frames(20, 32))
    write_video(root / 'c' / 'clip.mp4', moving_square_frames(20, 32))
    (root / 'c' / 'notes.txt').write_text('x')
    (root / 'c' / 'loop').symlink_to(root, target_is_directory=True)
    (root / 'dangling.mp4').symlink_to(root / 'gone.mp4')
    rc = check_videos_cli([str(root), '--preset', 'smoke', '--out', str(tmp_path / 'bl.txt')])
    out = capsys.readouterr().out
    assert rc == 1
    assert 'checked 2 videos' in out  # the .mov file is checked, not skipped
    assert f'SKIPPED {root / "c" / "loop"}: symlink loop' in out and 'dangling.mp4: broken or looping symlink' in out
    assert 'not checked (not video suffixes): .txt 1' in out
    (root / 'c' / 'loop').unlink(); (root / 'dangling.mp4').unlink()
    assert check_videos_cli([str(root), '--preset', 'smoke', '--out', str(tmp_path / 'bl.txt')]) == 0
    assert len(read_kinetics(tmp_path, 'data').train) == 2  # .mov files are videos to the readers too


def test_evaluation_datasets_report_unreadable_items(tmp_path):
    clear_meta_cache()
    paths = make_video_tree(tmp_path / 'data', n=6)
    bad = corrupt(paths)
    items = [hds.VideoItem(str(p), k % 2) for k, p in enumerate(paths)]
    cfg = get_preset('smoke').data
    for ds, key in ((VideoClipsDataset(items, cfg, substitute=False), 'clips'), (ClipDataset(items, cfg, train=False, substitute=False), 'clip')):
        seen, dropped = [], []
        for b in DataLoader(ds, batch_size=4, num_workers=2):
            seen += b['index'].tolist(); dropped += unreadable_in(b)
            assert b['label'].tolist() == [items[i].label for i in b['index'].tolist()]  # each item keeps its own label
            assert (b[key][~b['ok']] == 0).all()
        assert seen == list(range(6))  # nothing substituted
        assert sorted(Path(items[i].path) for i, _ in dropped) == sorted(bad) and all(r for _, r in dropped)


def test_mmaction_lists(tmp_path):
    "mmaction2's layout for the three datasets (videos/ + <name>_{train,val}_split_N_videos.txt, 0-based labels)."
    root = write_hmdb_splits(tmp_path / 'hmdb', ['brush_hair', 'cartwheel', 'climb'], per_class=(3, 2, 1))
    ref = read_hmdb51(root, 2)
    mm = tmp_path / 'mm_hmdb'; (mm / 'annotations').mkdir(parents=True)
    os.symlink(root / 'videos', mm / 'videos')
    for split, its in (('train', ref.train), ('val', ref.test)):
        (mm / 'annotations' / f'hmdb51_{split}_split_2_videos.txt').write_text(
            ''.join(f"{Path(i.path).relative_to(root / 'videos').as_posix()} {i.label}\n" for i in its))
    got = build_splits('hmdb51', mm, fold=2, val_fraction=0)
    assert got['classes'] == ref.classes
    rel = lambda its, d: [(Path(i.path).relative_to(d).as_posix(), i.label) for i in its]
    assert rel(got['train'], mm / 'videos') == rel(ref.train, root / 'videos') and rel(got['test'], mm / 'videos') == rel(ref.test, root / 'videos')
    # Kinetics-400: videos_train/ + videos_val/, lists beside them; a label whose paths name two folders is an error
    k = tmp_path / 'k400'
    for split, n in (('train', 2), ('val', 1)):
        for c, name in enumerate(('abseiling', 'zumba')):
            for j in range(n): (k / f'videos_{split}' / name).mkdir(parents=True, exist_ok=True); (k / f'videos_{split}' / name / f'{name}{j}.mp4').touch()
        (k / f'kinetics400_{split}_list_videos.txt').write_text(
            ''.join(f'{name}/{name}{j}.mp4 {c}\n' for c, name in enumerate(('abseiling', 'zumba')) for j in range(n)))
    sp = read_kinetics(k)
    assert sp.classes == ['abseiling', 'zumba'] and (len(sp.train), len(sp.test)) == (4, 2)
    assert all(Path(i.path).is_file() for i in sp.train + sp.test)
    (k / 'kinetics400_val_list_videos.txt').write_text('abseiling/abseiling0.mp4 1\n')
    with pytest.raises(ValueError, match=r'kinetics400_val_list_videos.txt:1: label 1 is class .zumba.'): read_mmaction(k, 'kinetics')
    (k / 'kinetics400_train_list_videos.txt').write_text('abseiling/abseiling0.mp4\n')
    with pytest.raises(ValueError, match=r"kinetics400_train_list_videos.txt:1: expected '<path> <label>'"): read_kinetics(k)


def test_smoke_world_is_clean(smoke_world, tmp_path, capsys, caplog):
    "The embedded world passes the health check and reads through both layouts without a warning."
    caplog.set_level(logging.WARNING, logger='hcmtl')
    for name in ('kinetics', 'ucf101', 'hmdb51'):
        assert check_videos_cli([str(smoke_world / name), '--preset', 'smoke', '--out', str(tmp_path / f'{name}.txt')]) == 0, capsys.readouterr().out
    ref = build_splits('ucf101', smoke_world / 'ucf101', val_fraction=0)
    assert caplog.records == []
    mm = tmp_path / 'mm'; mm.mkdir()
    vids = hds._subdir(smoke_world / 'ucf101', ['UCF-101', 'UCF101', 'videos'], 'video')
    os.symlink(vids, mm / 'videos')
    for split, its in (('train', ref['train']), ('val', ref['test'])):
        (mm / f'ucf101_{split}_split_1_videos.txt').write_text(''.join(f"{Path(i.path).relative_to(vids).as_posix()} {i.label}\n" for i in its))
    got = build_splits('ucf101', mm, val_fraction=0)
    assert [(Path(i.path).name, i.label, i.group) for i in got['train']] == [(Path(i.path).name, i.label, i.group) for i in ref['train']]


def test_every_backend_reads_the_same_frames(tmp_path):
    assert {'decord', 'pyav'} <= set(available_backends())
    for ext in ('.avi', '.mp4'):
        p = write_video(tmp_path / f'v{ext}', moving_square_frames(30, 48, 2, 1))
        idx = [25, 3, 3, 14]
        ref = read_frames(p, idx, backend='pyav')
        for b in available_backends():
            assert video_meta(p, b).num_frames == 30
            np.testing.assert_array_equal(read_frames(p, idx, backend=b), ref)
