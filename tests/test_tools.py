"""The research tools in tools/ on the smoke world (`smoke_world`, tests/conftest.py): pretext_eval, and the tables and
plots of pretext_diagnostics."""
import importlib.util, re
from pathlib import Path

import pandas as pd
import pytest
import torch

REPO = Path(__file__).resolve().parents[1]


def _load_tool(name):
    spec = importlib.util.spec_from_file_location(name, REPO / 'tools' / f'{name}.py')
    mod = importlib.util.module_from_spec(spec); spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope='module')
def pretext_eval(): return _load_tool('pretext_eval')


@pytest.fixture(scope='module')
def short_run(smoke_world, tmp_path_factory):
    "A no_kd smoke pretraining run of 2 steps."
    from hcmtl.pretrain import pretrain_cli
    out = tmp_path_factory.mktemp('pe') / 'run'
    assert pretrain_cli(['--preset', 'smoke', '--data', str(smoke_world), '--out', str(out), '--device', 'cpu',
                         '--variant', 'no_kd', 'pretrain.max_steps=2', 'pretrain.batch_size=2', 'pretrain.epochs=2',
                         'pretrain.ckpt_every=1']) == 0
    return out


SCORE = re.compile(r'^(\d+\.\d) \[(\d+\.\d), (\d+\.\d)\]$')


def test_pretext_eval_scores_runs_on_one_stream(pretext_eval, short_run, smoke_world, tmp_path):
    csv, md = tmp_path / 'pe.csv', tmp_path / 'pe.md'
    pretext_eval.main(['random', str(short_run), '--data', str(smoke_world), '--preset', 'smoke', '--batches', '3',
                       '--threads', '1', '--out', str(csv), '--summary', str(md)])
    df = pd.read_csv(csv)
    assert list(df['batch norm']) == ['eval', 'batch', 'eval', 'batch']
    assert df.run.iloc[0] == 'random init (c3d)' and df.run.iloc[2] == f'{short_run.name} (step 2)'
    assert (df.n == 3 * 4).all()  # 3 batches of the smoke batch size
    for col in [c for c in df.columns if c.startswith(('speed', 'instance', 'queue'))]:
        for cell in df[col]:
            if cell == '—': assert col.startswith('speed probe'); continue
            x, lo, hi = map(float, SCORE.match(cell).groups())
            assert 0 <= lo <= x <= hi <= 100
    assert '| run | batch norm |' in md.read_text() and 'smoke pool' in md.read_text()


def test_batch_mode_leaves_running_statistics(pretext_eval, short_run, smoke_world):
    triplets = pretext_eval.eval_triplets(smoke_world, 0, 2, 'smoke')
    _, net = pretext_eval.load_query_network(short_run, 0)
    bns = [m for m in net.modules() if isinstance(m, torch.nn.BatchNorm3d)]
    before = [m.running_mean.clone() for m in bns]
    pretext_eval.scores(net, triplets, 'batch')
    assert bns and all(torch.equal(b, m.running_mean) for b, m in zip(before, bns))
    assert net.training  # batch statistics were used


def test_pretext_eval_refuses_a_folder_that_is_no_run(pretext_eval, smoke_world, tmp_path):
    with pytest.raises(SystemExit, match='not a pretraining run'):
        pretext_eval.main([str(tmp_path), '--data', str(smoke_world), '--preset', 'smoke', '--batches', '1'])


def test_diagnostics_summary_and_plot_from_a_csv(tmp_path, capsys):
    diag = _load_tool('pretext_diagnostics')
    rows = [dict(task='speed', setup=setup, fixed=False, step=25 * k, loss=2.0, acc=acc, chance_loss=2.0, chance_acc=0.5,
                 seconds=k) for setup, accs in (('siamese', (0.5, 0.8, 0.55)), ('supervised', (0.6, 0.9, 0.99)))
            for k, acc in enumerate(accs, 1)]
    pd.DataFrame(rows).to_csv(tmp_path / 'd.csv', index=False)
    assert diag.main(['--data', 'unused', '--out', str(tmp_path / 'd.csv'), '--summary', str(tmp_path / 'd.md'),
                      '--plot', str(tmp_path / 'd.png')]) == 0
    table = (tmp_path / 'd.md').read_text().splitlines()
    assert table[2].endswith('| 50% → 55% (50%) | 80% (50) |') and table[3].endswith('| 60% → 99% (50%) | 99% (75) |')
    assert (tmp_path / 'd.png').read_bytes()[:4] == b'\x89PNG'
    with pytest.raises(SystemExit) as e: diag.main(['--data', 'unused', '--out', str(tmp_path / 'no.csv'), '--plot', 'x.png'])
    assert e.value.code == 2 and 'no.csv' in capsys.readouterr().err
