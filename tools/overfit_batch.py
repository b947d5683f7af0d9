"""Can the pretraining objective fit one batch? Repeats the pretraining step on a single loader batch and prints the
loss terms, to tell a defect of the objective from a small budget.

    python tools/overfit_batch.py --data data/synth/quick [--steps 80] [override ...]
    python tools/overfit_batch.py --data data/synth/quick loss.lambda_app=0 pretrain.lr=0.4   # the speed task alone

Overrides are dotted config keys over the quick preset (R(2+1)D, no_kd unless overridden). The learning-rate
schedule is not applied: every step uses the base lr.
"""
import argparse, sys, time
import torch
from hcmtl.core import get_preset, apply_overrides
from hcmtl.pretrain import build_pretraining, pretrain_step

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--data', required=True, help='a synthetic world (or a root with kinetics/)')
    ap.add_argument('--steps', type=int, default=80)
    ap.add_argument('overrides', nargs='*')
    a = ap.parse_args(argv)
    torch.set_num_threads(1)
    cfg = apply_overrides(get_preset('quick'), ['model.backbone=r21d', 'model.variant=no_kd', 'data.num_workers=0'] + a.overrides)
    cfg.data.root = a.data
    p = build_pretraining(cfg, root=a.data)
    batch, t = next(iter(p.loader)), time.time()
    print('lr', [g['lr'] for g in p.optimizer.param_groups])
    for step in range(1, a.steps + 1):
        out = pretrain_step(p, batch)
        p.optimizer.zero_grad(); out['loss'].backward(); p.optimizer.step()
        if step % 10 == 0 or step == 1:
            print(step, {k: round(float(v.detach()), 3) for k, v in out.items()}, f'{time.time() - t:.0f}s', flush=True)

if __name__ == '__main__': sys.exit(main())
