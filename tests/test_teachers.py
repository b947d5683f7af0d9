"""Teachers: the SCHP re-implementation against an independent functional forward pass, checkpoint refusal,
the synthetic-world teacher through its command line, `load_teacher`, `prepare_default_world`, and the package's
public names (`hcmtl.teachers` is a package of modules; everything it offered stays importable from it).

The reference below is written from the published SCHP architecture (augmented CE2P on a dilated ResNet-101)
directly on the raw state dict with `F.conv2d` and an explicit batch-norm formula whose scale is |weight| + eps
(InPlace-ABN), in float64. It shares no code with `hcmtl.teachers`.
"""
import json, math, os
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from hcmtl.core import TeacherConfig, get_preset
from hcmtl import teachers as T
from hcmtl.testing import draw_stick_figure, fake_parsing_set

EPS = 1e-5
NUM_CLASSES = 7
STAGES = [  # (name, blocks, planes, stride, dilation) of the SCHP ResNet-101
    ('layer1', 3, 64, 1, 1), ('layer2', 4, 128, 2, 1), ('layer3', 23, 256, 2, 1), ('layer4', 3, 512, 1, 2)]


# ---------------------------------------------------------------- official names and shapes, listed by hand
def official_shapes(nc=NUM_CLASSES):
    "Parameter names and shapes of the released SCHP checkpoints (without the 'module.' prefix)."
    s = {}
    def norm(p, c):
        for n in ('weight', 'bias', 'running_mean', 'running_var'): s[f'{p}.{n}'] = (c,)
    def conv(p, cout, cin, k, bias=False):
        s[f'{p}.weight'] = (cout, cin, k, k)
        if bias: s[f'{p}.bias'] = (cout,)
    conv('conv1', 64, 3, 3); norm('bn1', 64)
    conv('conv2', 64, 64, 3); norm('bn2', 64)
    conv('conv3', 128, 64, 3); norm('bn3', 128)
    cin = 128
    for name, n, planes, _, _ in STAGES:
        for b in range(n):
            p = f'{name}.{b}'
            conv(f'{p}.conv1', planes, cin, 1); norm(f'{p}.bn1', planes)
            conv(f'{p}.conv2', planes, planes, 3); norm(f'{p}.bn2', planes)
            conv(f'{p}.conv3', planes * 4, planes, 1); norm(f'{p}.bn3', planes * 4)
            if b == 0: conv(f'{p}.downsample.0', planes * 4, cin, 1); norm(f'{p}.downsample.1', planes * 4)
            cin = planes * 4
    for i in range(4): conv(f'context_encoding.stages.{i}.1', 512, 2048, 1); norm(f'context_encoding.stages.{i}.2', 512)
    conv('context_encoding.bottleneck.0', 512, 2048 + 4 * 512, 3); norm('context_encoding.bottleneck.1', 512)
    for i, c in enumerate((256, 512, 1024)): conv(f'edge.conv{i+1}.0', 256, c, 1); norm(f'edge.conv{i+1}.1', 256)
    conv('edge.conv4', 2, 256, 3, bias=True); conv('edge.conv5', 2, 6, 1, bias=True)
    conv('decoder.conv1.0', 256, 512, 1); norm('decoder.conv1.1', 256)
    conv('decoder.conv2.0', 48, 256, 1); norm('decoder.conv2.1', 48)
    conv('decoder.conv3.0', 256, 304, 1); norm('decoder.conv3.1', 256)
    conv('decoder.conv3.2', 256, 256, 1); norm('decoder.conv3.3', 256)
    conv('decoder.conv4', nc, 256, 1, bias=True)
    conv('fushion.0', 256, 1024, 1); norm('fushion.1', 256)
    conv('fushion.3', nc, 256, 1, bias=True)
    return s


def random_state(shapes, seed=0):
    "Random float32 values for every parameter; norm weights have random signs (|w| matters)."
    g = torch.Generator().manual_seed(seed)
    sd = {}
    for k, shp in shapes.items():
        if len(shp) == 4: v = torch.randn(shp, generator=g) * math.sqrt(2 / (shp[1] * shp[2] * shp[3]))
        elif k.endswith('running_var'): v = torch.rand(shp, generator=g) * 1.5 + 0.5
        elif k.endswith('running_mean') or k.endswith('bias'): v = torch.randn(shp, generator=g) * 0.1
        else:  # norm weight: magnitude in [0.5, 1.5) (residual-branch ends damped), random sign
            mag = torch.rand(shp, generator=g) + 0.5
            if k.endswith('bn3.weight') or k.endswith('downsample.1.weight'): mag = mag * 0.4
            v = mag * torch.where(torch.rand(shp, generator=g) < 0.5, -1.0, 1.0)
        sd[k] = v
    return sd


