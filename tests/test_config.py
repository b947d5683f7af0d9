"""Configuration from the command line: every bad value refused in one line naming the field (exit 2, no
traceback), --config/--print-config round trips, suggestions for misspelled keys, and config hashes that do
not change with the new parser (finished runs are found again by hash)."""
import json, os, subprocess, sys
from dataclasses import fields, is_dataclass
from pathlib import Path

import pytest
import torch
import yaml

from hcmtl.config import add_config_args, cli_errors, config_cli, config_from_args, config_help, config_overrides
from hcmtl.core import (PRESETS, Config, ConfigError, TeacherConfig, apply_overrides, config_hash, config_keys,
                        config_to_dict, get_preset, load_config, save_config, validate)

NO_MPS = not (getattr(torch.backends, 'mps', None) and torch.backends.mps.is_available())

# (override, text the one-line message must contain besides the field name)
BAD = [
    ('pretrain.max_steps=-1', 'positive or null'),
    ('pretrain.epochs=2.7', 'expected an integer'),
    ('pretrain.amp=maybe', 'expected a bool'),
    ('pretrain.amp=on', 'expected a bool'),
    ('pretrain.batch_size=2.5', 'expected an integer'),
    ('data.speeds=abc', 'expected a list of integers'),
    ('data.crop_scale=big', 'expected a list of 2 numbers'),
    ('data.mean=[0.5,0.5]', 'wrong length'),
    ('seed=4294967296', '2**32-1'),
    ('seed=99999999999999999999999', '2**32-1'),
    ('seed=-1', '2**32-1'),
    ('pretrain.epochs=0', 'positive'),
    ('data.flip_p=1.5', 'probability'),
    ('model.backbone=resnet', 'choose from'),
    ('pretrain.lr=fast', 'expected a number'),
    ('pretrain.lr=inf', 'finite'),
    ('pretrain.weight_decay=nan', 'finite'),
]


def _field(o):
    return o.split('=')[0]


def _one_line(err: str):
    lines = [l for l in err.splitlines() if l.strip()]
    assert len(lines) == 1, err
    assert 'Traceback' not in err, err
    return lines[0]


@pytest.mark.parametrize('override,msg', BAD, ids=[b[0] for b in BAD])
def test_bad_value_one_line(override, msg, capsys):
    assert config_cli(['--preset', 'smoke', override]) == 2
    line = _one_line(capsys.readouterr().err)
    assert line.startswith('hcmtl-config: ') and f'`{_field(override)}`' in line and msg in line, line


@pytest.mark.parametrize('override,msg', BAD[:8], ids=[b[0] for b in BAD[:8]])
def test_pretrain_cli_refuses_bad_values(override, msg, capsys):
    "hcmtl-pretrain refuses them before it reads any data, with exit 2 and one line."
    from hcmtl.pretrain import pretrain_cli
    assert pretrain_cli(['--preset', 'smoke', override]) == 2
    line = _one_line(capsys.readouterr().err)
    assert f'`{_field(override)}`' in line and msg in line, line


@pytest.mark.skipif(not NO_MPS, reason='this machine has MPS')
def test_mps_without_mps(capsys):
    assert config_cli(['--preset', 'smoke', 'device=mps']) == 2
    assert 'MPS is not available' in _one_line(capsys.readouterr().err)
    from hcmtl.pretrain import pretrain_cli
    assert pretrain_cli(['--preset', 'smoke', '--device', 'mps']) == 2
    assert '`device`' in _one_line(capsys.readouterr().err)


@pytest.mark.skipif(torch.cuda.is_available(), reason='this machine has CUDA')
def test_cuda_without_cuda(capsys):
    assert config_cli(['--preset', 'smoke', 'device=cuda']) == 2
    line = _one_line(capsys.readouterr().err)
    assert '`device`' in line and 'CUDA is not available' in line and 'cpu' in line, line


def test_unknown_device(capsys):
    assert config_cli(['--preset', 'smoke', 'device=tpu']) == 2
    assert 'unknown device' in _one_line(capsys.readouterr().err)


