"""Measure the notebooks the way the house style is stated: export-cell sizes, cells defining several
functions, and code cells that keep their outputs.

    python tools/cell_stats.py            # one table row per notebook and a total
    python tools/cell_stats.py --long     # also list every export cell over 40 lines
    python tools/cell_stats.py --outputs  # stored outputs that differ between machines (paths, timings)
    python tools/cell_stats.py --drop-path-streams nbs/X.ipynb ...  # drop stored log lines/prints naming machine paths

Outputs are stored with `nbdev-test --path NB --save`, then `nbdev-clean --fname NB` (execution timings and
counts) and `--drop-path-streams NB` (log lines that name a temporary folder); `--outputs` should list nothing.
"""
import ast, json, re, statistics, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def export_lines(src: str) -> int:
    "Non-blank lines of a cell that are not nbdev directives."
    return sum(1 for l in src.splitlines() if l.strip() and not l.strip().startswith('#|'))


def defined_functions(src: str) -> int:
    "Top-level functions and classes a cell defines (0 when the cell does not parse)."
    try: tree = ast.parse(re.sub(r'^\s*[%!].*$', '', src, flags=re.M))
    except SyntaxError: return 0
    return sum(isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) for n in tree.body)


def notebook_stats(path: Path) -> dict:
    "Export cells' sizes, the long ones, multi-definition cells and code cells with outputs of one notebook."
    cells = json.loads(path.read_text())['cells']
    code = [c for c in cells if c['cell_type'] == 'code']
    exports = [''.join(c['source']) for c in code if re.match(r'\s*#\|\s*export', ''.join(c['source']))]
    sizes = [export_lines(s) for s in exports]
    return dict(notebook=str(path.relative_to(ROOT)), export_cells=len(exports), sizes=sizes,
                long=[(i, n) for i, n in enumerate(sizes) if n > 40],
                multi=sum(defined_functions(s) >= 3 for s in exports),
                with_outputs=sum(bool(c.get('outputs')) for c in code), code_cells=len(code))


MACHINE_PATH = re.compile(r'/(?:tmp|work|home|root|Users)/')


def _output_text(o: dict) -> str:
    "The text of one stored output (stream text and every text/* representation)."
    data = [v if isinstance(v, str) else ''.join(v) for k, v in o.get('data', {}).items() if k.startswith('text/')]
    return ''.join(o.get('text', '')) + ''.join(data)


def output_problems(path: Path) -> list[str]:
    "Stored outputs that would read differently on another machine: machine paths, execution timings and counts."
    out = []
    for c in json.loads(Path(path).read_text())['cells']:
        if c['cell_type'] != 'code': continue
        if c['metadata'].get('execution') or c.get('execution_count') is not None:
            out.append(f"{c.get('id')}: execution timing or count stored (nbdev-clean removes it)")
        for o in c.get('outputs', []):
            m = MACHINE_PATH.search(_output_text(o))
            if m: out.append(f"{c.get('id')}: {o['output_type']} output names a machine path ({m.group()}...)")
    return out


def drop_path_streams(path: Path) -> int:
    "Remove the stored stream outputs (log lines, prints) that name a machine path; how many were removed."
    nb = json.loads(Path(path).read_text()); n = 0
    for c in nb['cells']:
        keep = [o for o in c.get('outputs', []) if not (o['output_type'] == 'stream' and MACHINE_PATH.search(_output_text(o)))]
        n += len(c.get('outputs', [])) - len(keep)
        if 'outputs' in c: c['outputs'] = keep
    Path(path).write_text(json.dumps(nb, indent=1, ensure_ascii=False) + '\n')
    return n


def main(argv):
    if '--drop-path-streams' in argv:
        for p in argv[argv.index('--drop-path-streams') + 1:]: print(f"{p}: {drop_path_streams(Path(p))} stream outputs dropped")
        return
    if '--outputs' in argv:
        for p in sorted([ROOT / 'index.ipynb', *(ROOT / 'nbs').glob('*.ipynb')]):
            for line in output_problems(p): print(f"{p.relative_to(ROOT)} {line}")
        return
    rows = [notebook_stats(p) for p in sorted([ROOT / 'index.ipynb', *(ROOT / 'nbs').glob('*.ipynb')])]
    print(f"{'notebook':32} {'exports':>7} {'median':>6} {'>40':>4} {'3+defs':>6} {'outputs':>9}")
    for r in rows:
        med = statistics.median(r['sizes']) if r['sizes'] else 0
        print(f"{r['notebook']:32} {r['export_cells']:7d} {med:6.0f} {len(r['long']):4d} {r['multi']:6d} "
              f"{r['with_outputs']:4d}/{r['code_cells']:<4d}")
        if '--long' in argv:
            for i, n in r['long']: print(f"    export cell {i}: {n} lines")
    sizes = [s for r in rows for s in r['sizes']]
    n = len(sizes)
    print(f"\nall: {n} export cells, median {statistics.median(sizes):.0f} lines, "
          f"{sum(s > 40 for s in sizes) / n:.1%} over 40, "
          f"{sum(r['multi'] for r in rows) / n:.1%} defining 3+ functions, "
          f"{sum(r['with_outputs'] for r in rows)}/{sum(r['code_cells'] for r in rows)} code cells with outputs")


if __name__ == '__main__': main(sys.argv[1:])
