"""Generate README.md from index.ipynb (markdown cells verbatim, code cells as python blocks, hidden cells skipped;
a markdown line `<!-- include: data/results/quick/summary.md -->` is replaced by that file).

    python tools/make_readme.py          # write README.md
    python tools/make_readme.py --check  # exit 1 if README.md differs from what index.ipynb gives
"""
import re, sys
from pathlib import Path
import nbformat

ROOT = Path(__file__).resolve().parent.parent

_include = re.compile(r'<!-- include: (\S+) -->')

def _includes(md: str) -> str:
    "Replace `<!-- include: path -->` lines by the file (relative to the repository root), headings demoted twice."
    def sub(m):
        f = ROOT / m.group(1)
        if not f.exists(): return f'*(not generated yet: {m.group(1)})*'
        return re.sub(r'^(#+) ', lambda h: '#' * min(6, len(h.group(1)) + 2) + ' ', f.read_text().strip(), flags=re.M)
    return _include.sub(sub, md)

def readme_text(nb_path=ROOT / 'index.ipynb') -> str:
    "The README text that index.ipynb describes."
    nb = nbformat.read(nb_path, as_version=4)
    parts = ['<!-- generated from index.ipynb by tools/make_readme.py: edit the notebook, not this file -->']
    for c in nb.cells:
        src = c.source.strip()
        if not src or src.startswith('#| hide') or src.startswith('#|hide'): continue
        if c.cell_type == 'markdown': parts.append(_includes(src))
        else:
            lines = [l for l in src.splitlines() if not l.startswith('#|')]
            if lines: parts.append('```python\n' + '\n'.join(lines) + '\n```')
    return '\n\n'.join(parts) + '\n'

if __name__ == '__main__':
    want, path = readme_text(), ROOT / 'README.md'
    if '--check' in sys.argv:
        if not path.exists() or path.read_text() != want:
            sys.exit('README.md is not what index.ipynb generates: run `python tools/make_readme.py` and commit')
        print('README.md matches index.ipynb')
    else:
        path.write_text(want); print(f'wrote {path}')
