"""hcmtl-bench in-process on the smoke preset: one run measures every stage beside the fp32 baseline, prints the report
and appends CSV rows; the GPU check script in its CPU dry run."""
import csv, os, subprocess, sys
from pathlib import Path

import pytest
import torch

from hcmtl.bench import bench_cli

REPO = Path(__file__).resolve().parents[1]
FIELDS = ('time', 'git_commit', 'device', 'device_name', 'preset', 'backbone', 'variant', 'batch', 'precision',
          'channels_last', 'compile', 'setting', 'fwd_bwd_clips_s', 'fwd_clips_s', 'ideal_pairs_s', 'step_pairs_s',
          'cached_pairs_s', 'step_first_s', 'step_vs_ideal', 'cached_vs_ideal', 'mem_kind', 'mem_step_mb', 'finetune_clips_s',
          'features_clips_s')
TUNED_ONLY = ('e2e_pairs_s', 'data_wait', 'e2e_vs_step', 'mem_e2e_mb', 'workers', 'sync_ops', 'speedup_step_pairs_s',
              'speedup_fwd_bwd_clips_s', 'speedup_finetune_clips_s', 'speedup_features_clips_s')


def _rows(path):
    with open(path, newline='') as f: return list(csv.DictReader(f))


@pytest.fixture(autouse=True)
def _one_thread():
    "One intra-op thread: a shared 2-core machine is much faster that way (see the benchmark notebook)."
    old = torch.get_num_threads(); yield; torch.set_num_threads(old)


def test_bench_cli_smoke(tmp_path, capsys):
    "bf16 + channels_last beside the fp32 contiguous baseline: two rows, the speed-ups, and every stage."
    out = tmp_path / 'bench.csv'
    args = ['--preset', 'smoke', '--device', 'cpu', '--warmup', '1', '--iters', '2', '--workers', '0', '--threads', '1',
            '--precision', 'bf16', '--profile', '--csv', str(out)]
    assert bench_cli(args) == 0
    printed = capsys.readouterr().out
    for text in ('device: cpu', '(1) backbone: fwd+bwd', 'ideal step', '(2) step, data on device, teacher online',
                 'teacher cached', '(3) end to end from disk', 'data wait', '(4) peak memory (cpu_rss_sampled)',
                 'fine-tuning step', 'feature extraction', 'x ideal', 'x (2)', 'Self CPU', 'side by side, interleaved',
                 'fp32, channels_last off, compile off (baseline) vs bf16', f'row(s) appended to {out}'):
        assert text in printed, f"{text!r} not in the report:\n{printed}"
    rows = _rows(out)
    assert [r['setting'] for r in rows] == ['baseline', 'tuned'], rows
    base, row = rows
    for r in rows:
        for f in FIELDS: assert f in r and r[f] != '', f"CSV field {f!r} missing or empty: {r.get(f)!r}"
    for f in TUNED_ONLY: assert row[f] != '', f
    assert (row['preset'], row['backbone'], row['variant'], row['batch'], row['precision']) == ('smoke', 'c3d', 'full', '4', 'bf16')
    assert (base['precision'], base['channels_last'], row['channels_last']) == ('fp32', 'False', 'True')
    assert row['mem_kind'] == 'cpu_rss_sampled' and row['workers'] == '0'
    for f in ('fwd_bwd_clips_s', 'fwd_clips_s', 'step_pairs_s', 'cached_pairs_s', 'e2e_pairs_s', 'finetune_clips_s'):
        assert float(row[f]) > 0, f
    assert 0 <= float(row['data_wait']) <= 1
    ideal = 1 / (1 / float(row['fwd_bwd_clips_s']) + 2 / float(row['fwd_clips_s']))
    assert abs(float(row['ideal_pairs_s']) - ideal) < 1e-3 * ideal
    assert abs(float(row['step_vs_ideal']) - float(row['step_pairs_s']) / ideal) < 1e-3
    sp = float(row['step_pairs_s']) / float(base['step_pairs_s'])
    assert abs(float(row['speedup_step_pairs_s']) - sp) < 1e-3 * sp

    # today's behaviour, alone (no baseline to compare with); another variant; only the backbone: the header grows
    assert bench_cli(['--preset', 'smoke', '--device', 'cpu', '--warmup', '0', '--iters', '1', '--variant', 'no_kd',
                      '--phases', 'backbone', '--threads', '1', '--precision', 'fp32', '--no-channels-last',
                      '--csv', str(out)]) == 0
    rows = _rows(out)
    assert len(rows) == 3 and rows[2]['variant'] == 'no_kd' and rows[2]['step_pairs_s'] == ''
    assert (rows[2]['setting'], rows[2]['precision'], rows[2]['channels_last']) == ('tuned', 'fp32', 'False')


