"End-to-end tests of `hcmtl-reproduce` on the smoke world: results schema, frozen evaluation, statistics, CAM table, determinism, relative paths."
import json, shutil
from pathlib import Path

import pandas as pd
import pytest
import yaml

from hcmtl.reproduce import reproduce_cli, DEFAULT_SEEDS, DEFAULT_BACKBONES
from hcmtl.results import RESULT_COLUMNS, read_results

ARGS = ['--preset', 'smoke', '--backbones', 'c3d', '--finetune-on', 'ucf101']


@pytest.fixture(scope='module')
def repro(smoke_world, tmp_path_factory):
    "A two-seed smoke reproduction (C3D; UCF-like fine-tuned, HMDB-like frozen only) on a copy of the smoke world."
    d = tmp_path_factory.mktemp('repro')
    world = d / 'world'; shutil.copytree(smoke_world, world)
    assert reproduce_cli(ARGS + ['--seeds', '2', '--data', str(world), '--out', str(d / 'out'), '--publish', str(d / 'pub')]) == 0
    return d


def test_results_rows(repro):
    df = read_results(repro / 'out' / 'results.csv')
    assert list(df.columns) == list(RESULT_COLUMNS)
    ft = df[df.protocol == 'finetune']
    assert set(ft.dataset) == {'ucf101'} and set(ft.variant) == {'no_kd', 'ti', 'full', 'scratch'}
    for proto in ('linear', 'knn'):
        fr = df[df.protocol == proto]
        assert set(fr.variant) == {'no_kd', 'ti', 'full', 'random'} and set(fr.dataset) == {'ucf101', 'hmdb51'}
    assert len(df) == 2 * (4 + 2 * 4 * 2)  # seeds × (fine-tuned + 2 frozen protocols × 4 encoders × 2 sets)
    assert df.groupby(['variant', 'dataset', 'protocol']).seed.nunique().eq(2).all()  # every row for every seed: pairable
    assert df.n_test.gt(0).all() and df.acc1.between(0, 100).all()


def test_summary_tables(repro, capsys):
    md = (repro / 'out' / 'summary.md').read_text()
    for part in ('## Table 1', '## Table 2', 'Ours − w/o KD (paired)', 'Ours − TI (paired)', 'RSPNet* − Scratch (paired)',
                 '## Frozen encoders', 'RSPNet* − Random init (paired)', '## CAM energy on the person',
                 'uniform map (person pixel share)', '2×'):
        assert part in md, part
    cam = json.loads((repro / 'out' / 'cam' / 'cam.json').read_text())
    assert cam['n_clips'] == len(cam['energy_per_clip']['Ours (full)']) == len(cam['person_area_per_clip']) > 0


def test_published_files_have_relative_paths(repro):
    pub = repro / 'pub'
    assert {'results.csv', 'summary.md', 'jobs.csv', 'cam.json', 'reproduce.log'} <= {p.name for p in pub.iterdir()}
    for p in pub.iterdir():
        if p.suffix in ('.csv', '.md', '.json', '.log'):
            text = p.read_text()
            assert str(repro) not in text and str(Path.cwd()) + '/' not in text, p


def test_same_command_same_results(repro, smoke_world):
    "A second reproduction (seed 0 only, fresh folder) gives the same seed-0 rows of results.csv."
    world = repro / 'world'
    assert reproduce_cli(ARGS + ['--seeds', '1', '--no-cam', '--data', str(world), '--out', str(repro / 'again')]) == 0
    a = read_results(repro / 'out' / 'results.csv'); b = read_results(repro / 'again' / 'results.csv')
    a = a[a.seed == 0].reset_index(drop=True)
    pd.testing.assert_frame_equal(a, b)


def test_dry_run(capsys):
    assert reproduce_cli(['--preset', 'synth', '--dry-run']) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"preset synth: {DEFAULT_SEEDS['synth']} seed(s), backbones c3d, r21d")
    assert len(DEFAULT_BACKBONES['quick']) == 1 and DEFAULT_SEEDS['quick'] >= 3


