"""hcmtl-bench in-process on the smoke preset: one run measures every stage, prints the report and appends a CSV row."""
import csv, os
from pathlib import Path

import pytest
import torch

from hcmtl.bench import bench_cli

REPO = Path(__file__).resolve().parents[1]
FIELDS = ('time', 'git_commit', 'device', 'device_name', 'preset', 'backbone', 'variant', 'batch', 'precision',
          'channels_last', 'compile', 'fwd_bwd_clips_s', 'fwd_clips_s', 'ideal_pairs_s', 'step_pairs_s', 'cached_pairs_s',
          'e2e_pairs_s', 'data_wait', 'step_vs_ideal', 'cached_vs_ideal', 'e2e_vs_step', 'mem_kind', 'mem_step_mb',
          'mem_e2e_mb', 'finetune_clips_s', 'workers', 'sync_ops')


def _rows(path):
    with open(path, newline='') as f: return list(csv.DictReader(f))


@pytest.fixture(autouse=True)
def _one_thread():
    "One intra-op thread: a shared 2-core machine is much faster that way (see the benchmark notebook)."
    old = torch.get_num_threads(); yield; torch.set_num_threads(old)


def test_bench_cli_smoke(tmp_path, capsys):
    out = tmp_path / 'bench.csv'
    args = ['--preset', 'smoke', '--device', 'cpu', '--warmup', '1', '--iters', '2', '--workers', '0', '--threads', '1',
            '--precision', 'fp32', '--profile', '--csv', str(out)]
    assert bench_cli(args) == 0
    printed = capsys.readouterr().out
    for text in ('device: cpu', '(1) backbone: fwd+bwd', 'ideal step', '(2) step, data on device, teacher online',
                 'teacher cached', '(3) end to end from disk', 'data wait', '(4) peak memory (cpu_rss_sampled)',
                 'fine-tuning step', 'x ideal', 'x (2)', 'Self CPU', f'row appended to {out}'):
        assert text in printed, f"{text!r} not in the report:\n{printed}"
    rows = _rows(out)
    assert len(rows) == 1
    row = rows[0]
    for f in FIELDS: assert f in row and row[f] != '', f"CSV field {f!r} missing or empty: {row.get(f)!r}"
    assert (row['preset'], row['backbone'], row['variant'], row['batch'], row['precision']) == ('smoke', 'c3d', 'full', '4', 'fp32')
    assert row['mem_kind'] == 'cpu_rss_sampled' and row['workers'] == '0'
    for f in ('fwd_bwd_clips_s', 'fwd_clips_s', 'step_pairs_s', 'cached_pairs_s', 'e2e_pairs_s', 'finetune_clips_s'):
        assert float(row[f]) > 0, f
    assert 0 <= float(row['data_wait']) <= 1
    ideal = 1 / (1 / float(row['fwd_bwd_clips_s']) + 2 / float(row['fwd_clips_s']))
    assert abs(float(row['ideal_pairs_s']) - ideal) < 1e-3 * ideal
    assert abs(float(row['step_vs_ideal']) - float(row['step_pairs_s']) / ideal) < 1e-3

    # a second run appends (here: only the backbone, another variant) and the header grows as needed
    assert bench_cli(['--preset', 'smoke', '--device', 'cpu', '--warmup', '0', '--iters', '1', '--variant', 'no_kd',
                      '--phases', 'backbone', '--threads', '1', '--csv', str(out)]) == 0
    rows = _rows(out)
    assert len(rows) == 2 and rows[1]['variant'] == 'no_kd' and rows[1]['step_pairs_s'] == ''


def test_bench_cli_bad_input(tmp_path, capsys):
    assert bench_cli(['--preset', 'smoke', '--phases', 'backbone,warp', '--no-csv']) == 2
    assert 'warp' in capsys.readouterr().err
    assert bench_cli(['--preset', 'smoke', '--backbone', 'vgg', '--no-csv']) == 2
    assert 'model.backbone' in capsys.readouterr().err
    with pytest.raises(SystemExit): bench_cli(['--preset', 'smoke', '--precision', 'fp16'])
    assert not (tmp_path / 'bench.csv').exists()


def test_bench_without_dataset_writes_test_videos(tmp_path, capsys, monkeypatch):
    "No world for the preset: the end-to-end stage reads generated videos; a --data that does not exist is an error."
    import hcmtl.bench as bench
    monkeypatch.setattr(bench, 'find_world', lambda *a, **k: None)
    out = tmp_path / 'bench.csv'
    assert bench_cli(['--preset', 'smoke', '--device', 'cpu', '--warmup', '0', '--iters', '1', '--workers', '0',
                      '--threads', '1', '--phases', 'e2e', '--variant', 'no_kd', '--csv', str(out)]) == 0
    row = _rows(out)[0]
    assert row['data'] == 'generated test videos' and float(row['e2e_pairs_s']) > 0
    assert 'generated test videos' in capsys.readouterr().out
    assert bench_cli(['--preset', 'smoke', '--device', 'cpu', '--data', str(tmp_path / 'nowhere'), '--no-csv']) == 2
    assert 'nowhere' in capsys.readouterr().err
