"""Every code path a GPU run takes, executed on the CPU for each variant and backbone at smoke size:
the channels_last layouts, bf16 and fp16 autocast (with the gradient scaler), torch.compile's tracing,
pinned-memory loaders with non-blocking copies; bf16 losses against fp32 ones; the precision record."""
import copy, json

import pytest
import torch

from hcmtl.accel import (autocast, describe_precision, grad_scaler, maybe_compile, precision_of, record_environment,
                         resolve_channels_last, resolve_precision, to_channels_last)
from hcmtl.bench import bench_config, build_rig, random_windows
from hcmtl.engine import make_loader
from hcmtl.pretrain import pretrain_step

CPU = torch.device('cpu')
COMBOS = [(b, v) for b in ('c3d', 'r21d') for v in ('full', 'no_kd', 'ti')]


@pytest.fixture(autouse=True)
def _one_thread():
    old = torch.get_num_threads(); torch.set_num_threads(1); yield; torch.set_num_threads(old)


def rig_for(backbone, variant, precision='fp32', channels_last=False, batch=2):
    "A benchmark rig (the trainer's objects; `pretrain_step` runs on it) with the precision and layout forced."
    cfg = bench_config('smoke', backbone, variant, batch=batch, precision='fp32', channels_last=False, device='cpu')
    rig = build_rig(cfg, CPU)
    torch.set_num_threads(1)  # build_rig sizes the pool for a run; the tests keep one thread
    cfg.pretrain.precision = precision; cfg.pretrain.amp = precision  # both call forms: precision_of(tc) and amp
    rig.channels_last = channels_last
    to_channels_last(rig.model, channels_last)
    return rig


def step(rig, batch, scaler=None):
    "pretrain_step, then backward (through the scaler when given) and SGD, as the trainer does."
    out = pretrain_step(rig, batch)
    rig.optimizer.zero_grad(set_to_none=True)
    if scaler is None: out['loss'].backward(); rig.optimizer.step()
    else: scaler.scale(out['loss']).backward(); scaler.step(rig.optimizer); scaler.update()
    return {k: float(v.detach()) for k, v in out.items()}


def conv_dtypes(model):
    "Records (kind, output dtype, short clip?) of every 3-D and 2-D convolution during a forward."
    seen, hooks = set(), []
    def record(mod, i, o):
        is3d = isinstance(mod, torch.nn.Conv3d)  # short: fewer frames than the temporal kernel (computed in fp32 on CPUs)
        seen.add(('Conv3d' if is3d else 'Conv2d', o.dtype, is3d and i[0].shape[2] < mod.kernel_size[0]))
    for m in model.modules():
        if isinstance(m, (torch.nn.Conv3d, torch.nn.Conv2d)): hooks.append(m.register_forward_hook(record))
    return seen, hooks


@pytest.mark.parametrize('backbone,variant', COMBOS)
def test_gpu_code_paths_on_cpu(backbone, variant):
    "channels_last for every rank, bf16 autocast through every conv, a pinned loader and non-blocking copies."
    rig = rig_for(backbone, variant, 'bf16', channels_last=True)
    for name, p in rig.model.named_parameters():
        if p.dim() == 5: assert p.is_contiguous(memory_format=torch.channels_last_3d), name
        if p.dim() == 4: assert p.is_contiguous(memory_format=torch.channels_last), name
    windows = random_windows(rig.cfg, 4)['windows']
    loader = make_loader(torch.utils.data.StackDataset(windows=windows), None, 2, 0, 0, pin_memory=True)
    seen, hooks = conv_dtypes(rig.model)
    with pytest.warns(UserWarning, match='pin'):  # no accelerator here: the loader says it does not pin
        losses = [step(rig, batch) for batch in loader]
    for h in hooks: h.remove()
    assert all(torch.isfinite(torch.tensor(list(l.values()))).all() for l in losses), losses
    assert ('Conv3d', torch.bfloat16, False) in seen and ('Conv3d', torch.float32, False) not in seen, seen
    assert ('Conv3d', torch.bfloat16, True) not in seen, seen  # backbones.ShortClipConv3d: fp32 for clips shorter than the kernel
    if variant != 'no_kd': assert ('Conv2d', torch.bfloat16, False) in seen, seen  # the parsing decoder g_h


@pytest.mark.parametrize('backbone,variant', COMBOS)
def test_compiled_fp16_scaled_step(backbone, variant):
    "torch.compile's graph capture (aot_eager: inductor's tracing without code generation) and the fp16 + scaler path."
    rig = rig_for(backbone, variant, 'fp16', channels_last=True)
    maybe_compile(rig.model.model, True, backend='aot_eager')
    scaler = grad_scaler(CPU, 'fp16')
    assert scaler.is_enabled()
    batch = random_windows(rig.cfg, 2)
    losses = [step(rig, batch, scaler) for _ in range(2)]
    assert all(torch.isfinite(torch.tensor(list(l.values()))).all() for l in losses), losses
    torch._dynamo.reset()


