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
        dist.destroy_process_group()


@pytest.mark.skipif(not dist.is_available(), reason='torch.distributed not available')
def test_queue_all_gather_and_shuffle_bn_two_processes():
    with tempfile.TemporaryDirectory() as d:
        mp.spawn(_worker, args=(os.path.join(d, 'rendezvous'),), nprocs=WORLD, join=True)
