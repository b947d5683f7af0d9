"""hcmtl-pretrain end to end on the smoke world (`smoke_world`, tests/conftest.py): every variant, SIGKILL and resume,
corrupt checkpoints, NaN stop, SIGTERM, DDP with torchrun (gloo, CPU), run directories, guards, logs."""
import json, logging, os, shutil, subprocess, sys
from pathlib import Path

import pytest
import torch

from hcmtl.engine import list_checkpoints

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def _tool(name):
    return shutil.which(name) or str(BIN / name)


def _env(**extra):
    env = dict(os.environ, HCMTL_PROGRESS='0', PYTHONUNBUFFERED='1')
    env.pop('HCMTL_FAULT', None)
    env.update(extra)
    return env


# 8 pool videos, batch 2 -> 4 steps per epoch, 2 epochs = 8 steps; checkpoints every 3 steps and at epoch ends
RESUME_OV = ['pretrain.epochs=2', 'pretrain.batch_size=2', 'pretrain.max_steps=null', 'pretrain.ckpt_every=3',
             'pretrain.keep_last=2', 'pretrain.log_every=1']


def _pretrain(world, out, *extra, fault=None, resume=False, check=True):
    "Run hcmtl-pretrain in a subprocess; returns the CompletedProcess."
    args = [_tool('hcmtl-pretrain')]
    args += ['--resume', str(out)] if resume else ['--preset', 'smoke', '--data', str(world), '--out', str(out), '--device', 'cpu']
    args += list(extra)
    env = _env(**({'HCMTL_FAULT': fault} if fault else {}))
    r = subprocess.run(args, capture_output=True, text=True, env=env, timeout=600)
    if check and r.returncode != 0:
        raise AssertionError(f"{args} exited {r.returncode}\nstdout:\n{r.stdout}\nstderr:\n{r.stderr}")
    return r


def _pretrain_here(world, out, *extra, resume=False):
    "Run hcmtl-pretrain in this process (no start-up cost); asserts success."
    from hcmtl.pretrain import pretrain_cli
    args = ['--resume', str(out)] if resume else ['--preset', 'smoke', '--data', str(world), '--out', str(out), '--device', 'cpu']
    assert pretrain_cli(args + list(extra)) == 0


@pytest.fixture(autouse=True)
def _quiet(monkeypatch):
    monkeypatch.setenv('HCMTL_PROGRESS', '0'); monkeypatch.delenv('HCMTL_FAULT', raising=False)


def _final_state(run):
    ck = list_checkpoints(Path(run) / 'checkpoints')[-1]
    return torch.load(ck, weights_only=True)


def _assert_same_weights(run_a, run_b):
    a, b = _final_state(run_a), _final_state(run_b)
    assert a['global_step'] == b['global_step']
    assert a['model'].keys() == b['model'].keys()
    diff = [k for k in a['model'] if not torch.equal(a['model'][k], b['model'][k])]
    assert not diff, f"weights differ after resume: {diff[:5]}"
    ea = torch.load(Path(run_a) / 'encoder.pt', weights_only=True)['state_dict']
    eb = torch.load(Path(run_b) / 'encoder.pt', weights_only=True)['state_dict']
    assert all(torch.equal(ea[k], eb[k]) for k in ea)


@pytest.mark.parametrize('variant', ['full', 'no_kd', 'ti'])
def test_variants_smoke(smoke_world, tmp_path, variant, monkeypatch):
    "hcmtl-pretrain --preset smoke for each variant: a complete run directory, weights_only-loadable files."
    from hcmtl.pretrain import pretrain_cli, read_log
    monkeypatch.setenv('HCMTL_PROGRESS', '0'); monkeypatch.delenv('HCMTL_FAULT', raising=False)
    out = tmp_path / variant
    assert pretrain_cli(['--preset', 'smoke', '--variant', variant, '--data', str(smoke_world), '--out', str(out),
                         '--device', 'cpu']) == 0
    for f in ('config.yaml', 'environment.json', 'log.csv', 'encoder.pt', 'done.json'):
        assert (out / f).is_file(), f
    enc = torch.load(out / 'encoder.pt', weights_only=True)
    assert enc['meta']['variant'] == variant and enc['state_dict']
    from hcmtl.core import load_config
    from hcmtl.model import HCMTLClassifier
    res = HCMTLClassifier(load_config(out / 'config.yaml').model, num_classes=4).load_encoder(out / 'encoder.pt')
    assert res['loaded'] and not res['missing'] and not res['unexpected'], res
    ck = _final_state(out)
    assert ck['global_step'] == json.loads((out / 'done.json').read_text())['global_step'] > 0
    assert 'queue' in ''.join(ck['model'])
    df = read_log(out)
    steps = df[df.kind == 'step']
    assert {'loss', 'motion', 'app', 'lr', 'clips_per_s', 'data_wait', 'skipped'} <= set(df.columns)
    assert steps['loss'].notna().all() and (steps['clips_per_s'] > 0).all()
    assert ('kd' in df and steps['kd'].notna().all()) == (variant != 'no_kd')
    assert (df.kind == 'epoch').any()