# ---------------------------------------------------------------- independent functional forward (float64)
def reference_forward(sd, x, abs_weight=True):
    "[[parsing, fusion], [edge]] of SCHP computed directly from the raw state dict."
    sd = {k: v.double() for k, v in sd.items()}
    x = x.double()

    def c(p, t, stride=1, pad=0, dil=1):
        return F.conv2d(t, sd[p + '.weight'], sd.get(p + '.bias'), stride=stride, padding=pad, dilation=dil)

    def n(p, t, leaky):
        v = lambda name: sd[f'{p}.{name}'].view(1, -1, 1, 1)
        gamma = v('weight').abs() + EPS if abs_weight else v('weight')
        t = (t - v('running_mean')) / torch.sqrt(v('running_var') + EPS) * gamma + v('bias')
        return torch.where(t >= 0, t, 0.01 * t) if leaky else t

    up = lambda t, ref: F.interpolate(t, size=ref.shape[-2:], mode='bilinear', align_corners=True)
    relu = torch.relu
    h = relu(n('bn1', c('conv1', x, 2, 1), False))
    h = relu(n('bn2', c('conv2', h, 1, 1), False))
    h = relu(n('bn3', c('conv3', h, 1, 1), False))
    h = F.max_pool2d(h, 3, 2, 1)
    feats = []
    for name, blocks, _, stride, dil in STAGES:
        for b in range(blocks):
            p, s = f'{name}.{b}', (stride if b == 0 else 1)
            y = relu(n(p + '.bn1', c(p + '.conv1', h), False))
            y = relu(n(p + '.bn2', c(p + '.conv2', y, s, dil, dil), False))
            y = n(p + '.bn3', c(p + '.conv3', y), False)
            res = n(p + '.downsample.1', c(p + '.downsample.0', h, s), False) if b == 0 else h
            h = relu(y + res)
        feats.append(h)
    x2, x3, x4, x5 = feats
    pri = [up(n(f'context_encoding.stages.{i}.2', c(f'context_encoding.stages.{i}.1', F.adaptive_avg_pool2d(x5, b)), True), x5)
           for i, b in enumerate((1, 2, 3, 6))]
    ctx = n('context_encoding.bottleneck.1', c('context_encoding.bottleneck.0', torch.cat(pri + [x5], 1), 1, 1), True)
    xt = up(n('decoder.conv1.1', c('decoder.conv1.0', ctx), True), x2)
    xl = n('decoder.conv2.1', c('decoder.conv2.0', x2), True)
    d = n('decoder.conv3.1', c('decoder.conv3.0', torch.cat([xt, xl], 1)), True)
    parsing_fea = n('decoder.conv3.3', c('decoder.conv3.2', d), True)
    parsing = c('decoder.conv4', parsing_fea)
    efea = [n(f'edge.conv{i+1}.1', c(f'edge.conv{i+1}.0', t), True) for i, t in enumerate((x2, x3, x4))]
    edges = [up(c('edge.conv4', e, 1, 1), x2) for e in efea]
    edge = c('edge.conv5', torch.cat(edges, 1))
    edge_fea = torch.cat([efea[0], up(efea[1], x2), up(efea[2], x2)], 1)
    fusion = c('fushion.3', n('fushion.1', c('fushion.0', torch.cat([parsing_fea, edge_fea], 1)), True))
    return [[parsing, fusion], [edge]]


def rel_err(a, b): return float((a.double() - b.double()).abs().max() / b.double().abs().max())


@pytest.fixture(scope='module')
def schp_file(tmp_path_factory):
    "A full-size SCHP checkpoint in the released format: {'state_dict': {'module.<name>': tensor}}."
    sd = random_state(official_shapes())
    f = tmp_path_factory.mktemp('schp') / 'exp-schp-random-pascal.pth'
    torch.save({'state_dict': {'module.' + k: v for k, v in sd.items()}}, f)
    return f, sd


