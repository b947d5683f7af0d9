"""Weights in and out of hcmtl's backbones: RSPNet's released checkpoint layout into C3D / R(2+1)D, and hcmtl encoders
out to torchvision's r3d_18 / r2plus1d_18 (see nbs/08_backbones for the lessons). The RSPNet key layout is written
here from RSPNet's model definitions (models/c3d.py, models/r2plus1d_vcop.py, moco/*), independently of hcmtl's names."""
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import torchvision

from hcmtl.backbones import build_backbone, import_rspnet, export_torchvision, weights_cli, RSPNET_ARCHS
from hcmtl.core import ModelConfig
from hcmtl.model import build_encoders

C3D_CONVS = [('1', 3, 64), ('2', 64, 128), ('3a', 128, 256), ('3b', 256, 256), ('4a', 256, 512), ('4b', 512, 512),
             ('5a', 512, 512), ('5b', 512, 512)]


def bn_shapes(prefix, c):
    return {f'{prefix}.weight': (c,), f'{prefix}.bias': (c,), f'{prefix}.running_mean': (c,), f'{prefix}.running_var': (c,),
            f'{prefix}.num_batches_tracked': ()}


def c3d_spec() -> dict:
    "RSPNet's C3D (with its 1-way `linear`, as MultiTaskWrapper builds it): key -> shape."
    out = {}
    for n, cin, cout in C3D_CONVS:
        out[f'conv{n}.weight'], out[f'conv{n}.bias'] = (cout, cin, 3, 3, 3), (cout,)
        out.update(bn_shapes(f'bn{n}', cout))
    return {**out, 'linear.weight': (1, 512), 'linear.bias': (1,)}


def stconv(prefix, cin, cout, k):
    "RSPNet's SpatioTemporalConv: spatial 1xdxd conv to M channels, BN, temporal tx1x1 conv (no biases)."
    kt, kh, kw = (k, k, k) if isinstance(k, int) else k
    m = math.floor(kt * kh * kw * cin * cout / (kh * kw * cin + kt * cout))
    return {f'{prefix}.spatial_conv.weight': (m, cin, 1, kh, kw), **bn_shapes(f'{prefix}.bn', m),
            f'{prefix}.temporal_conv.weight': (cout, m, kt, 1, 1)}


def r21d_spec() -> dict:
    "RSPNet's R2Plus1DNet((1, 1, 1, 1), with_classifier=True, num_classes=1): key -> shape."
    out = {**stconv('conv1', 3, 64, (3, 7, 7)), **bn_shapes('bn1', 64)}
    for layer, cin, cout, down in ((2, 64, 64, False), (3, 64, 128, True), (4, 128, 256, True), (5, 256, 512, True)):
        b = f'conv{layer}.block1'
        out.update({**stconv(f'{b}.conv1', cin, cout, 3), **bn_shapes(f'{b}.bn1', cout),
                    **stconv(f'{b}.conv2', cout, cout, 3), **bn_shapes(f'{b}.bn2', cout)})
        if down: out.update({**stconv(f'{b}.downsampleconv', cin, cout, 1), **bn_shapes(f'{b}.downsamplebn', cout)})
    return {**out, 'linear.weight': (1, 512), 'linear.bias': (1,)}


def fill(spec: dict, seed: int) -> dict:
    "Deterministic tensors of the given shapes (positive running variances, small weights)."
    g = torch.Generator().manual_seed(seed)
    out = {}
    for k, shape in spec.items():
        if k.endswith('num_batches_tracked'): out[k] = torch.tensor(100)
        elif k.endswith('running_var'): out[k] = torch.rand(shape, generator=g) + 0.5
        elif k.endswith('running_mean') or k.endswith('bias'): out[k] = 0.1 * torch.randn(shape, generator=g)
        elif k.endswith('bn.weight') or '.bn' in k or k.startswith('bn'): out[k] = 1 + 0.1 * torch.randn(shape, generator=g)
        else: out[k] = torch.randn(shape, generator=g) * math.sqrt(2 / max(1, math.prod(shape[1:])))
    return out


def rspnet_checkpoint(encoder: dict, arch: str, key_encoder: bool=False) -> dict:
    "An RSPNet pretraining checkpoint: MoCo state (query (+ key) encoder, heads fc1/fc2, queue) with its metadata."
    model = {**{f'encoder_q.encoder.{k}': v for k, v in encoder.items()},
             **{f'encoder_k.encoder.{k}': v + 1 for k, v in encoder.items() if key_encoder},  # a different key encoder
             'encoder_q.fc1.2.weight': torch.zeros(128, 512), 'encoder_q.fc1.2.bias': torch.zeros(128),
             'encoder_q.fc2.2.weight': torch.zeros(128, 512), 'encoder_q.fc2.2.bias': torch.zeros(128),
             'queue': torch.randn(128, 64), 'queue_ptr': torch.zeros(1, dtype=torch.long)}
    return {'epoch': 200, 'arch': arch, 'model': model, 'best_loss': 3.2,
            'optimizer': {'state': {}, 'param_groups': [{'lr': 0.1, 'momentum': 0.9, 'params': [0, 1]}]},
            'scheduler': {'T_max': 200, 'eta_min': 1e-4, 'last_epoch': 200, 'base_lrs': [0.1]}}


