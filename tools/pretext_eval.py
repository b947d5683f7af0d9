"""Has a pretraining run learnt its pretext tasks, or only the batch it was trained in? Scores the query network of
pretraining runs on the same fresh speed triplets, with batch norm in two modes, beside the random-init network.

    python tools/pretext_eval.py --data data/synth/quick random RUN_DIR [RUN_DIR ...] [--batches 40] \
        [--out pretext_eval.csv] [--summary summary.md]

- `eval` batch norm (the running statistics, as a frozen encoder is used downstream): every clip is embedded on its
  own, so no score can come from the other clips of a batch;
- `batch` batch norm (the statistics of each forward batch, as in training; the running statistics are not
  changed): q, k⁺ and k⁻ each go through the network as one batch of B clips, as in a step with one BN group.
Scores, with the 95% Wilson interval over the triplets:
- speed: cos(g_m(q), g_m(k⁺)) > cos(g_m(q), g_m(k⁻)), the ranking of L_m (chance 50%);
- instance: among the batch's B appearance embeddings g_a(k⁺), q's nearest is its own video's (chance 1/B);
- queue: q's own g_a(k⁺) is nearer than each of the g_a(k⁺) of the two batches before (2B keys, as in quick's queue
  of 32; chance 1/(2B+1)). With `batch` BN the own key shares its batch statistics with q and the older keys do not,
  so a network that matches queries to keys through batch statistics scores higher here than with `eval` BN;
- speed probe: the project's linear probe (`metrics.linear_probe`, weight decay chosen on a held-out fifth of its
  training clips) on the pooled features of f_l, h_c (eval BN) tells the faster clip of (q, k⁻) from the slower;
  trained on the first 60% of the batches, tested on the rest (chance 50%). Does the encoder carry speed at all?
A score that is high with `batch` and at chance with `eval` was learnt through batch statistics, not from the clips.
Every run sees the same triplets (one data stream, seeded by --seed), so the rows are paired.
"""
import argparse, itertools, sys
from pathlib import Path
import torch
import torch.nn.functional as F
from hcmtl.core import get_preset, apply_overrides, load_config
from hcmtl.engine import load_latest_checkpoint
from hcmtl.moco import MoCoHCMTL
from hcmtl.pretrain import build_pretraining
from hcmtl.results import wilson_ci
from hcmtl.metrics import linear_probe
sys.path.insert(0, str(Path(__file__).resolve().parent))
from pretext_diagnostics import triplets as triplet_stream  # the same speed triplets and augmentation

def eval_triplets(data, seed: int, batches: int, preset: str='quick') -> list:
    "`batches` augmented (q, k⁺, k⁻, s⁺, s⁻) batches of the preset's pool, drawn once from a seeded stream."
    cfg = apply_overrides(get_preset(preset), ['model.variant=no_kd', 'data.num_workers=0', f'seed={seed}'])
    return list(itertools.islice(triplet_stream(build_pretraining(cfg, root=data), fixed=False), batches))

def run_config(run):
    "The config of a pretraining run directory, or a clear exit when it is none."
    if not (Path(run) / 'config.yaml').is_file(): raise SystemExit(f"{run}: not a pretraining run (no config.yaml)")
    return load_config(Path(run) / 'config.yaml')

def load_query_network(run, seed: int, like=None):
    "(name, query network) of a pretraining run's newest checkpoint; for run 'random' a random-init network of config `like`."
    if run == 'random':
        if like is None: raise ValueError("a 'random' network needs the config `like` of its architecture")
        torch.manual_seed(seed)
        return f'random init ({like.model.backbone})', MoCoHCMTL(apply_overrides(like, ['model.variant=no_kd'])).model
    cfg = run_config(run)
    state, path = load_latest_checkpoint(Path(run) / 'checkpoints', move_bad=False)
    if state is None: raise SystemExit(f"{run}: no checkpoint in {Path(run) / 'checkpoints'}")
    moco = MoCoHCMTL(cfg); moco.load_state_dict(state['model'])
    return f"{Path(run).name} (step {state['global_step']})", moco.model

def bn_mode(net, mode: str):
    "`net` in eval mode, or in train mode with batch norm that leaves its running statistics as they are."
    net.eval() if mode == 'eval' else net.train()
    for m in net.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm): m.momentum = 0.0
    return net