@pytest.fixture(scope='module')
def reference_run(smoke_world, tmp_path_factory):
    "Run A: 8 steps uninterrupted."
    out = tmp_path_factory.mktemp('resume') / 'A'
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv('HCMTL_PROGRESS', '0'); mp.delenv('HCMTL_FAULT', raising=False)
        _pretrain_here(smoke_world, out, *RESUME_OV)
    return out


@pytest.mark.parametrize('workers', [0, 2])
def test_kill_and_resume_is_exact(smoke_world, reference_run, tmp_path, workers, caplog):
    "A run SIGKILLed mid-epoch (after step 7; last checkpoint at step 6) and resumed ends with A's weights."
    out = tmp_path / 'B'
    ov = [*RESUME_OV, f'data.num_workers={workers}']
    r = _pretrain(smoke_world, out, *ov, fault='kill@7', check=False)
    assert r.returncode == -9, (r.returncode, r.stderr)
    assert [p.name for p in list_checkpoints(out / 'checkpoints')] == ['ckpt-00000004.pt', 'ckpt-00000006.pt']
    assert not (out / 'done.json').exists()
    caplog.set_level(logging.INFO)
    _pretrain_here(smoke_world, out, resume=True)
    assert 'resumed from' in caplog.text and 'ckpt-00000006.pt' in caplog.text, caplog.text
    _assert_same_weights(reference_run, out)
    import pandas as pd
    la, lb = pd.read_csv(reference_run / 'log.csv'), pd.read_csv(out / 'log.csv')
    assert list(la.step) == list(lb.step)
    assert la['loss'].tolist() == lb['loss'].tolist()


