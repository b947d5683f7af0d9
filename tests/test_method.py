"""Two-process (gloo, CPU) checks of the MoCo queue all-gather and shuffle-BN (hcmtl.moco)."""
import os, tempfile

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

WORLD = 2


def _worker(rank, init_file):
    torch.set_num_threads(1)
    dist.init_process_group('gloo', init_method=f'file://{init_file}', rank=rank, world_size=WORLD)
    try:
        from hcmtl.core import get_preset
        from hcmtl.moco import MoCoHCMTL, gather_all, shuffle_batch, unshuffle_batch, world_size
        from hcmtl.testing import tiny_clip
        assert world_size() == WORLD

        # all-gather: rank order along dim 0
        g = gather_all(torch.full((2, 3), float(rank)))
        assert g.shape == (4, 3) and g[:2].eq(0).all() and g[2:].eq(1).all()

        # shuffle-BN: ranks use different RNG states, yet share one permutation (broadcast from rank 0)
        torch.manual_seed(100 + rank)
        x = torch.arange(8.).view(4, 2) + 100 * rank
        xs, idx = shuffle_batch(x)
        everything, shuffled = gather_all(x), gather_all(xs)
        assert sorted(shuffled[:, 0].tolist()) == sorted(everything[:, 0].tolist())  # a permutation of the global batch
        assert torch.equal(unshuffle_batch(xs, idx), x)  # undone exactly on every rank

        # the MoCo model: queue rounded to a multiple of the GLOBAL batch (2 per rank x 2 ranks)
        cfg = get_preset('smoke')
        cfg.pretrain.batch_size, cfg.loss.queue_size = 2, 10
        torch.manual_seed(0)  # same initial weights and queue on both ranks
        moco = MoCoHCMTL(cfg)
        assert moco.queue_size == 12, moco.queue_size
        queue0 = moco.queue.clone()

        clips = [tiny_clip(2, cfg.data.clip_len, cfg.data.size, seed=10 * rank + i) for i in range(3)]
        # in eval mode BN is per-sample, so shuffled key embeddings must equal unshuffled ones
        moco.eval()
        with torch.no_grad():
            km, ka = moco.key_forward(clips[0])
            km2, ka2 = moco.key_encoder(clips[0])
        assert torch.allclose(km, km2, atol=1e-6) and torch.allclose(ka, ka2, atol=1e-6)

        # a training step: both ranks enqueue the 4 all-gathered keys, so their queues stay equal
        moco.train()
        teacher = torch.rand(2, cfg.teacher.num_classes, *moco.parse_size).softmax(1)
        out = moco(*clips, teacher)
        out['loss'].backward()
        assert torch.isfinite(out['loss'])
        assert int(moco.queue_ptr) == 4
        queues = gather_all(moco.queue[None])
        assert torch.equal(queues[0], queues[1])
        assert not torch.equal(moco.queue[:4], queue0[:4]) and torch.equal(moco.queue[4:], queue0[4:])
        assert torch.allclose(moco.queue[:4].norm(dim=1), torch.ones(4))
    finally:
        from hcmtl.engine import cleanup_distributed
        cleanup_distributed()  # a barrier first: a rank leaving while its peer still closes the gloo pair aborts it


@pytest.mark.skipif(not dist.is_available(), reason='torch.distributed not available')
def test_queue_all_gather_and_shuffle_bn_two_processes():
    with tempfile.TemporaryDirectory() as d:
        mp.spawn(_worker, args=(os.path.join(d, 'rendezvous'),), nprocs=WORLD, join=True)


# ---- one process: RSPNet's objective under the `paper` preset (two positives, k- enqueued, window augmentation,
# ---- shuffle-BN emulated by groups)
import logging
import math

import numpy as np
import torch.nn.functional as F


def _paper_switches_on_smoke(variant='no_kd'):
    from hcmtl.core import get_preset
    cfg, paper = get_preset('smoke'), get_preset('paper')
    cfg.model.variant = variant
    for f in ('app_positives', 'enqueue', 'shuffle_bn', 'shuffle_bn_groups'):
        setattr(cfg.loss, f, getattr(paper.loss, f))
    for f in ('pair_augment', 'gray_first', 'jitter_p', 'grayscale_p', 'contrast_mean'):
        setattr(cfg.data, f, getattr(paper.data, f))
    cfg.pretrain.batch_size = 8
    return cfg


def test_paper_preset_is_rspnet_recipe():
    from hcmtl.core import get_preset, resolve_recipe
    p = resolve_recipe(get_preset('paper'), 'hmdb51')
    assert (p.loss.app_positives, p.loss.enqueue, p.loss.shuffle_bn) == (2, 'k_neg', True)
    assert (p.data.pair_augment, p.data.gray_first, p.data.jitter_p, p.data.grayscale_p) == ('window', True, 1.0, 0.2)
    assert (p.data.test_crop, p.model.dropout, p.teacher.source) == ('square', 0.0, 'frame')
    assert (p.pretrain.lr, p.finetune.lr, p.finetune.epochs, p.finetune.schedule) == (0.1, 0.005, 100, 'multi_step')