@torch.no_grad()
def scores(net, triplets, mode: str) -> dict:
    "Speed-ranking and instance-retrieval hits of `net` over the triplets, batch norm in `mode`."
    net = bn_mode(net, mode)
    emb = lambda x: net(x, parse=False)  # eval BN normalises each clip alone, batched or not
    speed = inst = queue = nq = n = 0
    old = []  # appearance keys of the batches before
    for q, kp, kn, _, _ in triplets:
        eq, ep, en = emb(q), emb(kp), emb(kn)
        speed += int((F.cosine_similarity(eq['motion'], ep['motion']) > F.cosine_similarity(eq['motion'], en['motion'])).sum())
        qa, ka = F.normalize(eq['appearance'], dim=1), F.normalize(ep['appearance'], dim=1)
        inst += int(((qa @ ka.t()).argmax(1) == torch.arange(len(q))).sum()); n += len(q)
        if len(old) == 2:
            queue += int(((qa * ka).sum(1) > (qa @ torch.cat(old).t()).max(1).values).sum()); nq += len(q)
        old = (old + [ka])[-2:]
    return dict(speed_hits=speed, instance_hits=inst, queue_hits=queue, n_queue=nq, n=n, batch=len(triplets[0][0]))

@torch.no_grad()
def pooled(net, x): return net.contrast_encoder(net.low_encoder(x)).mean((2, 3, 4))

def speed_probe(net, triplets, train_share: float=0.6) -> tuple:
    "(hits, n) of the linear probe (`metrics.linear_probe`) telling the faster clip of (q, k⁻) from the slower, frozen pooled features, eval BN."
    bn_mode(net, 'eval')
    split = lambda ts: {'features': torch.cat([pooled(net, torch.cat([q, kn])) for q, kp, kn, sp, sn in ts]),
                        'labels': torch.cat([(torch.cat([sp, sn]) == max(sp.max(), sn.max())).long() for *_, sp, sn in ts])}
    cut = round(train_share * len(triplets))  # whole batches on each side: a video is in train or in test
    res = linear_probe(split(triplets[:cut]), split(triplets[cut:]), num_classes=2, ks=(1,))
    return round(res['acc1'] * res['num_test'] / 100), res['num_test']

def cell(hits: int, n: int) -> str:
    "A score in percent with its 95% Wilson interval."
    lo, hi = wilson_ci(100 * hits / n, n)
    return f"{100 * hits / n:.1f} [{lo:.1f}, {hi:.1f}]"

def score_row(name: str, net, triplets, mode: str) -> dict:
    "One table row: every score of `net` with batch norm in `mode` (the speed probe in `eval` mode only)."
    s = scores(net, triplets, mode)
    return {'run': name, 'batch norm': mode, 'n': s['n'], 'speed (chance 50%)': cell(s['speed_hits'], s['n']),
            f"instance (chance {100 / s['batch']:.0f}%)": cell(s['instance_hits'], s['n']),
            f"queue (chance {100 / (2 * s['batch'] + 1):.0f}%)": cell(s['queue_hits'], s['n_queue']),
            'speed probe (chance 50%)': cell(*speed_probe(net, triplets)) if mode == 'eval' else '—'}

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('runs', nargs='*', help="pretraining run directories, or 'random'")
    ap.add_argument('--data', help='the synthetic world the runs were trained on (data/synth/quick)')
    ap.add_argument('--batches', type=int, default=40, help='batches of the evaluation stream')
    ap.add_argument('--seed', type=int, default=1234, help='seed of the evaluation stream (not of any run)')
    ap.add_argument('--init-seed', type=int, default=0, help="seed of the 'random' network's weights")
    ap.add_argument('--threads', type=int, default=2)
    ap.add_argument('--preset', default='quick', help="preset of the evaluation stream (and of 'random' without a run)")
    ap.add_argument('--out', help='CSV of the scores')
    ap.add_argument('--summary', help='markdown table of the scores')
    ap.add_argument('--from-csv', action='store_true', help='write --summary from the scores in --out, evaluating nothing')
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    import pandas as pd
    from hcmtl.bench import markdown_table
    if a.from_csv:
        if not a.out or not a.summary: ap.error('--from-csv needs --out CSV (read) and --summary MD (written)')
        df = pd.read_csv(a.out)
    else:
        if not a.runs or not a.data: ap.error('give the runs to score (or random) and --data WORLD')
        trained = [r for r in a.runs if r != 'random']
        like = run_config(trained[0]) if trained else get_preset(a.preset)  # random init: the runs' architecture
        triplets, rows = eval_triplets(a.data, a.seed, a.batches, a.preset), []
        for run in a.runs:
            name, net = load_query_network(run, a.init_seed, like)
            for mode in ('eval', 'batch'):
                rows.append(score_row(name, net, triplets, mode)); print(rows[-1], flush=True)
        df = pd.DataFrame(rows)
        if a.out: df.to_csv(a.out, index=False)
    print(markdown_table(df))
    if a.summary:
        head = (f"Pretext scores of each network's query path on the same {df.n.iloc[0]} fresh triplets of the {a.preset} "
                f"pool ({a.batches} batches, stream seed {a.seed}); [low, high] is the 95% Wilson interval. `eval`: running "
                f"batch-norm statistics, each clip alone; `batch`: each batch's own statistics.\n\n")
        open(a.summary, 'w').write(head + markdown_table(df) + '\n')

if __name__ == '__main__': sys.exit(main())