def test_corrupt_checkpoint_falls_back(smoke_world, reference_run, tmp_path, caplog):
    "A truncated newest checkpoint is reported by name; the previous one is used and the run still ends like A."
    out = tmp_path / 'C'
    shutil.copytree(reference_run, out)
    newest = list_checkpoints(out / 'checkpoints')[-1]
    newest.write_bytes(newest.read_bytes()[: newest.stat().st_size // 2])
    _pretrain_here(smoke_world, out, resume=True)
    assert newest.name in caplog.text and 'truncated' in caplog.text and 'falling back' in caplog.text, caplog.text
    _assert_same_weights(reference_run, out)


def test_sigterm_saves_and_resumes(smoke_world, reference_run, tmp_path):
    "SIGTERM (preemption) after step 5: a checkpoint is saved, exit code 143; resuming ends like A."
    out = tmp_path / 'T'
    r = _pretrain(smoke_world, out, *RESUME_OV, fault='term@5', check=False)
    assert r.returncode == 143, (r.returncode, r.stderr)
    assert 'SIGTERM' in r.stderr and '--resume' in r.stderr
    assert list_checkpoints(out / 'checkpoints')[-1].name == 'ckpt-00000006.pt'
    _pretrain_here(smoke_world, out, resume=True)
    _assert_same_weights(reference_run, out)


def test_nan_stops_with_step_and_term(smoke_world, tmp_path, monkeypatch, capsys):
    "A NaN in L_KL at step 3 stops the run naming step and term; the last good checkpoint (step 2) is intact."
    from hcmtl.pretrain import pretrain_cli
    monkeypatch.setenv('HCMTL_FAULT', 'nan:kd@3')
    out = tmp_path / 'N'
    rc = pretrain_cli(['--preset', 'smoke', '--data', str(smoke_world), '--out', str(out), '--device', 'cpu',
                       'pretrain.batch_size=2', 'pretrain.ckpt_every=2', 'pretrain.max_steps=6', 'pretrain.epochs=2'])
    err = capsys.readouterr().err
    assert rc == 1 and 'step 3' in err and "'kd'" in err, err
    cks = list_checkpoints(out / 'checkpoints')
    assert [p.name for p in cks] == ['ckpt-00000002.pt']
    assert torch.load(cks[0], weights_only=True)['global_step'] == 2
    assert not (out / 'done.json').exists()


def test_huge_lr_diverges_with_message(smoke_world, tmp_path, monkeypatch, capsys):
    "lr=1e9 blows the weights up; the run stops at the first exploding (or non-finite) loss with a message."
    from hcmtl.pretrain import pretrain_cli
    monkeypatch.setenv('HCMTL_PROGRESS', '0'); monkeypatch.delenv('HCMTL_FAULT', raising=False)
    rc = pretrain_cli(['--preset', 'smoke', '--data', str(smoke_world), '--out', str(tmp_path / 'L'), '--device', 'cpu',
                       'pretrain.lr=1000000000.0', 'pretrain.batch_size=2', 'pretrain.max_steps=8', 'pretrain.epochs=2'])
    err = capsys.readouterr().err
    assert rc == 1 and ('non-finite loss at step' in err or 'loss exploded at step' in err), err  # stopped before NaN


def test_torchrun_two_processes(smoke_world, tmp_path):
    "torchrun --nproc_per_node 2 (gloo): identical weights on both ranks, queue filled with keys of both ranks."
    out = tmp_path / 'D'
    args = [_tool('torchrun'), '--standalone', '--nproc_per_node', '2', _tool('hcmtl-pretrain'), '--preset', 'smoke',
            '--data', str(smoke_world), '--out', str(out), '--device', 'cpu',
            'pretrain.batch_size=2', 'pretrain.max_steps=null', 'pretrain.epochs=2', 'loss.queue_size=64']
    r = subprocess.run(args, capture_output=True, text=True, env=_env(OMP_NUM_THREADS='1'), timeout=600)
    assert r.returncode == 0, r.stderr[-4000:]
    done = json.loads((out / 'done.json').read_text())
    assert done['world_size'] == 2 and done['global_batch'] == 4
    d0, d1 = done['rank_digests']
    assert d0['parameters'] == d1['parameters'], "ranks ended with different weights"
    assert d0['queue'] == d1['queue'], "ranks ended with different queues"
    steps = done['global_step']
    assert steps == 4  # 8 videos / (2 ranks × 2) = 2 steps per epoch, 2 epochs
    state = _final_state(out)['model']
    assert state['queue'].shape == (64, 16)
    # every step enqueued the keys of both ranks (2 ranks x 2): the pointer moved 4 rows a step, and the two
    # ranks' queues are identical (checked above); a rank-local enqueue would move 2 and make them differ
    assert int(state['queue_ptr']) == (steps * 4) % 64


def test_missing_data_or_teacher_is_a_clear_error(smoke_world, tmp_path, capsys):
    "A missing data root or teacher file: exit code 2 and a message naming the path (no traceback)."
    from hcmtl.pretrain import pretrain_cli
    assert pretrain_cli(['--preset', 'smoke', '--data', str(tmp_path / 'nowhere'), '--out', str(tmp_path / 'r1')]) == 2
    assert 'data.root' in capsys.readouterr().err
    w = tmp_path / 'w'; w.mkdir()
    (w / 'kinetics').symlink_to(Path(smoke_world) / 'kinetics')  # a pool, but no teacher.pt
    assert pretrain_cli(['--preset', 'smoke', '--data', str(w), '--out', str(tmp_path / 'r2'), '--device', 'cpu']) == 2
    err = capsys.readouterr().err
    assert str(w / 'teacher.pt') in err and 'hcmtl-teacher train' in err, err
    assert pretrain_cli(['--preset', 'smoke', '--data', str(smoke_world), '--out', str(tmp_path / 'r3'), '--device', 'cpu',
                         'pretrain.max_steps=1']) == 0
    assert pretrain_cli(['--preset', 'smoke', '--data', str(smoke_world), '--out', str(tmp_path / 'r3')]) == 2
    assert '--resume' in capsys.readouterr().err  # an existing run is not overwritten


def test_teacher_cache_is_built_and_used(smoke_world, tmp_path, monkeypatch, capsys):
    "hcmtl-teacher cache, then pretraining with teacher.cache: F_t comes from the cache; a missing cache is named."
    from hcmtl.teachers import teacher_cli
    from hcmtl.pretrain import pretrain_cli, build_pretraining, pretrain_step
    from hcmtl.core import apply_overrides, get_preset
    monkeypatch.setenv('HCMTL_PROGRESS', '0'); monkeypatch.delenv('HCMTL_FAULT', raising=False)
    cache = tmp_path / 'cache'
    assert teacher_cli(['cache', '--data', str(smoke_world), '--out', str(cache), '--preset', 'smoke']) == 0
    assert len(list(cache.glob('*.npz'))) == 8  # every pool video of the smoke world
    cfg = apply_overrides(get_preset('smoke'), [f'data.root={smoke_world}', f'teacher.cache={cache}', 'teacher.source=frame'])
    p = build_pretraining(cfg)
    terms = pretrain_step(p, next(iter(p.loader)))
    assert p.cache_hits == 1 and torch.isfinite(terms['kd'])
    out = tmp_path / 'run'
    assert pretrain_cli(['--preset', 'smoke', '--data', str(smoke_world), '--out', str(out), '--device', 'cpu',
                         f'teacher.cache={cache}', 'teacher.source=frame']) == 0
    assert (out / 'done.json').is_file()
    assert pretrain_cli(['--preset', 'smoke', '--data', str(smoke_world), '--out', str(tmp_path / 'x'),
                         '--device', 'cpu', 'teacher.source=frame', f'teacher.cache={tmp_path / "nope"}']) == 2
    assert 'no cache folder' in capsys.readouterr().err
    assert pretrain_cli(['--preset', 'smoke', '--data', str(smoke_world), '--out', str(tmp_path / 'y'),
                         '--device', 'cpu', f'teacher.cache={cache}']) == 2  # smoke parses crops: the cache would be ignored
    assert 'teacher.source=frame' in capsys.readouterr().err


# --- run directories, guards, logs -------------------------------------------------------------------------------

SHORT = ['pretrain.max_steps=2', 'pretrain.batch_size=2', 'pretrain.epochs=2', 'pretrain.ckpt_every=1',
         'pretrain.log_every=1']


def _cli(capsys, *args):
    "pretrain_cli in this process: (exit code, stderr)."
    from hcmtl.pretrain import pretrain_cli
    capsys.readouterr()
    rc = pretrain_cli([str(a) for a in args])
    return rc, capsys.readouterr().err


def _run_args(world, out, *extra):
    return ['--preset', 'smoke', '--data', world, '--out', out, '--device', 'cpu', *SHORT, *extra]


def _snapshot(run):
    return {p.relative_to(run).as_posix(): p.read_bytes() for p in Path(run).rglob('*')
            if p.is_file() and 'tensorboard' not in p.parts}


def test_requeued_run_ends_identical(smoke_world, reference_run, tmp_path):
    "A run SIGKILLed after step 7 and started again with the very same command (no --resume) ends like A."
    out = tmp_path / 'R'
    r = _pretrain(smoke_world, out, *RESUME_OV, fault='kill@7', check=False)
    assert r.returncode == -9, (r.returncode, r.stderr)
    r = _pretrain(smoke_world, out, *RESUME_OV)
    assert 'resumed from' in r.stderr and 'ckpt-00000006.pt' in r.stderr, r.stderr
    _assert_same_weights(reference_run, out)
    import pandas as pd
    assert pd.read_csv(reference_run / 'log.csv')['loss'].tolist() == pd.read_csv(out / 'log.csv')['loss'].tolist()


def test_finished_run_is_not_overwritten(smoke_world, tmp_path, capsys):
    "--out onto a finished run whose checkpoints/ was removed: nothing is overwritten; another config is refused by key."
    out = tmp_path / 'F'
    assert _cli(capsys, *_run_args(smoke_world, out))[0] == 0
    shutil.rmtree(out / 'checkpoints')
    before = _snapshot(out)
    rc, err = _cli(capsys, *_run_args(smoke_world, out))  # the same command: the run is complete
    assert rc == 0 and _snapshot(out) == before
    rc, err = _cli(capsys, *_run_args(smoke_world, out, 'pretrain.lr=0.2'))
    assert rc == 2 and 'pretrain.lr: 0.05 → 0.2' in err and str(out) in err and '--out' in err, err
    rc, err = _cli(capsys, '--resume', out, 'pretrain.max_steps=4')
    assert rc == 2 and 'checkpoints/ is gone' in err, err
    assert _snapshot(out) == before


def test_config_records_real_out_and_checksums(smoke_world, tmp_path, capsys):
    "config.yaml records the real run directory; encoder.pt and done.json have checksum files; environment.json the precision."
    import yaml
    out = tmp_path / 'O'
    assert _cli(capsys, *_run_args(smoke_world, out))[0] == 0
    assert yaml.safe_load((out / 'config.yaml').read_text())['out'] == str(out.absolute())
    from hcmtl.engine import verify_bytes
    for f in ('encoder.pt', 'done.json'):
        assert verify_bytes(out / f, (out / f).read_bytes()), f
    env = json.loads((out / 'environment.json').read_text())
    assert env['precision']['precision'] in ('fp32', 'bf16', 'fp16')
    assert json.loads((out / 'run.json').read_text())['kind'] == 'pretrain'


def test_failed_start_leaves_no_run_dir(smoke_world, tmp_path, capsys):
    "A start that fails (no teacher) leaves neither the --out directory nor a generated one behind."
    w = tmp_path / 'w'; w.mkdir()
    (w / 'kinetics').symlink_to(Path(smoke_world) / 'kinetics')
    rc, err = _cli(capsys, *_run_args(w, tmp_path / 'r'))
    assert rc == 2 and 'teacher.pt' in err and not (tmp_path / 'r').exists()
    rc, err = _cli(capsys, '--preset', 'smoke', '--data', w, '--device', 'cpu', f'out={tmp_path / "runs"}')
    assert rc == 2 and not any((tmp_path / 'runs').glob('*')), list((tmp_path / 'runs').glob('*'))


def test_run_dir_lock(smoke_world, tmp_path, capsys, caplog):
    "A live holder of the run directory's lock refuses a second process by pid; a dead holder's lock is taken over."
    import socket
    out = tmp_path / 'K'; out.mkdir()
    holder = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])
    try:
        (out / '.lock').write_text(json.dumps({'pid': holder.pid, 'host': socket.gethostname()}))
        rc, err = _cli(capsys, *_run_args(smoke_world, out))
        assert rc == 2 and f'process {holder.pid}' in err, err
        assert not (out / 'config.yaml').exists()
    finally: holder.kill(); holder.wait()
    rc, err = _cli(capsys, *_run_args(smoke_world, out))  # the holder is dead now
    assert rc == 0 and 'stale lock' in caplog.text, caplog.text
    assert not (out / '.lock').exists() and (out / 'done.json').is_file()


