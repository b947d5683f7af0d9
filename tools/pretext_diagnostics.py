"""Can the pretext tasks be learnt at all, and how fast? Trains the query network of the quick preset (R(2+1)D,
no_kd) on one task under simpler set-ups than MoCo's, to tell a defect of the objective from a small budget.

    python tools/pretext_diagnostics.py --data data/synth/quick --task speed --setup siamese --steps 150 [--fixed]
    python tools/pretext_diagnostics.py --data data/synth/quick --all --out diag.csv      # every set-up below
    python tools/pretext_diagnostics.py --data data/synth/quick --out diag.csv --summary diag.md --plot diag.png

Tasks and set-ups (every one uses the run's own speed triplets and augmentation, fp32, SGD at the preset's lr):
- speed, supervised: a linear classifier on the pooled contrastive features predicts each clip's playback speed;
- speed, siamese:    L_m of eq. 6 with q, k⁺, k⁻ all through the query network, gradients through all three;
- speed, stopgrad:   the same with the keys from the query network without gradient (MoCo with momentum 0);
- speed, grouped:    stopgrad with the keys' batch norm over `--groups` random groups (emulated shuffle-BN);
- app, siamese:      InfoNCE of q against the batch's k⁺ (in-batch negatives), gradients through both sides;
- app, stopgrad:     the same with the keys without gradient.
`--fixed` repeats one batch and one augmentation draw (can the set-up fit at all?); otherwise every step draws a
new batch (does it learn?). Prints, every 25 steps, the mean loss and the pairwise accuracy (speed: cos(q,k⁺) >
cos(q,k⁻), or the classifier's accuracy; app: q's nearest key in the batch is its own), beside chance.
"""
import argparse, csv, itertools, math, sys, time
from pathlib import Path
import torch
import torch.nn.functional as F
from hcmtl.core import get_preset, apply_overrides
from hcmtl.losses import speed_margin_loss
from hcmtl.moco import grouped_forward
from hcmtl.pretrain import build_pretraining
from hcmtl.sampling import speed_triplet
from hcmtl.transforms import augment_triplet

SETUPS = [('speed', 'supervised'), ('speed', 'siamese'), ('speed', 'stopgrad'), ('speed', 'grouped'),
          ('app', 'siamese'), ('app', 'stopgrad')]

def triplets(p, fixed: bool):
    "Augmented (q, k⁺, k⁻, s⁺, s⁻) batches: one repeated, or a new one every step."
    d = p.cfg.data
    def make(batch):
        q, kp, kn, sp, sn = speed_triplet(batch['windows'], d.clip_len, d.speeds, p.pair_generator)
        return (*augment_triplet(p.augment, q, kp, kn), sp, sn)
    if fixed:
        one = make(next(iter(p.loader)))
        while True: yield one
    for batch in itertools.chain.from_iterable(itertools.repeat(p.loader)): yield make(batch)

def step_terms(net, head, task, setup, groups, speeds, q, kp, kn, sp, sn):
    "(loss, accuracy) of one step of a task under a set-up; `speeds` sorted, as a tensor (the classes of `supervised`)."
    emb = lambda x: net(x, parse=False)['motion' if task == 'speed' else 'appearance']
    if setup == 'supervised':
        x, y = torch.cat([q, kn]), torch.searchsorted(speeds, torch.cat([sp, sn]))  # class = rank of the speed
        logits = head(net.contrast_encoder(net.low_encoder(x)).mean((2, 3, 4)))
        return F.cross_entropy(logits, y), (logits.argmax(1) == y).float().mean()
    a = emb(q)
    if setup == 'siamese': keys = [emb(k) for k in (kp, kn)]
    else:
        with torch.no_grad():
            keys = [grouped_forward(emb, k, groups) if setup == 'grouped' else emb(k) for k in (kp, kn)]
    if task == 'speed':
        b, c = keys
        return speed_margin_loss(a, b, c), (F.cosine_similarity(a, b) > F.cosine_similarity(a, c)).float().mean()
    sim = F.normalize(a, dim=1) @ F.normalize(keys[0], dim=1).t()
    target = torch.arange(len(a))
    return F.cross_entropy(sim / 0.07, target), (sim.argmax(1) == target).float().mean()