def test_official_names_and_shapes_match(schp_file):
    with torch.device('meta'): net = T.SCHPNet(NUM_CLASSES)
    ours = {k: tuple(v.shape) for k, v in net.state_dict().items()}
    assert ours == official_shapes()


def test_schp_matches_independent_reference(schp_file):
    f, sd = schp_file
    assert any((v < 0).any() for k, v in sd.items() if k.endswith('bn2.weight'))  # negative norm weights present
    net = T.load_schp(f)
    assert (net.num_classes, net.dataset, net.label_names[1]) == (7, 'pascal', 'Head')
    # one RGB uint8 frame, and the normalised BGR tensor SCHP's own pipeline would make from it
    rgb = torch.randint(0, 256, (1, 3, 64, 64), dtype=torch.uint8, generator=torch.Generator().manual_seed(2))
    bgr = (rgb.flip(1).double() / 255 - torch.tensor([0.406, 0.456, 0.485], dtype=torch.float64).view(1, 3, 1, 1)) \
        / torch.tensor([0.225, 0.224, 0.229], dtype=torch.float64).view(1, 3, 1, 1)
    ref = reference_forward(sd, bgr)
    with torch.no_grad(): out = net.forward_all(bgr.float()); fusion = net(bgr.float())
    assert fusion.shape == (1, NUM_CLASSES, 16, 16)  # 1/4 of the input
    assert rel_err(fusion, ref[0][1]) < 1e-4
    assert rel_err(out[0][1], ref[0][1]) < 1e-4
    assert rel_err(out[0][0], ref[0][0]) < 1e-4
    assert rel_err(out[1][0], ref[1][0]) < 1e-4
    # the teacher wrapper: RGB uint8 -> BGR, SCHP mean/std, softmax of the fusion logits
    probs = T.SCHPTeacher(net, amp=False)(rgb)  # fp32: the exact check (amp=True may run bf16 on this CPU)
    assert probs.shape == (1, NUM_CLASSES, 16, 16) and probs.dtype == torch.float32
    assert (probs.double() - ref[0][1].softmax(1)).abs().max() < 1e-4
    # the |weight| semantics matter: with a plain batch norm the same weights give another network
    small = bgr[..., :32, :32]
    assert rel_err(reference_forward(sd, small, abs_weight=False)[0][1], reference_forward(sd, small)[0][1]) > 1e-2


def test_schp_refuses_mismatched_checkpoints(schp_file, tmp_path):
    f, sd = schp_file
    bad = {'module.' + k: v for k, v in sd.items() if k != 'layer3.22.bn2.running_var'}
    bad['module.layer1.0.conv2.weight'] = torch.zeros(64, 64, 1, 1)
    bad['module.aux_head.weight'] = torch.zeros(3)
    g = tmp_path / 'bad.pth'
    torch.save({'state_dict': bad}, g)
    with pytest.raises(T.CheckpointError) as e: T.load_schp(g)
    msg = str(e.value)
    assert str(g) in msg
    assert 'layer3.22.bn2.running_var' in msg and 'aux_head.weight' in msg
    assert 'layer1.0.conv2.weight (64, 64, 1, 1) (expected (64, 64, 3, 3))' in msg
    with pytest.raises(T.CheckpointError, match='has 7 parsing classes'): T.load_schp(f, num_classes=20)
    torch.save({'state_dict': {'module.conv1.weight': torch.zeros(64, 3, 3, 3)}}, g)
    with pytest.raises(T.CheckpointError, match='fushion.3.weight'): T.load_schp(g)
    g.write_bytes(b'not a checkpoint')
    with pytest.raises(T.CheckpointError, match='bad.pth'): T.load_schp(g)


def test_load_teacher_schp(schp_file):
    f, _ = schp_file
    t = T.load_teacher(TeacherConfig(kind='schp', path=str(f), num_classes=7, input_size=32))
    assert isinstance(t, T.SCHPTeacher) and t.num_classes == 7
    assert t(torch.zeros(1, 3, 64, 64, dtype=torch.uint8)).shape == (1, 7, 8, 8)
    with pytest.raises(ValueError, match='teacher.num_classes'):
        T.load_teacher(TeacherConfig(kind='schp', path=str(f), num_classes=20))