def test_other_runs_directory_is_refused(smoke_world, tmp_path, capsys):
    "A directory with other files, or a fine-tuning run, is refused by name; --resume of a non-pretraining dir too."
    other = tmp_path / 'notes'; other.mkdir(); (other / 'paper.tex').write_text('mine')
    rc, err = _cli(capsys, *_run_args(smoke_world, other))
    assert rc == 2 and 'paper.tex' in err and (other / 'paper.tex').read_text() == 'mine', err
    ft = tmp_path / 'ft'; ft.mkdir()
    (ft / 'run.json').write_text(json.dumps({'kind': 'finetune'})); (ft / 'finetune.json').write_text('{}')
    rc, err = _cli(capsys, *_run_args(smoke_world, ft))
    assert rc == 2 and 'holds a finetune run' in err, err
    rc, err = _cli(capsys, '--resume', ft)
    assert rc == 2 and 'no pretraining run' in err, err


def test_bogus_checkpoints_do_not_prune_real_ones(smoke_world, tmp_path, capsys, caplog):
    "An empty ckpt-99999999.pt and a directory ckpt-99999998.pt are moved aside; the real checkpoints are kept."
    out = tmp_path / 'P'
    assert _cli(capsys, *_run_args(smoke_world, out))[0] == 0
    ck = out / 'checkpoints'
    (ck / 'ckpt-99999999.pt').write_bytes(b''); (ck / 'ckpt-99999998.pt').mkdir()
    rc, err = _cli(capsys, '--resume', out, 'pretrain.max_steps=4')
    assert rc == 0, err
    assert [p.name for p in list_checkpoints(ck)] == ['ckpt-00000003.pt', 'ckpt-00000004.pt']
    assert {p.name for p in ck.glob('*.corrupt')} == {'ckpt-99999999.pt.corrupt', 'ckpt-99999998.pt.corrupt'}
    assert 'ckpt-99999999.pt' in caplog.text and 'moved aside' in caplog.text
    assert json.loads((out / 'done.json').read_text())['global_step'] == 4


