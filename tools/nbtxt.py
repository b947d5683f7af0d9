"""Round-trip notebooks and a plain-text cell format, for editing notebooks in a terminal.

Format: a line `#%% md` starts a markdown cell, a line `#%%` starts a code cell; everything
until the next marker is the cell's source. Outputs are dropped (notebooks are committed clean).

    python tools/nbtxt.py dump nbs/00_core.ipynb > /tmp/core.txt
    python tools/nbtxt.py load /tmp/core.txt nbs/00_core.ipynb
"""
import sys, nbformat

def dump(nb_path):
    "Print a notebook in the text cell format."
    nb = nbformat.read(nb_path, as_version=4)
    out = []
    for c in nb.cells:
        out.append('#%% md' if c.cell_type == 'markdown' else '#%%')
        out.append(c.source)
    return '\n'.join(out) + '\n'

def load(txt_path, nb_path):
    "Write the notebook described by a text cell file."
    cells, kind, buf = [], None, []
    def flush():
        if kind is None: return
        src = '\n'.join(buf).strip('\n')
        cells.append(nbformat.v4.new_markdown_cell(src) if kind == 'md' else nbformat.v4.new_code_cell(src))
    for line in open(txt_path).read().split('\n'):
        if line.rstrip() in ('#%%', '#%% md'):
            flush(); kind, buf = ('md' if line.rstrip() == '#%% md' else 'code'), []
        else: buf.append(line)
    flush()
    nb = nbformat.v4.new_notebook(cells=cells)
    nb.metadata = {'kernelspec': {'display_name': 'python3', 'language': 'python', 'name': 'python3'}}
    for i, c in enumerate(nb.cells): c['id'] = f'c{i:03d}'
    nbformat.write(nb, nb_path)

if __name__ == '__main__':
    if sys.argv[1] == 'dump': sys.stdout.write(dump(sys.argv[2]))
    elif sys.argv[1] == 'load': load(sys.argv[2], sys.argv[3])
    else: sys.exit('usage: nbtxt.py dump NB | load TXT NB')