def c3d_reference(w: dict, x):
    "C3D's forward (eval-mode BN), written out with torch.nn.functional from RSPNet's definition."
    pools = {'1': (1, 2, 2), '2': (2, 2, 2), '3b': (2, 2, 2), '4b': (2, 2, 2)}
    for n, _, _ in C3D_CONVS:
        x = F.conv3d(x, w[f'conv{n}.weight'], w[f'conv{n}.bias'], padding=1)
        x = F.relu(F.batch_norm(x, w[f'bn{n}.running_mean'], w[f'bn{n}.running_var'], w[f'bn{n}.weight'], w[f'bn{n}.bias']))
        if n in pools: x = F.max_pool3d(x, pools[n], pools[n])
    return x


def test_rspnet_c3d_checkpoint_features(tmp_path):
    enc = fill(c3d_spec(), 0)
    torch.save(rspnet_checkpoint(enc, 'c3d', key_encoder=True), tmp_path / 'checkpoint.pth.tar')
    bb = import_rspnet(tmp_path / 'checkpoint.pth.tar').eval()
    assert bb.name == 'c3d' and bb.width == 1
    x = torch.randn(1, 3, 8, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad(): torch.testing.assert_close(bb(x), c3d_reference(enc, x), rtol=1e-4, atol=1e-4)


def test_rspnet_r21d_checkpoint_layout(tmp_path):
    enc = fill(r21d_spec(), 2)
    torch.save(rspnet_checkpoint(enc, 'r2plus1d-vcop', key_encoder=True), tmp_path / 'r21d.pth.tar')
    bb = import_rspnet(tmp_path / 'r21d.pth.tar')
    assert bb.name == 'r21d'
    own = {k.split('.', 2)[2]: v for k, v in bb.state_dict().items()}  # hcmtl's stage-local names
    assert set(own) == set(enc) - {'linear.weight', 'linear.bias'}
    for k, v in own.items(): assert torch.equal(v, enc[k]), k  # the query encoder, not the key encoder
    with torch.no_grad(): assert torch.isfinite(bb.eval()(torch.randn(1, 3, 8, 32, 32))).all()


def test_rspnet_finetuned_checkpoint(tmp_path):
    "A fine-tuned RSPNet checkpoint: `encoder.` + names and a classifier `fc`."
    enc = fill(c3d_spec(), 3)
    state = {**{f'encoder.{k}': v for k, v in enc.items()}, 'fc.weight': torch.zeros(101, 512), 'fc.bias': torch.zeros(101)}
    torch.save({'epoch': 30, 'arch': 'c3d', 'model': state, 'best_acc1': 76.0}, tmp_path / 'ft.pth.tar')
    bb = import_rspnet(tmp_path / 'ft.pth.tar')
    assert torch.equal(bb.stages[4].conv5b.weight, enc['conv5b.weight'])


def test_rspnet_wrong_checkpoints_are_named(tmp_path):
    enc = fill(c3d_spec(), 4)
    f = tmp_path / 'c3d.pth.tar'
    torch.save(rspnet_checkpoint(enc, 'c3d'), f)
    with pytest.raises(ValueError, match=r"c3d.pth.tar.*not r21d"): import_rspnet(f, 'r21d')
    torch.save({'model': rspnet_checkpoint(enc, 'c3d')['model']}, tmp_path / 'noarch.pth')
    with pytest.raises(ValueError) as e: import_rspnet(tmp_path / 'noarch.pth', 'r21d')  # a C3D file offered to R(2+1)D
    assert 'noarch.pth' in str(e.value) and 'encoder_q.encoder.conv1.weight' in str(e.value)
    bad = dict(enc); bad['conv2.weight'] = torch.zeros(128, 64, 3, 3, 1)
    torch.save(rspnet_checkpoint(bad, 'c3d'), tmp_path / 'shape.pth')
    with pytest.raises(ValueError, match=r"shape.pth.*conv2.weight: file \(128, 64, 3, 3, 1\) vs model \(128, 64, 3, 3, 3\)"):
        import_rspnet(tmp_path / 'shape.pth')
    part = {k: v for k, v in enc.items() if not k.startswith(('conv5', 'bn5'))}
    torch.save(rspnet_checkpoint(part, 'c3d'), tmp_path / 'part.pth')
    with pytest.raises(ValueError, match=r"part.pth lacks 12 weights.*stages.4.conv5a.weight"): import_rspnet(tmp_path / 'part.pth')
    with pytest.raises(ValueError, match='unknown-net'):
        torch.save({'arch': 'unknown-net', 'model': {}}, tmp_path / 'u.pth'); import_rspnet(tmp_path / 'u.pth')
    with pytest.raises(FileNotFoundError, match='nope.pth'): import_rspnet(tmp_path / 'nope.pth')


class Planted:
    "An object whose unpickling would create a file: weights_only loading must refuse it."
    def __init__(self, marker): self.marker = marker
    def __reduce__(self): return (open, (self.marker, 'w'))


def test_checkpoint_with_code_is_refused(tmp_path):
    marker = tmp_path / 'ran'
    torch.save({'arch': 'c3d', 'model': {}, 'hook': Planted(str(marker))}, tmp_path / 'evil.pth')
    with pytest.raises(ValueError, match=r'evil.pth.*weights_only'): import_rspnet(tmp_path / 'evil.pth')
    assert not marker.exists()


def encoder_file(path: Path, backbone: str, width=1.0, seed=0) -> tuple:
    "An hcmtl encoder.pt (variant full, default split) with deterministic weights; returns (path, f_l, h_h, h_c)."
    torch.manual_seed(seed)
    low, human, contrast, _ = build_encoders(ModelConfig(backbone=backbone, width=width, variant='full'))
    for m in (low, human, contrast):
        for b in m.modules():
            if isinstance(b, torch.nn.BatchNorm3d): b.running_mean.normal_(0, 0.1); b.running_var.uniform_(0.5, 1.5)
        m.eval()
    sd = {f'{n}.{k}': v for n, m in (('low_encoder', low), ('human_encoder', human), ('contrast_encoder', contrast))
          for k, v in m.state_dict().items()}
    torch.save({'format': 'hcmtl-encoder', 'version': 1, 'state_dict': sd,
                'meta': {'backbone': backbone, 'width': width, 'variant': 'full'}}, path)
    return path, low, human, contrast


@pytest.mark.parametrize('backbone,ctor', [('r3d18', torchvision.models.video.r3d_18),
                                           ('r2plus1d18', torchvision.models.video.r2plus1d_18)])
def test_export_to_torchvision_features_agree(tmp_path, backbone, ctor):
    f, low, human, contrast = encoder_file(tmp_path / 'encoder.pt', backbone)
    x = torch.randn(2, 3, 4, 32, 32, generator=torch.Generator().manual_seed(5))
    for branch, high in (('contrast', contrast), ('human', human)):
        out = tmp_path / f'tv_{branch}.pth'
        assert weights_cli(['export-torchvision', str(f), str(out), '--branch', branch]) == 0
        tv = ctor(weights=None).eval()
        res = tv.load_state_dict(torch.load(out, weights_only=True), strict=False)
        assert sorted(res.missing_keys) == ['fc.bias', 'fc.weight'] and res.unexpected_keys == []
        with torch.no_grad():
            ref = high(low(x)).mean((2, 3, 4))  # hcmtl's pooled z of that branch
            tv.fc = torch.nn.Identity()
            torch.testing.assert_close(tv(x), ref, rtol=1e-4, atol=1e-5)


def test_export_refuses_what_torchvision_lacks(tmp_path, capsys):
    f, *_ = encoder_file(tmp_path / 'narrow.pt', 'r3d18', width=0.5)
    with pytest.raises(ValueError, match='width 0.5'): export_torchvision(f, tmp_path / 'x.pth')
    g, *_ = encoder_file(tmp_path / 'c3d.pt', 'c3d', width=0.125)
    assert weights_cli(['export-torchvision', str(g), str(tmp_path / 'y.pth')]) == 2
    err = capsys.readouterr().err
    assert err.count('\n') == 1 and 'c3d' in err and 'no torchvision twin' in err
    assert not (tmp_path / 'x.pth').exists() and not (tmp_path / 'y.pth').exists()


def test_import_rspnet_cli_writes_loadable_backbone(tmp_path):
    enc = fill(c3d_spec(), 6)
    torch.save(rspnet_checkpoint(enc, 'c3d'), tmp_path / 'rsp.pth.tar')
    assert weights_cli(['import-rspnet', str(tmp_path / 'rsp.pth.tar'), str(tmp_path / 'c3d_rspnet.pt')]) == 0
    bb = build_backbone('c3d', weights=tmp_path / 'c3d_rspnet.pt')  # what `model.weights=...` does
    assert torch.equal(bb.stages[2].conv3a.weight, enc['conv3a.weight'])
    assert weights_cli(['import-rspnet', str(tmp_path / 'missing.pth'), str(tmp_path / 'o.pt')]) == 2
    assert set(RSPNET_ARCHS.values()) == {'c3d', 'r21d', 'r3d18'}