# ---------------------------------------------------------------- the synthetic-world teacher
@pytest.fixture(scope='module')
def parsing_world(tmp_path_factory):
    "A tiny world with a LIP-like parsing set W/lip (stick figures)."
    w = tmp_path_factory.mktemp('world')
    fake_parsing_set(w / 'lip', n_train=24, n_val=8, size=32, seed=3)
    return w


def test_teacher_cli_train_and_eval(parsing_world, capsys):
    out = parsing_world / 'teacher.pt'
    rc = T.teacher_cli(['train', '--data', str(parsing_world), '--preset', 'smoke', '--epochs', '3', '--batch-size', '8'])
    assert rc == 0 and out.exists()
    printed = capsys.readouterr().out
    assert 'validation mIoU' in printed and 'head' in printed
    summary = json.loads(out.with_suffix('.json').read_text())
    assert 0 <= summary['miou'] <= 1 and set(summary['iou']) == set(T.PART_LABELS) and summary['frames'] == 8
    ck = torch.load(out, weights_only=True)
    assert ck['metrics']['miou'] == summary['miou'] and ck['train']['epochs'] == 3 and ck['train_size'] == 32
    hist = ck['train']['loss_history']
    assert len(hist) == 3 and hist[-1] < hist[0], hist  # it learns something
    t = T.load_teacher(TeacherConfig(), world=parsing_world)
    assert isinstance(t, T.SynthTeacher) and t.output_stride == 4
    p = t(torch.randint(0, 256, (3, 3, 32, 32), dtype=torch.uint8))
    assert p.shape == (3, 7, 8, 8) and torch.allclose(p.sum(1), torch.ones(3, 8, 8), atol=1e-5)
    assert T.teacher_cli(['eval', '--data', str(parsing_world), '--input-size', '32']) == 0
    assert json.loads(capsys.readouterr().out)['miou'] == pytest.approx(summary['miou'])


@pytest.mark.skipif(not os.environ.get('HCMTL_SLOW'), reason='about a minute; set HCMTL_SLOW=1')
def test_quick_teacher_is_useful(tmp_path):
    "Quick-preset teacher on a quick-sized stand-in set: far above the all-background mIoU (~0.13)."
    fake_parsing_set(tmp_path / 'lip', n_train=400, n_val=100, size=80, seed=0)
    res = T.train_synth_teacher(tmp_path, epochs=15, size=64, width=16, verbose=False)
    assert res['miou'] > 0.5, res


def test_load_teacher_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match='hcmtl-teacher train'):
        T.load_teacher(TeacherConfig(), world=tmp_path)
    (tmp_path / 'teacher.pt').write_bytes(b'garbage')
    with pytest.raises(T.CheckpointError, match='teacher.pt'): T.load_teacher(TeacherConfig(), world=tmp_path)
    torch.save({'format': 'something-else'}, tmp_path / 'teacher.pt')
    with pytest.raises(T.CheckpointError, match='not a synthetic-world teacher'):
        T.load_teacher(TeacherConfig(), world=tmp_path)
    with pytest.raises(ValueError, match='teacher.kind'): T.load_teacher(TeacherConfig(kind='dino'), world=tmp_path)


def test_teacher_on_smoke_world(tmp_path, smoke_world):  # smoke_world: tests/conftest.py (read-only)
    res = T.train_synth_teacher(smoke_world, tmp_path / 'teacher.pt', epochs=2, size=32, width=8, batch_size=8, verbose=False)
    assert 0 <= res['miou'] <= 1 and res['frames'] > 0
    rows = T.teacher_resolution_study(T.load_teacher(TeacherConfig(), world=smoke_world), smoke_world, clip_size=32)
    assert [r['source'] for r in rows] == ['crop', 'frame'] and all(0 <= r['miou'] <= 1 for r in rows)