def test_subprocess_exit_2_no_traceback():
    "As a real process: exit code 2, one line on stderr, nothing on stdout."
    code = 'import sys; from hcmtl.config import config_cli; sys.exit(config_cli(sys.argv[1:]))'
    r = subprocess.run([sys.executable, '-c', code, '--preset', 'smoke', 'pretrain.epochs=2.7'],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 2, r
    assert '`pretrain.epochs`' in _one_line(r.stderr) and r.stdout == ''


# --- suggestions -------------------------------------------------------------------------------------------

@pytest.mark.parametrize('override,suggestion', [
    ('pretrain.epoch=2', '`pretrain.epochs`'),
    ('pretrian.epochs=2', '`pretrain.epochs`'),
    ('epochs=2', '`pretrain.epochs`'),
    ('data.crop_scal=[0.5,1.0]', '`data.crop_scale`'),
    ('model=c3d', '`model.backbone=c3d`'),
    ('teacher=schp', '`teacher.kind=schp`'),
])
def test_typo_suggestions(override, suggestion, capsys):
    assert config_cli(['--preset', 'smoke', override]) == 2
    line = _one_line(capsys.readouterr().err)
    assert suggestion in line, line


def test_unknown_key_lists_its_section(capsys):
    assert config_cli(['--preset', 'smoke', 'pretrain.epoch=2']) == 2
    line = _one_line(capsys.readouterr().err)
    for k in ('epochs', 'batch_size', 'max_steps'): assert k in line.split('keys of `pretrain`:')[1], line


def test_list_values_both_spellings():
    for o in ('data.crop_scale=[0.5,1.0]', 'data.crop_scale=0.5,1.0', 'data.crop_scale=(0.5, 1)'):
        c = apply_overrides(get_preset('smoke'), [o])
        assert c.data.crop_scale == (0.5, 1.0) and type(c.data.crop_scale) is tuple
    assert apply_overrides(get_preset('smoke'), ['data.speeds=1,2,4']).data.speeds == (1, 2, 4)


# --- --config and --print-config ---------------------------------------------------------------------------

def test_print_config_round_trip(tmp_path, capsys):
    with pytest.raises(SystemExit) as e: config_cli(['--preset', 'smoke', 'pretrain.epochs=3', 'data.speeds=[1,2,4]', '--print-config'])
    assert e.value.code == 0
    printed = capsys.readouterr().out
    f = tmp_path / 'my.yaml'; f.write_text(printed)
    want = apply_overrides(get_preset('smoke'), ['pretrain.epochs=3', 'data.speeds=[1,2,4]'])
    assert load_config(f) == want and config_hash(load_config(f)) == config_hash(want)
    with pytest.raises(SystemExit): config_cli(['--config', str(f), '--print-config'])  # preset taken from the file
    assert capsys.readouterr().out == printed


def test_config_file_layers(tmp_path):
    "preset < --config files (later wins) < flags < overrides; keys set are recorded."
    a, b = tmp_path / 'a.yaml', tmp_path / 'b.json'
    a.write_text('pretrain:\n  epochs: 3\n  lr: 0.2\nseed: 5\n')
    b.write_text(json.dumps({'pretrain': {'lr': 0.3}}))
    ap = add_config_args(__import__('argparse').ArgumentParser())
    ap.add_argument('--seed', type=int)
    args = ap.parse_args(['--preset', 'smoke', '--config', str(a), '--config', str(b), '--seed', '7', 'pretrain.epochs=4'])
    c = config_from_args(args, flags={'seed': 'seed'})
    assert (c.pretrain.epochs, c.pretrain.lr, c.seed) == (4, 0.3, 7)
    assert args.config_keys == {'pretrain.epochs', 'pretrain.lr', 'seed'}
    ov = config_overrides(args, flags={'seed': 'seed'})
    assert apply_overrides(get_preset('smoke'), ov) == c


@pytest.mark.parametrize('text,msg', [
    ('pretrain:\n  epoch: 3\n', 'did you mean `pretrain.epochs`'),
    ('pretrain:\n  epochs: 2.7\n', '`pretrain.epochs`'),
    ('model: c3d\n', '`model.backbone=c3d`'),
    ('pretrain: {epochs: [\n', 'not valid YAML at line'),
    ('!!python/object/apply:os.system ["touch PWNED"]\n', 'not valid YAML'),
    ('- 1\n- 2\n', 'expected a mapping'),
])
def test_bad_config_file(tmp_path, text, msg, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    f = tmp_path / 'bad.yaml'; f.write_text(text)
    assert config_cli(['--preset', 'smoke', '--config', str(f)]) == 2
    line = _one_line(capsys.readouterr().err)
    assert msg in line and (str(f) in line or 'YAML' not in msg), line
    assert not (tmp_path / 'PWNED').exists()


def test_missing_config_file(capsys):
    assert config_cli(['--preset', 'smoke', '--config', '/no/such/file.yaml']) == 2
    assert '/no/such/file.yaml' in _one_line(capsys.readouterr().err)


def test_preset_conflict(tmp_path, capsys):
    f = tmp_path / 'p.yaml'; save_config(get_preset('paper'), f)
    assert config_cli(['--preset', 'smoke', '--config', str(f)]) == 2
    assert "--preset is 'smoke'" in _one_line(capsys.readouterr().err)


# --- help ---------------------------------------------------------------------------------------------------

def test_help_says_where_keys_are(capsys):
    with pytest.raises(SystemExit) as e: config_cli(['--help'])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert 'hcmtl-config' in out and '--help-config' in out and '--print-config' in out and '--config FILE' in out


def test_help_config_lists_every_key(capsys):
    with pytest.raises(SystemExit) as e: config_cli(['--preset', 'paper', '--help-config'])
    assert e.value.code == 0
    out = capsys.readouterr().out
    for p in PRESETS: assert p in out.splitlines()[0]
    rows = [l for l in out.splitlines() if l.startswith('  ')]
    assert len(rows) == len(config_keys())
    row = next(l for l in rows if l.split()[0] == 'pretrain.epochs')
    assert '= 200' in row and 'an integer' in row and 'passes over the data' in row, row
    assert all(k.doc for k in config_keys().values()), [k.name for k in config_keys().values() if not k.doc]


# --- cli_errors ---------------------------------------------------------------------------------------------

def test_cli_errors_decorator_and_codes(capsys):
    from hcmtl.engine import CheckpointError
    from hcmtl.video import VideoDecodeError

    def raising(e):
        @cli_errors('demo', {FloatingPointError: 1})
        def main(argv=None):
            raise e
        return main()
    for e in (ConfigError('config field `x`: bad\nsecond line'), CheckpointError('ckpt.pt is truncated'),
              VideoDecodeError('v.mp4', 'no frames'), FileNotFoundError(2, 'No such file or directory', 'x.pt'),
              yaml.YAMLError('bad yaml')):
        assert raising(e) == 2
        assert _one_line(capsys.readouterr().err).startswith('demo: ')
    assert raising(FloatingPointError('loss is nan')) == 1
    with pytest.raises(ZeroDivisionError): raising(ZeroDivisionError('a bug keeps its traceback'))
    with pytest.raises(SystemExit) as ex:
        with cli_errors('demo'): raise ConfigError('config field `seed`: bad')
    assert ex.value.code == 2


def test_teacher_num_classes_checked_at_load(tmp_path, capsys):
    "teacher.num_classes=5 against a 7-class teacher: refused at load time, naming the field and the fix."
    from hcmtl.teachers import SynthParsingNet, load_teacher, save_synth_teacher
    p = save_synth_teacher(SynthParsingNet(num_classes=7, width=4), tmp_path / 'teacher.pt', train_size=32)
    with pytest.raises(ConfigError, match='teacher.num_classes'): load_teacher(TeacherConfig(path=str(p), num_classes=5))

    @cli_errors('hcmtl-pretrain')
    def main():
        load_teacher(TeacherConfig(path=str(p), num_classes=5))
    assert main() == 2
    assert 'teacher.num_classes=7' in _one_line(capsys.readouterr().err)


# --- hashes: the new parser gives the configs the old one gave ------------------------------------------------

def _legacy_coerce(v, default, name):
    if isinstance(default, bool) or default is None or v is None: return v
    if isinstance(default, float) and isinstance(v, (int, str)) and not isinstance(v, bool): return float(v)
    if isinstance(default, int) and isinstance(v, str): return int(v)
    return v


def _legacy_from_dict(cls, d):
    kw = {}
    for k, v in d.items():
        default = getattr(cls(), k)
        if is_dataclass(default): v = _legacy_from_dict(type(default), v or {})
        elif isinstance(default, tuple) and isinstance(v, list): v = tuple(v)
        else: v = _legacy_coerce(v, default, k)
        kw[k] = v
    return cls(**kw)


def legacy_apply_overrides(cfg, overrides):
    "The override parser of hcmtl before the OmegaConf merge (reference for the hashes)."
    d = config_to_dict(cfg)
    for o in overrides:
        key, val = o.split('=', 1)
        node, parts = d, key.strip().split('.')
        for p in parts[:-1]: node = node[p]
        node[parts[-1]] = yaml.safe_load(val)
    return _legacy_from_dict(Config, d)


OVERRIDES = [[], ['pretrain.epochs=3', 'data.speeds=[1,2,4]', 'teacher.path=null', 'finetune.lr=1', 'seed=3'],
             ['model.backbone=r21d', 'model.variant=no_kd', 'seed=1', 'data.root=/tmp', 'teacher.path=/tmp',
              'finetune.epochs=4', 'pretrain.max_steps=10', 'data.crop_scale=[0.25, 1.0]', 'pretrain.amp=false',
              'loss.tau=0.1', 'pretrain.lr=1e-3', 'finetune.milestones=[2, 3]']]


@pytest.mark.parametrize('preset', list(PRESETS))
def test_config_hash_unchanged(preset, tmp_path):
    for ov in OVERRIDES:
        old, new = legacy_apply_overrides(get_preset(preset), ov), apply_overrides(get_preset(preset), ov)
        assert new == old and config_hash(new) == config_hash(old), ov
        assert config_hash(load_config(save_config(new, tmp_path / 'c.yaml'))) == config_hash(old)
        validate(new)


def test_reproduce_job_hashes_unchanged():
    "The reproduction's job names carry config hashes: the same plan gives the same names."
    from hcmtl.reproduce import job_config
    for preset in ('smoke', 'quick'):
        new = job_config(preset, ['finetune.epochs=4'], model__backbone='r21d', model__variant='ti', seed=2,
                         data__root='/tmp/w', teacher__path='/tmp/w/teacher.pt')
        old = legacy_apply_overrides(get_preset(preset), ['finetune.epochs=4', 'model.backbone=r21d',
                                     'model.variant=ti', 'seed=2', 'data.root=/tmp/w', 'teacher.path=/tmp/w/teacher.pt'])
        assert config_hash(new) == config_hash(old)


def test_python_configs_type_checked():
    "A config built in Python is checked too: validate refuses a float epoch or a string bool."
    c = get_preset('smoke'); c.pretrain.epochs = 2.7
    with pytest.raises(ConfigError, match='pretrain.epochs'): validate(c)
    c = get_preset('smoke'); c.pretrain.amp = 'maybe'
    with pytest.raises(ConfigError, match='pretrain.amp'): validate(c)
    c = get_preset('smoke'); c.data.speeds = [1, 2, 4]
    validate(c)  # a list is fine where a tuple is declared


# --- every command: --config, --print-config, one-line errors (all read their config through hcmtl.config) ---------------------

def _cli(name):
    import importlib
    mod, fn = {'pretrain': ('pretrain', 'pretrain_cli'), 'finetune': ('finetune', 'finetune_cli'),
               'eval': ('finetune', 'eval_cli'), 'bench': ('bench', 'bench_cli'), 'reproduce': ('reproduce', 'reproduce_cli'),
               'synth': ('synth', 'synth_cli'), 'teacher': ('teachers', 'teacher_cli'),
               'check-videos': ('datasets', 'check_videos_cli'), 'config': ('config', 'config_cli')}[name]
    m = importlib.import_module(f'hcmtl.{mod}')
    return m, getattr(m, fn)


def _cli_args(name, tmp_path):
    run = tmp_path / 'run'; save_config(get_preset('smoke'), run / 'config.yaml')
    return {'pretrain': ['--preset', 'smoke'], 'finetune': ['--pretrained', 'none', '--dataset', 'ucf101', '--preset', 'smoke'],
            'eval': ['--run', str(run)], 'bench': ['--preset', 'smoke', '--device', 'cpu'], 'reproduce': ['--preset', 'smoke'],
            'synth': ['--preset', 'smoke'], 'teacher': ['train', '--data', str(tmp_path), '--preset', 'smoke'],
            'check-videos': [str(tmp_path), '--preset', 'smoke'], 'config': ['--preset', 'smoke']}[name]


CLIS = ['pretrain', 'finetune', 'eval', 'bench', 'reproduce', 'synth', 'teacher', 'check-videos', 'config']


@pytest.mark.parametrize('name', CLIS)
def test_every_cli_prints_its_config(name, tmp_path, capsys):
    _, cli = _cli(name)
    with pytest.raises(SystemExit) as e: cli(_cli_args(name, tmp_path) + ['--print-config'])
    assert e.value.code == 0
    d = yaml.safe_load(capsys.readouterr().out)
    assert d['preset'] == 'smoke' and 'pretrain' in d


@pytest.mark.parametrize('name', [n for n in CLIS if n != 'eval'])
def test_every_cli_reads_config_files_and_refuses_bad_values(name, tmp_path, capsys):
    _, cli = _cli(name)
    f = tmp_path / 'c.yaml'; f.write_text('pretrain:\n  epochs: 3\n')
    with pytest.raises(SystemExit): cli(_cli_args(name, tmp_path) + ['--config', str(f), '--print-config'])
    assert yaml.safe_load(capsys.readouterr().out)['pretrain']['epochs'] == 3
    assert cli(_cli_args(name, tmp_path) + ['pretrain.epochs=2.7']) == 2
    assert '`pretrain.epochs`' in _one_line(capsys.readouterr().err)


@pytest.mark.parametrize('name', CLIS)
def test_every_cli_help_names_the_key_listing(name, tmp_path, capsys):
    _, cli = _cli(name)
    argv = ['train', '--help'] if name == 'teacher' else ['--help']
    with pytest.raises(SystemExit): cli(argv)
    out = capsys.readouterr().out
    assert 'hcmtl-config' in out and '--print-config' in out and '--config FILE' in out


def test_overrides_between_flags(capsys):
    with pytest.raises(SystemExit): config_cli(['pretrain.epochs=3', '--preset', 'smoke', 'data.size=48', '--print-config'])
    d = yaml.safe_load(capsys.readouterr().out)
    assert (d['pretrain']['epochs'], d['data']['size'], d['preset']) == (3, 48, 'smoke')


def test_unsafe_pickle_refused_in_one_line(tmp_path, capsys):
    "A checkpoint holding pickled code: nothing runs, and the refusal is one line naming the global it holds."
    class Evil:
        def __reduce__(self): return (os.system, (f'touch {tmp_path / "PWNED"}',))
    p = tmp_path / 'evil.pt'; torch.save({'x': Evil()}, p)

    @cli_errors('demo')
    def main():
        torch.load(p, weights_only=True)
    assert main() == 2
    line = _one_line(capsys.readouterr().err)
    assert 'pickled code (posix.system)' in line and 'weights_only=False' not in line, line
    assert not (tmp_path / 'PWNED').exists()
