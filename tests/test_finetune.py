"""Fine-tuning and evaluation end to end on the smoke world (`smoke_world`, tests/conftest.py): hcmtl-finetune,
hcmtl-eval, metrics, unreadable videos, checksums, run directories."""
import contextlib, io, json, os, shutil
from pathlib import Path

import pytest
import torch

from hcmtl.metrics import (clip_and_video_accuracy, classification_report, read_predictions, retrieval_recall,
                           topk_accuracy, video_scores)
from hcmtl.finetune import eval_cli, finetune_cli, read_metrics

os.environ['HCMTL_PROGRESS'] = '0'


def _quiet(fn, *a):
    "Call a CLI, returning (exit code, stdout)."
    with contextlib.redirect_stdout(io.StringIO()) as out: rc = fn(*a)
    return rc, out.getvalue()


@pytest.fixture(scope='session')
def world(smoke_world):
    "The session's smoke world (tests/conftest.py)."
    return smoke_world


@pytest.fixture(scope='session')
def pretrained(world, tmp_path_factory):
    "A smoke pretraining run of the full model (smoke teacher trained first)."
    from hcmtl.teachers import teacher_cli
    from hcmtl.pretrain import pretrain_cli
    if not (world / 'teacher.pt').is_file():
        assert _quiet(teacher_cli, ['train', '--data', str(world), '--preset', 'smoke', '--epochs', '1'])[0] == 0
    run = tmp_path_factory.mktemp('pretrain') / 'run'
    rc, _ = _quiet(pretrain_cli, ['--preset', 'smoke', '--data', str(world), '--out', str(run)])
    assert rc == 0 and (run / 'encoder.pt').is_file()
    return run


@pytest.fixture(scope='session')
def ucf_run(world, pretrained, tmp_path_factory):
    out = tmp_path_factory.mktemp('ft') / 'ucf'
    rc, txt = _quiet(finetune_cli, ['--pretrained', str(pretrained), '--dataset', 'ucf101', '--fold', '1',
                                    '--data', str(world), '--preset', 'smoke', '--out', str(out)])
    assert rc == 0, txt
    return out


def test_topk_and_video_average_match_direct_computation():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(7, 5, 6, generator=g)  # 7 videos × 5 clips × 6 classes
    labels = torch.randint(0, 6, (7,), generator=g)
    for k in (1, 2, 5):
        direct_clip = sum(int(labels[v]) in logits[v, c].argsort(descending=True)[:k].tolist()
                          for v in range(7) for c in range(5)) / 35 * 100
        mean = [logits[v].sum(0) / 5 for v in range(7)]
        direct_video = sum(int(labels[v]) in mean[v].argsort(descending=True)[:k].tolist() for v in range(7)) / 7 * 100
        r = clip_and_video_accuracy(logits, labels, ks=(k,))
        assert r['clip'][f'acc{k}'] == pytest.approx(direct_clip)
        assert r['video'][f'acc{k}'] == pytest.approx(direct_video)
    probs = torch.stack([torch.stack([torch.exp(l) / torch.exp(l).sum() for l in logits[v]]).mean(0) for v in range(7)])
    assert torch.allclose(video_scores(logits, 'softmax'), probs, atol=1e-6)
    s = torch.tensor([[0.1, 0.5, 0.4], [0.9, 0.05, 0.05]])
    assert topk_accuracy(s, torch.tensor([2, 0]), ks=(1, 2)) == {'acc1': 50.0, 'acc2': 100.0}
    rep = classification_report(s, torch.tensor([2, 0]), ['a', 'b', 'c'])
    assert rep['confusion'] == [[1, 0, 0], [0, 0, 0], [0, 1, 0]] and rep['per_class'] == {'a': 100.0, 'b': None, 'c': 0.0}
    q, gal = torch.eye(3), torch.tensor([[0., 1, 0], [1, 0.1, 0], [0, 0, 1]])
    r = retrieval_recall(q, torch.tensor([0, 1, 2]), gal, torch.tensor([1, 0, 2]), ks=(1, 2))
    assert r == {'R@1': 100.0, 'R@2': 100.0}