def test_teacher_cache_from_video_file(tmp_path):
    "Build the cache from a real video file (needs hcmtl.video) and look a crop up."
    import hcmtl.video  # noqa: F401  (the cache reads frames through it)
    from hcmtl.testing import write_video
    frames = np.stack([draw_stick_figure(48, np.random.default_rng(i))[0] for i in range(8)])
    video = write_video(tmp_path / 'v.avi', frames)
    teacher = T.SynthTeacher(T.SynthParsingNet(7, 4).eval())
    cache = T.TeacherCache(tmp_path / 'cache', teacher.label_names, stride=2)
    cache.build_video(teacher, video)
    p = cache.lookup([video], [3], torch.tensor([[4, 4, 40, 40, 1]]), (10, 10))
    assert p.shape == (1, 7, 10, 10) and torch.allclose(p.sum(1), torch.ones(1, 10, 10), atol=1e-4)
    assert cache.lookup([tmp_path / 'other.avi'], [3], torch.tensor([[4, 4, 40, 40, 1]]), (10, 10)) is None


# ---------------------------------------------------------------- the teacher at its native resolution
def test_schp_runs_at_its_training_size_by_default(schp_file):
    f, _ = schp_file
    t = T.load_teacher(TeacherConfig(kind='schp', path=str(f), num_classes=7))
    assert t.input_size == (512, 512)  # Pascal-Person-Part checkpoints were trained at 512x512


def test_frame_maps_keep_the_aspect_ratio():
    "A 2:1 frame parsed at a square input: the left half of the map describes the left half of the frame."
    class HalfDetector(torch.nn.Module):  # class 1 where the input is bright, at 1/4 resolution
        def forward(self, x): z = torch.nn.functional.avg_pool2d(x.mean(1, keepdim=True), 4) - 0.5; return torch.cat([-z, z], 1) * 50
    t = T.Teacher(HalfDetector(), ['dark', 'bright'], mean=(0, 0, 0), std=(1, 1, 1), input_size=64)
    frame = torch.zeros(1, 3, 32, 64, dtype=torch.uint8); frame[..., :, :32] = 255  # left half bright
    p = t.frame_maps(frame)
    assert p.shape == (1, 2, 8, 16)
    assert (p[0, 1, :, :7] > 0.9).all() and (p[0, 1, :, 9:] < 0.1).all()
    # the padded band (top and bottom quarters of the 64x64 input) is not in the map: no dark rows
    assert (p[0, 1, :, :7] > 0.9).all(dim=1).all()


def test_cache_holds_native_resolution_maps(tmp_path):
    "The cache parses whole frames at the teacher's input size; a full-frame lookup gives frame_maps back."
    teacher = T.SynthTeacher(T.SynthParsingNet(7, 4).eval(), input_size=64)
    frames = np.stack([draw_stick_figure(48, np.random.default_rng(i))[0] for i in range(4)])[:, 8:40]  # 32x48
    cache = T.TeacherCache(tmp_path, teacher.label_names, stride=1)
    f = cache.put(teacher, 'v.avi', frames, range(4))
    meta = json.loads(str(np.load(f)['meta']))
    assert meta['teacher_input'] == [64, 64] and meta['shape'] == [4, 7, 8, 12]
    want = teacher.frame_maps(torch.from_numpy(frames).permute(0, 3, 1, 2), out_size=(8, 12))
    got = cache.lookup(['v.avi'] * 4, range(4), torch.tensor([[0, 0, 32, 48, 0]] * 4), (8, 12))
    assert (got - want).abs().max() < 3 / 255


# ---------------------------------------------------------------- the package: names, entry point, the default world
OLD_NAMES = [  # every public name `hcmtl.teachers` offered as a single module (the stick-figure fixtures moved to hcmtl.testing)
    'ABN', 'CheckpointError', 'ConfigError', 'IMAGENET_MEAN', 'IMAGENET_STD', 'PART_LABELS', 'SCHPBottleneck', 'SCHPContext',
    'SCHPDecoder', 'SCHPEdge', 'SCHPNet', 'SCHPTeacher', 'SCHP_DATASETS', 'SCHP_LAYERS', 'SCHP_MEAN_BGR', 'SCHP_NATIVE_SIZE',
    'SCHP_STD_BGR', 'SYNTH_TEACHER_FORMAT', 'SynthParsingNet', 'SynthTeacher', 'Teacher', 'TeacherCache', 'TeacherConfig',
    'add_config_args', 'atomic_write_bytes', 'augment_parsing_batch', 'autocast', 'cli_errors', 'config_from_args',
    'confusion_matrix', 'environment_record', 'evaluate_teacher', 'find_world', 'get_preset', 'iou_from_confusion',
    'load_schp', 'load_synth_teacher', 'load_teacher', 'log', 'middle_source_frames', 'parsing_root',
    'read_parsing_split', 'read_schp_state_dict', 'save_synth_teacher', 'seed_everything', 'stride_ceiling_miou',
    'teacher_cli', 'teacher_native_size', 'teacher_resolution_study', 'to_unit_float', 'train_synth_teacher']