def run(data, task, setup, steps, fixed, groups, seed, log_every=25):
    "Train one set-up; rows of (task, setup, fixed, step, loss, acc, chance_loss, chance_acc, seconds)."
    torch.manual_seed(seed)
    cfg = apply_overrides(get_preset('quick'), ['model.backbone=r21d', 'model.variant=no_kd', 'data.num_workers=0',
                                                'pretrain.precision=fp32', f'seed={seed}'])
    p = build_pretraining(cfg, root=data)
    net, B = p.model.model, cfg.pretrain.batch_size
    head = torch.nn.Linear(net.motion_head.fc.in_features, len(cfg.data.speeds))
    lr = p.optimizer.param_groups[0]['lr']
    opt = torch.optim.SGD([*net.parameters(), *head.parameters()], lr=lr, momentum=cfg.pretrain.momentum,
                          weight_decay=cfg.pretrain.weight_decay)
    chance = {'speed': (cfg.loss.margin if setup != 'supervised' else math.log(len(cfg.data.speeds)),
                        0.5 if setup != 'supervised' else 1 / len(cfg.data.speeds)),
              'app': (math.log(B), 1 / B)}[task]
    rows, hist, t0, speeds = [], [], time.time(), torch.tensor(sorted(cfg.data.speeds))
    for k, batch in enumerate(itertools.islice(triplets(p, fixed), steps), 1):
        loss, acc = step_terms(net, head, task, setup, groups, speeds, *batch)
        opt.zero_grad(); loss.backward(); opt.step()
        hist.append((float(loss.detach()), float(acc)))
        if k % log_every == 0:
            h = hist[-log_every:]
            rows.append(dict(task=task, setup=setup if setup != 'grouped' else f'grouped{groups}', fixed=fixed, step=k,
                             loss=sum(l for l, _ in h) / len(h), acc=sum(a for _, a in h) / len(h),
                             chance_loss=chance[0], chance_acc=chance[1], seconds=time.time() - t0))
            print(' '.join(f'{n}={v:.3f}' if isinstance(v, float) else f'{n}={v}' for n, v in rows[-1].items()), flush=True)
    return rows

def summary_markdown(rows) -> str:
    "A markdown table of the rows: per set-up the first, best and last logged loss and accuracy beside chance."
    import pandas as pd
    from hcmtl.bench import markdown_table
    out = []
    for (task, setup, fixed), g in pd.DataFrame(rows).groupby(['task', 'setup', 'fixed'], sort=False):
        a, b, best = g.iloc[0], g.iloc[-1], g.loc[g.acc.idxmax()]
        out.append({'task': task, 'set-up': setup, 'batches': 'one, repeated' if str(fixed) == 'True' else 'new each step',
                    'steps': str(int(b.step)),
                    'loss: first 25 → last 25 (chance)': f'{a.loss:.2f} → {b.loss:.2f} ({a.chance_loss:.2f})',
                    'accuracy: first → last (chance)': f'{100 * a.acc:.0f}% → {100 * b.acc:.0f}% ({100 * a.chance_acc:.0f}%)',
                    'best 25 steps (ending at step)': f'{100 * best.acc:.0f}% ({int(best.step)})'})
    return markdown_table(pd.DataFrame(out)) + '\n'

def plot_accuracy(rows, path):
    "Accuracy of every logged 25-step window against the step, one line per set-up, chance dashed."
    import matplotlib; matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    import pandas as pd
    fig, ax = plt.subplots(figsize=(6, 3.2))
    for (task, setup, fixed), g in pd.DataFrame(rows).groupby(['task', 'setup', 'fixed'], sort=False):
        line, = ax.plot(g.step, 100 * g.acc, label=f"{task}, {setup}" + (', one batch' if str(fixed) == 'True' else ''))
        ax.axhline(100 * g.chance_acc.iloc[0], ls='--', lw=0.8, color=line.get_color())
    ax.set(xlabel='step', ylabel='accuracy over 25 steps (%)', ylim=(0, 100)); ax.legend(fontsize=8); fig.tight_layout()
    fig.savefig(path, dpi=110, metadata={'Software': None}); plt.close(fig)

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--data', required=True, help='a synthetic world (data/synth/quick)')
    ap.add_argument('--task', choices=('speed', 'app'), default='speed')
    ap.add_argument('--setup', choices=('supervised', 'siamese', 'stopgrad', 'grouped'), default='siamese')
    ap.add_argument('--steps', type=int, default=150)
    ap.add_argument('--fixed', action='store_true', help='repeat one batch and one augmentation draw')
    ap.add_argument('--groups', type=int, default=4, help='batch-norm groups of the keys (setup grouped)')
    ap.add_argument('--seed', type=int, default=0)
    ap.add_argument('--threads', type=int, default=1)
    ap.add_argument('--all', action='store_true', help='every set-up, fixed (50 steps) and streamed (--steps)')
    ap.add_argument('--out', help='CSV of the logged rows')
    ap.add_argument('--summary', help='markdown table of an existing CSV (--out) to write here, without training')
    ap.add_argument('--plot', help='PNG of the accuracy against the step of an existing CSV (--out), without training')
    a = ap.parse_args(argv)
    if a.summary or a.plot:
        import pandas as pd
        if not a.out or not Path(a.out).is_file(): ap.error(f'--summary and --plot read the CSV of --out: no file {a.out}')
        rows = pd.read_csv(a.out).to_dict('records')
        if a.summary: open(a.summary, 'w').write(summary_markdown(rows))
        if a.plot: plot_accuracy(rows, a.plot)
        return 0
    torch.set_num_threads(a.threads)
    if a.task == 'app' and a.setup in ('supervised', 'grouped'): ap.error('the app task has set-ups siamese and stopgrad')
    plan = [(t, s, f, a.steps if not f else 50) for f in (True, False) for t, s in SETUPS] if a.all else \
           [(a.task, a.setup, a.fixed, a.steps)]
    rows = [r for t, s, f, n in plan for r in run(a.data, t, s, n, f, a.groups, a.seed)]
    if a.out:
        with open(a.out, 'w', newline='') as fh:
            w = csv.DictWriter(fh, fieldnames=list(rows[0])); w.writeheader(); w.writerows(rows)
        print('wrote', a.out)

if __name__ == '__main__': sys.exit(main())