def test_finetune_pretrained_ucf(ucf_run, pretrained):
    m = read_metrics(ucf_run)
    for level in ('clip', 'video'):
        for k in ('acc1', 'acc5'): assert 0 <= m['test'][level][k] <= 100
    assert m['test']['video']['clips'] == 2 and m['test']['clip']['num_clips'] == 2 * m['test']['video']['num_videos']
    assert 0 <= m['linear_probe']['acc1'] <= 100 and m['linear_probe']['weight_decay'] > 0
    assert set(m['retrieval']) == {'R@1', 'R@5', 'R@10', 'R@20', 'R@50'}
    assert m['pretrained'] == str(pretrained / 'encoder.pt') and m['variant'] == 'full'
    assert m['encoder_load']['loaded'] > 0 and m['encoder_load']['missing'] == 0
    assert m['config']['data']['crop_scale'] == [0.25, 1.0] and m['config']['data']['jitter_p'] == 0
    sel = m['selection']
    assert sel['num_val_videos'] > 0 and len(sel['history']) == m['config']['finetune']['epochs']
    best = max(sel['history'], key=lambda h: (h['acc1'], -h['loss']))
    assert sel['best']['acc1'] == best['acc1']
    info = json.loads((ucf_run / 'finetune.json').read_text())
    test_paths = set(read_predictions(ucf_run / 'predictions.csv')['paths'])
    assert info['splits']['test'] == len(test_paths) == m['test']['video']['num_videos']
    for f in ('best.pt', 'confusion.csv', 'test_scores.pt', 'log.csv', 'features/train.pt', 'features/test.pt'):
        assert (ucf_run / f).is_file(), f


def test_eval_reproduces_test_numbers(ucf_run):
    m = read_metrics(ucf_run)
    rc, out = _quiet(eval_cli, ['--run', str(ucf_run)])
    assert rc == 0
    ev = json.loads(out)
    for level in ('clip', 'video'):
        for k in ('acc1', 'acc5'): assert ev[level][k] == pytest.approx(m['test'][level][k])
    saved = torch.load(ucf_run / 'test_scores.pt', weights_only=True)
    again = read_predictions(ucf_run / 'eval' / 'clips2-logits' / 'predictions.csv')
    assert torch.allclose(again['scores'], video_scores(saved['clip_logits']), atol=1e-4)
    rc, out = _quiet(eval_cli, ['--run', str(ucf_run), '--clips', '3', '--average', 'softmax'])
    assert rc == 0 and json.loads(out)['video']['clips'] == 3
    assert (ucf_run / 'eval' / 'clips3-softmax' / 'metrics.json').is_file()


def test_finetune_scratch_hmdb(world, tmp_path):
    out = tmp_path / 'hmdb'
    rc, txt = _quiet(finetune_cli, ['--pretrained', 'none', '--dataset', 'hmdb51', '--data', str(world),
                                    '--preset', 'smoke', '--variant', 'no_kd', '--out', str(out)])
    assert rc == 0, txt
    m = read_metrics(out)
    assert (m['pretrained'], m['variant'], m['encoder_load']['loaded']) == ('none', 'no_kd', 0)
    for k in ('video_acc1', 'video_acc5', 'clip_acc1', 'clip_acc5', 'linear_acc1', 'R@1', 'R@5'):
        assert 0 <= m['summary'][k] <= 100
    assert len(m['per_class']) == 3


def test_resume_after_preemption_is_exact(world, tmp_path, monkeypatch):
    args = ['--pretrained', 'none', '--dataset', 'hmdb51', '--data', str(world), '--preset', 'smoke',
            'finetune.epochs=3']
    assert _quiet(finetune_cli, args + ['--out', str(tmp_path / 'a')])[0] == 0
    monkeypatch.setenv('HCMTL_FAULT', 'term@2')
    assert _quiet(finetune_cli, args + ['--out', str(tmp_path / 'b')])[0] == 143
    assert not (tmp_path / 'b' / 'metrics.json').exists()
    monkeypatch.delenv('HCMTL_FAULT')
    assert _quiet(finetune_cli, ['--resume', str(tmp_path / 'b')])[0] == 0
    a, b = read_metrics(tmp_path / 'a'), read_metrics(tmp_path / 'b')
    assert a['selection']['history'] == b['selection']['history'] and a['summary'] == b['summary']
    wa = torch.load(tmp_path / 'a' / 'best.pt', weights_only=True)['state_dict']
    wb = torch.load(tmp_path / 'b' / 'best.pt', weights_only=True)['state_dict']
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