def test_old_names_and_entry_point():
    import importlib, tomllib
    missing = [n for n in OLD_NAMES if not hasattr(T, n)]
    assert not missing, missing
    ns = {}; exec('from hcmtl.teachers import *', ns)
    assert {'Teacher', 'TeacherCache', 'train_synth_teacher', 'load_teacher', 'teacher_cli', 'prepare_default_world'} <= set(ns)
    target = tomllib.loads((Path(__file__).parent.parent / 'pyproject.toml').read_text())['project']['scripts']['hcmtl-teacher']
    mod, fn = target.split(':')
    assert getattr(importlib.import_module(mod), fn) is T.cli.teacher_cli
    assert T.log.name == 'hcmtl.teachers'  # one logger for the package (the cache's warnings name it)


@pytest.fixture
def stubs(monkeypatch):
    "Record generate_world and train_synth_teacher calls instead of running them."
    import hcmtl.synth
    calls = []
    def gen(cfg, out, progress=True):
        calls.append(('generate', Path(out))); Path(out, 'kinetics').mkdir(parents=True, exist_ok=True)
        Path(out, 'world.json').write_text('{}'); return Path(out)
    def train(world, out, **kw): calls.append(('train', Path(out), kw)); Path(out).write_bytes(b'x')
    monkeypatch.setattr(hcmtl.synth, 'generate_world', gen)
    monkeypatch.setattr(T, 'train_synth_teacher', train)
    return calls


def test_prepare_default_world(tmp_path, stubs, caplog):
    from hcmtl.core import apply_overrides
    smoke, w = get_preset('smoke'), tmp_path / 'w'
    assert T.prepare_default_world(smoke, w, device='cpu') == w.absolute()
    assert [c[0] for c in stubs] == ['generate', 'train'] and 'generating it' in caplog.text and 'training it' in caplog.text
    kw = stubs[1][2]
    assert (kw['epochs'], kw['size'], kw['width'], kw['seed'], kw['device']) == (
        smoke.teacher.train_epochs, smoke.teacher.train_size, smoke.teacher.width, 0, 'cpu')
    assert T.prepare_default_world(smoke, w) == w.absolute() and len(stubs) == 2       # both there: nothing to do
    T.prepare_default_world(smoke, w, verify=True); assert stubs[-1][0] == 'generate'  # verify runs the generator
    v = tmp_path / 'v'
    T.prepare_default_world(smoke, v, teacher=False); assert stubs[-1] == ('generate', v.absolute())  # no teacher asked
    assert not (v / 'teacher.pt').exists()
    T.prepare_default_world(apply_overrides(smoke, ['teacher.path=/some/teacher.pt']), tmp_path / 'p')
    assert not (tmp_path / 'p' / 'teacher.pt').exists()                                # a given teacher is not trained
    assert T.prepare_default_world(apply_overrides(smoke, [f'data.root={tmp_path}'])) is None   # real data
    assert T.prepare_default_world(get_preset('paper'), w) is None


def test_prepare_default_world_refuses_other_settings(tmp_path, monkeypatch):
    import hcmtl.synth
    def gen(cfg, out, progress=True): raise ValueError(f"{out}/world.json: this world was generated with seed 1")
    monkeypatch.setattr(hcmtl.synth, 'generate_world', gen)
    with pytest.raises(T.ConfigError, match='generated with seed 1'):
        T.prepare_default_world(get_preset('smoke'), tmp_path, teacher=False, verify=True)


def test_prepare_default_world_keeps_a_complete_world(smoke_world, monkeypatch):  # smoke_world: read-only
    import hcmtl.synth
    monkeypatch.setattr(hcmtl.synth, 'generate_world', lambda *a, **k: pytest.fail('generated again'))
    monkeypatch.setattr(T, 'train_synth_teacher', lambda *a, **k: pytest.fail('trained again'))
    assert T.prepare_default_world(get_preset('smoke'), smoke_world) == smoke_world.absolute()