@pytest.mark.parametrize('lr', ['1000.0', '1000000.0'])
def test_divergence_is_a_failure_and_checkpoints_stay_finite(smoke_world, tmp_path, capsys, lr):
    "lr=1e3 / 1e6: exit code 1 with a message, no done.json, and every checkpoint left holds finite weights and buffers."
    out = tmp_path / 'L'
    rc, err = _cli(capsys, '--preset', 'smoke', '--data', smoke_world, '--out', out, '--device', 'cpu', f'pretrain.lr={lr}',
                   'pretrain.batch_size=2', 'pretrain.max_steps=8', 'pretrain.epochs=2', 'pretrain.ckpt_every=1')
    assert rc == 1 and ('exploded' in err or 'non-finite' in err), err
    assert not (out / 'done.json').exists() and not (out / 'encoder.pt').exists()
    for ck in list_checkpoints(out / 'checkpoints'):
        st = torch.load(ck, weights_only=True)['model']
        bad = [k for k, v in st.items() if v.is_floating_point() and not torch.isfinite(v).all()]
        assert not bad, (ck.name, bad[:3])


def test_all_loss_weights_zero_is_refused(smoke_world, tmp_path, capsys):
    rc, err = _cli(capsys, *_run_args(smoke_world, tmp_path / 'Z'), 'loss.lambda_kd=0', 'loss.lambda_motion=0',
                   'loss.lambda_app=0')
    assert rc == 2 and 'loss.lambda_motion' in err and not (tmp_path / 'Z').exists(), err