def test_bad_inputs_are_named(world, pretrained, ucf_run, tmp_path, capsys):
    rc = finetune_cli(['--pretrained', str(tmp_path / 'nope'), '--dataset', 'ucf101', '--preset', 'smoke'])
    assert rc == 2 and 'nope' in capsys.readouterr().err
    rc = finetune_cli(['--pretrained', str(pretrained), '--dataset', 'ucf101', '--data', str(world),
                       '--preset', 'smoke', '--variant', 'ti'])
    assert rc == 2 and 'pretrained with' in capsys.readouterr().err
    bad = tmp_path / 'encoder.pt'
    bad.write_bytes((pretrained / 'encoder.pt').read_bytes()[:100])
    rc = finetune_cli(['--pretrained', str(bad), '--dataset', 'ucf101', '--data', str(world), '--preset', 'smoke'])
    assert rc == 2 and 'encoder.pt' in capsys.readouterr().err
    rc = finetune_cli(['--pretrained', 'none', '--dataset', 'ucf101', '--data', str(world), '--preset', 'smoke',
                       '--out', str(ucf_run)])
    assert rc == 2 and '--resume' in capsys.readouterr().err
    rc = eval_cli(['--run', str(tmp_path)])
    assert rc == 2 and 'not a fine-tuning run' in capsys.readouterr().err


def test_unreadable_test_video_is_dropped_and_named(world, tmp_path, capsys):
    "A zero-byte test video is dropped, counted and named (metrics.json, summary, hcmtl-eval), never replaced by another."
    from hcmtl.datasets import build_splits
    w = tmp_path / 'w'
    shutil.copytree(world / 'ucf101', w / 'ucf101')
    test = build_splits('ucf101', w / 'ucf101', 1, 0.25, 0)['test']
    bad = Path(test[0].path); bad.write_bytes(b'')
    out = tmp_path / 'ft'
    rc, txt = _quiet(finetune_cli, ['--pretrained', 'none', '--dataset', 'ucf101', '--data', str(w / 'ucf101'),
                                    '--preset', 'smoke', '--variant', 'no_kd', '--out', str(out)])
    assert rc == 0, txt
    m = read_metrics(out)
    assert m['summary']['skipped_videos'] == 1 and json.loads(txt.splitlines()[0])['skipped_videos'] == 1
    assert [s['path'] for s in m['skipped_videos']['test']] == [str(bad)]
    assert m['test']['video']['num_videos'] == len(test) - 1
    preds = read_predictions(out / 'predictions.csv')
    assert bad.name not in ' '.join(preds['paths']) and len(preds['paths']) == len(test) - 1
    rc, txt = _quiet(eval_cli, ['--run', str(out)])
    ev = json.loads(txt)
    assert rc == 0 and ev['skipped_videos'] == 1 and ev['skipped'] == [str(bad)]


def test_encoder_and_best_checksums(world, pretrained, ucf_run, tmp_path, capsys, caplog):
    "A bit-flipped encoder.pt or best.pt is refused by name; an encoder without its checksum file loads with a loud warning."
    enc = tmp_path / 'p' / 'encoder.pt'; enc.parent.mkdir()
    data = bytearray((pretrained / 'encoder.pt').read_bytes()); data[-300:-236] = bytes(b ^ 0xFF for b in data[-300:-236])
    enc.write_bytes(data); shutil.copy(pretrained / 'encoder.pt.sha256', tmp_path / 'p' / 'encoder.pt.sha256')
    rc = finetune_cli(['--pretrained', str(enc), '--dataset', 'ucf101', '--data', str(world), '--preset', 'smoke'])
    err = capsys.readouterr().err
    assert rc == 2 and 'corrupt' in err and str(enc) in err, err
    from hcmtl.finetune import load_pretrained
    plain = tmp_path / 'q' / 'encoder.pt'; plain.parent.mkdir(); shutil.copy(pretrained / 'encoder.pt', plain)
    assert not load_pretrained(plain).scratch and 'NO CHECKSUM' in caplog.text
    run = tmp_path / 'run'; shutil.copytree(ucf_run, run)
    b = bytearray((run / 'best.pt').read_bytes()); b[-200] ^= 0xFF; (run / 'best.pt').write_bytes(b)
    rc = eval_cli(['--run', str(run)])
    assert rc == 2 and 'best.pt' in capsys.readouterr().err