@pytest.mark.parametrize('backbone', ['c3d', 'r21d'])
def test_bf16_losses_match_fp32(backbone):
    "The same batch through the same weights: bf16 autocast loss terms within bf16 tolerance of fp32."
    ref = rig_for(backbone, 'full', 'fp32')
    alt = rig_for(backbone, 'full', 'bf16', channels_last=True)
    alt.model.load_state_dict(ref.model.state_dict())
    alt.teacher.load_state_dict(ref.teacher.state_dict())
    batch = random_windows(ref.cfg, 4, seed=3)
    torch.manual_seed(5); a = step(ref, batch)
    torch.manual_seed(5); b = step(alt, batch)  # the same draws for anything random in the step
    assert a.keys() == b.keys() == {'loss', 'kd', 'motion', 'app'}
    # bf16 keeps 8 mantissa bits (relative error 2^-8 per rounding, a few percent through the network); the
    # speed and appearance terms score cosines divided by tau, which scales that error by 1/tau
    tol = {'kd': 0.02, 'loss': 8 * 2**-8 / ref.cfg.loss.tau, 'motion': 4 * 2**-8 / ref.cfg.loss.tau,
           'app': 4 * 2**-8 / ref.cfg.loss.tau}
    for k in a: assert abs(a[k] - b[k]) <= 0.03 * abs(a[k]) + tol[k], (k, a[k], b[k], tol[k])
    assert a != b  # bf16 really ran: not bit-identical


def test_precision_choice_and_record(tmp_path):
    assert resolve_precision(CPU, False) == 'fp32' and resolve_precision(CPU, 'bf16') == 'bf16'
    assert resolve_precision(CPU, 'auto') in ('bf16', 'fp32')
    with pytest.raises(Exception, match='precision'): resolve_precision(CPU, 'int8')
    cfg = bench_config('smoke', device='cpu', precision='fp32')
    assert precision_of(cfg.pretrain) == 'fp32'
    with autocast(CPU, 'bf16'): assert torch.nn.Linear(2, 2)(torch.ones(1, 2)).dtype == torch.bfloat16
    assert resolve_channels_last(CPU, 'off') is False
    (tmp_path / 'environment.json').write_text(json.dumps({'python': '3'}))
    info = describe_precision(CPU, 'auto', True)
    env = json.loads(record_environment(tmp_path, 'precision', info).read_text())
    assert env['python'] == '3' and env['precision']['precision'] == resolve_precision(CPU, 'auto')
    for k in ('precision_setting', 'grad_scaler', 'channels_last', 'cpu_capability', 'cpu_bf16_units', 'torch'):
        assert k in env['precision'], k


def test_cpu_allocator_and_step_clips():
    "configure_backends keeps freed CPU memory for reuse (recorded); a bf16 channels_last step feeds bf16 clips in that layout."
    from hcmtl.accel import configure_backends, tune_cpu_allocator
    old = torch.get_num_threads()
    configure_backends(CPU)
    torch.set_num_threads(old)
    keep = describe_precision(CPU)['cpu_malloc_keep_mb']
    assert keep is None or keep > 0
    assert tune_cpu_allocator(0) is None  # 0: glibc left as it is
    rig = rig_for('c3d', 'full', 'bf16', channels_last=True)
    seen = []
    hook = rig.model.model.low_encoder.register_forward_pre_hook(lambda m, args: seen.append(args[0]))
    step(rig, random_windows(rig.cfg, 2))
    hook.remove()
    assert seen and seen[0].dtype == torch.bfloat16 and seen[0].is_contiguous(memory_format=torch.channels_last_3d)


@pytest.mark.parametrize('precision,channels_last', [('bf16', True), ('fp32', False)])
def test_finetune_step_clips(precision, channels_last):
    "finetune_step hands the classifier its clips in the step's dtype and layout, and the loss stays fp32."
    from hcmtl.bench import finetune_rig
    from hcmtl.finetune import finetune_step
    cfg = bench_config('smoke', 'c3d', 'full', batch=2, precision=precision, channels_last=channels_last, device='cpu')
    f, _, batch = finetune_rig(cfg, CPU, num_classes=4)
    torch.set_num_threads(1)
    seen = []
    hook = f.model.register_forward_pre_hook(lambda m, args: seen.append(args[0]))
    out = finetune_step(f, batch)
    hook.remove()
    out['loss'].backward()
    want = torch.bfloat16 if precision == 'bf16' else torch.float32
    assert f.channels_last == resolve_channels_last(CPU, channels_last)  # True: where the layouts pay on this CPU
    assert seen[0].dtype == want and seen[0].is_contiguous(memory_format=torch.channels_last_3d) == f.channels_last
    assert out['loss'].dtype == torch.float32 and torch.isfinite(out['loss'])