def test_learning_curve(repro):
    "Two epoch budgets: frozen accuracy rows of no_kd and full per budget, the random init once, a CSV and a plot."
    out = repro / 'lc'
    assert reproduce_cli(['--preset', 'smoke', '--backbones', 'c3d', '--seeds', '1', '--learning-curve', '1', '2',
                          '--data', str(repro / 'world'), '--out', str(out)]) == 0
    df = pd.read_csv(out / 'learning_curve.csv')
    assert set(df.variant) == {'no_kd', 'full', 'random'} and set(df.epochs) == {1, 2}
    assert df[df.variant == 'random'].groupby('protocol').size().eq(1).all()
    assert df[df.variant != 'random'].steps.nunique() == 2 and (out / 'learning_curve.png').stat().st_size > 0
    # one variant, with an override the summary names; --variants without --learning-curve is refused
    assert reproduce_cli(['--preset', 'smoke', '--backbones', 'c3d', '--seeds', '1', '--learning-curve', '1',
                          '--variants', 'no_kd', '--data', str(repro / 'world'), '--out', str(out),
                          'pretrain.log_every=2']) == 0
    assert set(pd.read_csv(out / 'learning_curve.csv').variant) == {'no_kd', 'random'}
    assert 'Config overrides over the preset: `pretrain.log_every=2`.' in (out / 'summary.md').read_text()
    assert 'Paired differences' not in (out / 'summary.md').read_text()  # one seed: no interval over seeds
    one = pd.read_csv(out / 'learning_curve.csv')
    # a second seed in the same folder: seed 0's runs are reused, and the summary gains the paired differences
    assert reproduce_cli(['--preset', 'smoke', '--backbones', 'c3d', '--seeds', '2', '--learning-curve', '1',
                          '--variants', 'no_kd', '--data', str(repro / 'world'), '--out', str(out),
                          'pretrain.log_every=2']) == 0
    two = pd.read_csv(out / 'learning_curve.csv')
    assert set(two.seed) == {0, 1} and two.groupby(['variant', 'protocol']).seed.nunique().eq(2).all()
    pd.testing.assert_frame_equal(two[two.seed == 0].reset_index(drop=True), one)
    for seed in (0, 1):  # each seed's row carries its own run's end losses and machine
        run, = [d for d in (out / 'epochs1' / 'pretrain').glob(f'c3d-no_kd-s{seed}-*')  # the runs of this call's config
                if yaml.safe_load((d / 'config.yaml').read_text())['pretrain']['log_every'] == 2]
        r = two[(two.variant == 'no_kd') & (two.seed == seed)].iloc[0]
        prec = json.loads((run / 'environment.json').read_text())['precision']['precision']
        assert r.final_app == json.loads((run / 'done.json').read_text())['final']['app'] and f', {prec}' in r.pretrained_on
    # --first-seed: seed 1 run alone in a folder of its own (as a parallel invocation would) gives seed 1's rows of the two-seed run
    assert reproduce_cli(['--preset', 'smoke', '--backbones', 'c3d', '--seeds', '1', '--first-seed', '1', '--learning-curve', '1',
                          '--variants', 'no_kd', '--data', str(repro / 'world'), '--out', str(out / 'seed1'),
                          'pretrain.log_every=2']) == 0
    alone = pd.read_csv(out / 'seed1' / 'learning_curve.csv')
    assert set(alone.seed) == {1}
    pd.testing.assert_frame_equal(alone.drop(columns='run_dir'), two[two.seed == 1].drop(columns='run_dir').reset_index(drop=True))
    # --merge-with: the lone seed's curve gains seed 0's rows from the two-seed curve; the rows they share must agree
    args = ['--preset', 'smoke', '--backbones', 'c3d', '--seeds', '1', '--first-seed', '1', '--learning-curve', '1', '--variants',
            'no_kd', '--data', str(repro / 'world'), '--out', str(out / 'seed1'), 'pretrain.log_every=2']
    two.to_csv(repro / 'two.csv', index=False)
    assert reproduce_cli(args + ['--merge-with', str(repro / 'two.csv')]) == 0
    merged = pd.read_csv(out / 'seed1' / 'learning_curve.csv')
    assert sorted(map(tuple, merged[['variant', 'seed', 'protocol']].values)) == sorted(map(tuple, two[['variant', 'seed', 'protocol']].values))
    assert 'With the rows of the earlier curves `' in (out / 'seed1' / 'summary.md').read_text()
    two.assign(acc1=two.acc1 + 1).to_csv(repro / 'other.csv', index=False)  # another experiment's curve: refused, nothing written
    assert reproduce_cli(args + ['--merge-with', str(repro / 'other.csv')]) == 2
    pd.testing.assert_frame_equal(pd.read_csv(out / 'seed1' / 'learning_curve.csv'), merged)
    with pytest.raises(SystemExit) as e: reproduce_cli(['--preset', 'smoke', '--merge-with', str(repro / 'two.csv')])
    assert e.value.code == 2
    with pytest.raises(SystemExit) as e: reproduce_cli(['--preset', 'smoke', '--first-seed', '-1', '--dry-run'])
    assert e.value.code == 2
    md = (out / 'summary.md').read_text()
    assert 'Paired differences' in md and '| RSPNet* − Random init | ' in md and '| Random init | 0 | 2 | ' in md
    with pytest.raises(SystemExit) as e: reproduce_cli(['--preset', 'smoke', '--variants', 'no_kd'])
    assert e.value.code == 2