def test_no_kd_appearance_loss_is_two_positive_infonce_literal():
    from hcmtl.moco import MoCoHCMTL
    from hcmtl.testing import tiny_clip
    cfg = _paper_switches_on_smoke('no_kd')
    torch.manual_seed(0)
    moco = MoCoHCMTL(cfg).eval()
    q, kp, kn = (tiny_clip(8, cfg.data.clip_len, cfg.data.size, seed=i) for i in range(3))
    with torch.no_grad():
        out = moco(q, kp, kn)
        qa = moco.model(q, parse=False)['appearance'].double().numpy()
        keys = [moco.key_encoder(k)[1].double().numpy() for k in (kp, kn)]
    queue, tau = moco.queue.double().numpy(), cfg.loss.tau
    unit = lambda v: v / np.linalg.norm(v)
    total = 0.0
    for i in range(len(qa)):
        negs = sum(math.exp(unit(qa[i]) @ queue[n] / tau) for n in range(len(queue)))
        for k in keys:
            pos = math.exp(unit(qa[i]) @ unit(k[i]) / tau)
            total += -math.log(pos / (pos + negs))
    assert abs(out['app'].item() - total / len(qa)) < 1e-4 * max(1.0, total / len(qa))
    assert torch.allclose(out['loss'], out['motion'] + out['app'])


def test_training_step_enqueues_other_speed_keys():
    from hcmtl.moco import MoCoHCMTL
    from hcmtl.testing import tiny_clip
    cfg = _paper_switches_on_smoke('no_kd')
    cfg.loss.shuffle_bn_groups = 1  # one group: key embeddings are reproducible after the step
    torch.manual_seed(0)
    moco = MoCoHCMTL(cfg).train()
    q, kp, kn = (tiny_clip(8, cfg.data.clip_len, cfg.data.size, seed=i) for i in range(3))
    moco(q, kp, kn)
    with torch.no_grad():
        neg, pos = F.normalize(moco.key_forward(kn)[1], dim=1), F.normalize(moco.key_forward(kp)[1], dim=1)
    assert torch.allclose(moco.queue[:8], neg, atol=1e-5) and not torch.allclose(moco.queue[:8], pos, atol=1e-3)


def test_window_augmentation_k_pos_and_k_neg_share_it_q_does_not():
    from hcmtl.transforms import ClipAugment, augment_triplet
    from hcmtl.sampling import speed_triplet
    cfg = _paper_switches_on_smoke()
    windows = torch.randint(0, 256, (6, 2, 3, 2 * cfg.data.clip_len, 16, 16), dtype=torch.uint8)
    windows[:, 1] = windows[:, 0]  # same pixels in both windows: q and k+ differ only by their augmentation
    q, kp, kn, _, _ = speed_triplet(windows, cfg.data.clip_len)
    assert torch.equal(q, kp)
    aug = ClipAugment(cfg.data, seed=0).train()
    qa, kpa, kna = augment_triplet(aug, q, kp, kn)
    window1 = aug.last_params  # what k- received
    assert (qa - kpa).abs().amax(dim=(1, 2, 3, 4)).gt(1e-3).all()  # q: its own draw, for every video
    assert torch.allclose(aug(kp, params=window1), kpa, atol=1e-6)  # k+ received exactly k-'s parameters
    assert not torch.allclose(aug(q, params=window1), qa, atol=1e-3)
    same = augment_triplet(aug, q, kp, kp)
    assert torch.equal(same[1], same[2])


def test_shuffle_bn_on_one_process_normalises_groups(caplog):
    from hcmtl.moco import MoCoHCMTL
    from hcmtl.testing import tiny_clip
    cfg = _paper_switches_on_smoke()
    moco = MoCoHCMTL(cfg).train()
    bn = next(m for m in moco.key_encoder.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm))
    sizes = []
    h = bn.register_forward_hook(lambda m, i, o: sizes.append(i[0].shape[0]))
    clips = [tiny_clip(8, cfg.data.clip_len, cfg.data.size, seed=i) for i in range(3)]
    moco(*clips)
    h.remove()
    assert sizes == [2] * 8, sizes  # k+ and k-: 4 groups of 2 clips each, normalised separately
    cfg.loss.shuffle_bn = False
    with caplog.at_level(logging.WARNING, logger='hcmtl.moco'):
        MoCoHCMTL(cfg)
    assert sum('shuffle_bn=False' in r.message for r in caplog.records) == 1