def test_run_directories_are_not_shared(world, pretrained, ucf_run, tmp_path, capsys):
    "hcmtl-finetune --out onto a pretraining run is refused and changes nothing; --resume needs a fine-tuning run."
    before = {p.name: p.read_bytes() for p in pretrained.iterdir() if p.is_file()}
    rc = finetune_cli(['--pretrained', str(pretrained), '--dataset', 'ucf101', '--data', str(world), '--preset', 'smoke',
                       '--out', str(pretrained)])
    err = capsys.readouterr().err
    assert rc == 2 and 'holds a pretrain run' in err and str(pretrained) in err, err
    assert {p.name: p.read_bytes() for p in pretrained.iterdir() if p.is_file()} == before
    rc = finetune_cli(['--resume', str(pretrained)])
    assert rc == 2 and 'not a fine-tuning run' in capsys.readouterr().err
    rc, txt = _quiet(finetune_cli, ['--resume', str(ucf_run)])  # a finished fine-tuning run: noticed, left alone
    assert rc == 0 and json.loads(txt.splitlines()[0]) == {k: (round(v, 2) if isinstance(v, float) else v)
                                                            for k, v in read_metrics(ucf_run)['summary'].items()}
    import yaml
    assert yaml.safe_load((ucf_run / 'config.yaml').read_text())['out'] == str(ucf_run.absolute())


_STARTING_RUN = '''
import sys, time
from pathlib import Path
from hcmtl import engine
from hcmtl.core import get_preset
out, ready = map(Path, sys.argv[1:])
def slow_listing():  # where a real start spends its time: after config.yaml, before environment.json and run.json
    ready.touch(); time.sleep(60); return {}
engine.installed_packages = slow_listing
with engine.RunDir(out, 'finetune', get_preset('smoke')) as rd: rd.start()
'''


def test_run_still_starting_is_named_as_the_lock_holder(world, tmp_path):
    "A second hcmtl-finetune into a --out whose run has written config.yaml but not yet run.json is refused as in use."
    import subprocess, sys, time
    out, ready = tmp_path / 'run', tmp_path / 'ready'
    a = subprocess.Popen([sys.executable, '-c', _STARTING_RUN, str(out), str(ready)])
    try:
        t0 = time.time()
        while not ready.exists() and a.poll() is None and time.time() - t0 < 120: time.sleep(0.05)
        assert ready.exists() and (out / 'config.yaml').is_file() and not (out / 'run.json').exists()
        b = subprocess.run(['hcmtl-finetune', '--pretrained', 'none', '--dataset', 'ucf101', '--data', str(world),
                            '--preset', 'smoke', '--device', 'cpu', '--out', str(out)],
                           capture_output=True, text=True, timeout=300, env={**os.environ, 'HCMTL_PROGRESS': '0'})
        assert b.returncode == 2 and f'in use by process {a.pid}' in b.stderr, b.stderr
        assert 'holds a' not in b.stderr, b.stderr
        assert json.loads((out / '.lock').read_text())['pid'] == a.pid  # the refused process left the lock alone
    finally: a.kill(); a.wait()


def test_pretrained_a_finetuning_run_says_what_to_pass(world, pretrained, ucf_run, capsys):
    "--pretrained <a fine-tuning run>: exit 2, the folder named as a fine-tuning run and the encoder it started from."
    rc = finetune_cli(['--pretrained', str(ucf_run), '--dataset', 'ucf101', '--data', str(world), '--preset', 'smoke'])
    err = capsys.readouterr().err
    assert rc == 2 and f'{ucf_run} is a fine-tuning run' in err and 'a pretraining run directory or its encoder.pt' in err
    assert f'started from {pretrained / "encoder.pt"}' in err and 'hcmtl-pretrain --resume' not in err, err