def test_learning_curve_finetuned(repro):
    "--finetune-on in a learning curve: each budget's encoder is also fine-tuned, beside scratch at 0 steps; frozen rows unchanged."
    out = repro / 'lc-ft'
    args = ['--preset', 'smoke', '--backbones', 'c3d', '--seeds', '1', '--learning-curve', '1', '--variants', 'no_kd',
            '--data', str(repro / 'world'), '--out', str(out)]
    assert reproduce_cli(args) == 0
    frozen = pd.read_csv(out / 'learning_curve.csv')
    assert not (out / 'learning_curve_finetune.png').exists()
    assert reproduce_cli(args + ['--finetune-on', 'hmdb51', 'ucf101', '--publish', str(out / 'pub')]) == 0
    df = pd.read_csv(out / 'learning_curve.csv')
    ft = df[df.protocol == 'finetune']  # the probed set can be fine-tuned too: its frozen rows still come from the probes
    assert set(zip(ft.variant, ft.steps > 0, ft.dataset)) == {(v, v != 'scratch', ds) for v in ('scratch', 'no_kd') for ds in ('hmdb51', 'ucf101')}
    assert ft[ft.variant == 'no_kd'].final_app.notna().all() and ft[ft.variant == 'scratch'].final_app.isna().all()
    pd.testing.assert_frame_equal(df[(df.protocol != 'finetune') & (df.dataset == 'ucf101')].reset_index(drop=True), frozen)  # probes reused
    assert set(df[df.dataset == 'hmdb51'].protocol) == {'finetune', 'linear', 'knn'}  # a tuned set's frozen scores, from its fine-tuning runs
    md = (out / 'summary.md').read_text()
    assert 'Fine-tuned hmdb51 video top-1' in md and 'Fine-tuned ucf101 video top-1' in md and 'Frozen hmdb51 top-1' in md and '| Scratch | 0 | 1 | ' in md and '| RSPNet* | 2 | 1 | ' in md
    assert (out / 'pub' / 'learning_curve_finetune.png').stat().st_size > 0 and (out / 'pub' / 'summary.md').read_text() == md