def test_progress_on_stderr_only_when_asked(smoke_world, tmp_path):
    "Piped: no bar and the last stdout line is the run; HCMTL_PROGRESS=1: a bar on stderr whose lines end; --help says so."
    out = tmp_path / 'G'
    args = [_tool('hcmtl-pretrain'), *[str(a) for a in _run_args(smoke_world, out)]]
    env = _env(); env.pop('HCMTL_PROGRESS')
    r = subprocess.run(args, capture_output=True, text=True, env=env, timeout=600)
    assert r.returncode == 0 and r.stdout.strip().splitlines()[-1] == str(out.absolute())
    assert '\r' not in r.stdout + r.stderr and 'it/s' not in r.stderr
    r = subprocess.run(args[:-len(SHORT)] + ['--out', str(tmp_path / 'G2')] + SHORT, capture_output=True, text=True,
                       env=_env(HCMTL_PROGRESS='1'), timeout=600)
    assert r.returncode == 0 and 'Pretraining' in r.stderr and r.stderr.endswith('\n') and '\r' not in r.stdout
    for tool in ('hcmtl-pretrain', 'hcmtl-finetune', 'hcmtl-eval'):
        h = subprocess.run([_tool(tool), '--help'], capture_output=True, text=True, env=_env(), timeout=120).stdout
        assert 'HCMTL_PROGRESS=0' in h and 'tensorboard' in h.lower(), tool


def test_tensorboard_scalars_and_parsing_images(smoke_world, tmp_path, capsys):
    "TensorBoard by default: every loss term, lr, throughput, data wait, and the F_t | F_h image; the CSV log is kept."
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    out = tmp_path / 'B'
    assert _cli(capsys, *_run_args(smoke_world, out))[0] == 0
    ea = EventAccumulator(str(out / 'tensorboard')); ea.Reload()
    tags = ea.Tags()
    assert {'step/loss', 'step/kd', 'step/motion', 'step/app', 'step/lr', 'step/clips_per_s', 'step/data_wait'} <= set(tags['scalars'])
    assert any(t.startswith('parsing/') for t in tags['images']), tags['images']
    assert (out / 'log.csv').is_file()


def test_default_world_is_generated(tmp_path, monkeypatch, capsys, caplog):
    "hcmtl-pretrain --preset smoke with no --data: the missing world and teacher are generated (saying so), then it trains."
    import hcmtl.core
    monkeypatch.chdir(tmp_path)
    if hasattr(hcmtl.core, 'package_root'):  # worlds are also looked for above the package: not there
        monkeypatch.setattr(hcmtl.core, 'package_root', lambda: tmp_path)
    rc, err = _cli(capsys, '--preset', 'smoke', '--device', 'cpu', '--out', tmp_path / 'run', 'pretrain.max_steps=1')
    assert rc == 0, err
    w = tmp_path / 'data' / 'synth' / 'smoke'
    assert (w / 'world.json').is_file() and (w / 'teacher.pt').is_file()
    assert 'generating it' in caplog.text and 'training it' in caplog.text, caplog.text
    assert (tmp_path / 'run' / 'done.json').is_file()