def test_bench_cli_bad_input(tmp_path, capsys):
    assert bench_cli(['--preset', 'smoke', '--phases', 'backbone,warp', '--no-csv']) == 2
    assert 'warp' in capsys.readouterr().err
    assert bench_cli(['--preset', 'smoke', '--backbone', 'vgg', '--no-csv']) == 2
    assert 'model.backbone' in capsys.readouterr().err
    with pytest.raises(SystemExit): bench_cli(['--preset', 'smoke', '--precision', 'fp8'])
    assert not (tmp_path / 'bench.csv').exists()


def test_bench_without_dataset_writes_test_videos(tmp_path, capsys, monkeypatch):
    "No world for the preset: the end-to-end stage reads generated videos; a --data that does not exist is an error."
    import hcmtl.bench as bench
    monkeypatch.setattr(bench, 'find_world', lambda *a, **k: None)
    out = tmp_path / 'bench.csv'
    assert bench_cli(['--preset', 'smoke', '--device', 'cpu', '--warmup', '0', '--iters', '1', '--workers', '0',
                      '--threads', '1', '--phases', 'e2e', '--variant', 'no_kd', '--no-baseline', '--csv', str(out)]) == 0
    row = _rows(out)[0]
    assert row['data'] == 'generated test videos' and float(row['e2e_pairs_s']) > 0
    assert 'generated test videos' in capsys.readouterr().out
    assert bench_cli(['--preset', 'smoke', '--device', 'cpu', '--data', str(tmp_path / 'nowhere'), '--no-csv']) == 2
    assert 'nowhere' in capsys.readouterr().err


def test_decode_backends(tmp_path):
    "The decode benchmark reads the same windows with every backend hcmtl.video offers and can load."
    from hcmtl.bench import bench_backends, write_test_videos
    from hcmtl.video import available_backends
    vids = write_test_videos(tmp_path, n=2, size=(48, 64), num_frames=24, ext='.avi')
    res = bench_backends(vids, clip_len=4, reads=3)
    assert set(res) == set(available_backends()) and len(res) >= 1
    assert all(v['windows_s'] > 0 and v['cpu_ms_per_window'] >= 0 for v in res.values())


def test_gpu_check_cpu_dry_run(tmp_path):
    "tools/gpu_check.sh runs end to end on the CPU at smoke size and writes its CSV and summary."
    env = {**os.environ, 'PATH': f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}", 'OMP_NUM_THREADS': '1'}
    r = subprocess.run(['bash', str(REPO / 'tools' / 'gpu_check.sh'), '--cpu-dry-run', '--out', str(tmp_path)],
                       capture_output=True, text=True, env=env, timeout=1200)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    rows = _rows(tmp_path / 'gpu_check.csv')
    assert {(x['backbone'], x['setting'], x['compile']) for x in rows} >= {
        ('c3d', 'baseline', 'False'), ('c3d', 'tuned', 'False'), ('c3d', 'tuned', 'True'), ('r21d', 'tuned', 'True')}
    assert any(x['readback'] == 'False' for x in rows)
    md = (tmp_path / 'gpu_check.md').read_text()
    assert md.startswith('# GPU check: ') and 'Projected smoke reproduction' in md and '| backbone |' in md
    bad = subprocess.run(['bash', str(REPO / 'tools' / 'gpu_check.sh'), '--bogus'], capture_output=True, text=True, env=env)
    assert bad.returncode == 2 and 'unknown argument --bogus' in bad.stderr


def test_estimated_counts_match_a_generated_world(smoke_world):
    from hcmtl.bench import estimated_counts, reproduction_counts
    assert estimated_counts('smoke') == reproduction_counts('smoke', smoke_world)  # train/val/test as the splits carve them
