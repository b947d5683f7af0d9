"""The package's layering, checked on the exported modules: what each layer may import from hcmtl."""
import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parent.parent / 'hcmtl'
METHOD = {'backbones', 'model', 'losses', 'moco'}
TRAINERS = {'pretrain', 'finetune'}
# module (or prefix of a subpackage) -> the hcmtl modules it may import
ALLOWED = {**{m: METHOD | {'core', 'accel'} for m in METHOD},
           'core': set(), 'accel': {'core'}, 'engine': {'core', 'accel'}}


def module_name(path: Path) -> str:
    "Dotted name of a module file inside hcmtl, without the package prefix."
    rel = path.relative_to(PKG).with_suffix('')
    parts = [p for p in rel.parts if p != '__init__']
    return '.'.join(parts)


def imports_of(src: str, # a module's source
               package: list, # the subpackage the module sits in ([] for a top-level module)
              ) -> set:
    "Top-level hcmtl modules that the source imports (relative or absolute, anywhere in the file)."
    out = set()
    for node in ast.walk(ast.parse(src)):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = package[:len(package) - (node.level - 1)]
            target = base + (node.module.split('.') if node.module else [])
            out.update(target[:1] if target else [a.name for a in node.names])
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split('.')[0] == 'hcmtl':
            out.update(node.module.split('.')[1:2] or [a.name for a in node.names])
        elif isinstance(node, ast.Import):
            out.update(a.name.split('.')[1] for a in node.names if a.name.startswith('hcmtl.'))
    return out


def hcmtl_imports(path: Path) -> set:
    "Top-level hcmtl modules that a module file imports."
    return imports_of(path.read_text(), module_name(path).split('.')[:-1])


MODULES = sorted(p for p in PKG.rglob('*.py') if p.name not in ('_modidx.py',) and module_name(p))


def test_modules_found():
    names = {module_name(p).split('.')[0] for p in MODULES}
    assert {'core', 'engine', 'pretrain', 'finetune', 'losses'} <= names


@pytest.mark.parametrize('path', MODULES, ids=module_name)
def test_layering(path):
    name = module_name(path)
    top = name.split('.')[0]
    imports = hcmtl_imports(path) - {top}
    if top in ALLOWED:
        extra = imports - ALLOWED[top]
        assert not extra, f"hcmtl.{name} may import only {sorted(ALLOWED[top])} from hcmtl, imports {sorted(extra)}"
    if top not in ('reproduce', 'bench'):
        trainers = imports & TRAINERS
        assert not trainers, f"only hcmtl.reproduce and hcmtl.bench import the trainers; hcmtl.{name} imports {sorted(trainers)}"
    if top != 'testing':
        assert 'testing' not in imports, f"library module hcmtl.{name} imports the test helpers in hcmtl.testing"


def test_scanner_sees_every_import_form():
    "Relative, absolute, function-local and subpackage imports are all seen."
    src = ("import os\ndef f():\n    from .pretrain import x\n    import hcmtl.finetune\n"
           "from hcmtl.engine import y\nfrom hcmtl import cam\nfrom ..core import z\nfrom .schp import w\n")
    test = imports_of(src, ['teachers'])
    assert test == {'teachers', 'finetune', 'engine', 'cam', 'core'}, test
    assert imports_of("from .pretrain import x\nfrom . import losses\n", []) == {'pretrain', 'losses'}


def _cell_stats():
    import importlib.util
    spec = importlib.util.spec_from_file_location('cell_stats', PKG.parent / 'tools' / 'cell_stats.py')
    mod = importlib.util.module_from_spec(spec); spec.loader.exec_module(mod)
    return mod


def test_stored_outputs_name_no_machine_path():
    "A notebook's stored outputs read the same on every machine: no /tmp, /work, /home... path in any of them."
    cs = _cell_stats()
    bad = [f'{p.name} {line}' for p in sorted((PKG.parent / 'nbs').glob('*.ipynb'))
           for line in cs.output_problems(p) if 'machine path' in line]
    assert not bad, bad


def test_output_checks_see_paths_and_timings(tmp_path):
    "The checker finds a temporary path in a stored log line and an execution timing, and drops the log line."
    cs = _cell_stats()
    cell = {'cell_type': 'code', 'id': 'c1', 'execution_count': 3, 'source': [],
            'metadata': {'execution': {'total': 0.1}},
            'outputs': [{'output_type': 'stream', 'name': 'stderr', 'text': ['wrote /tmp/tmpab12/x.pt\n']},
                        {'output_type': 'execute_result', 'data': {'text/plain': ['3']}, 'metadata': {}}]}
    nb = tmp_path / 'x.ipynb'; nb.write_text(__import__('json').dumps({'cells': [cell]}))
    probs = cs.output_problems(nb)
    assert len(probs) == 2 and 'execution timing' in probs[0] and '/tmp/' in probs[1], probs
    assert cs.drop_path_streams(nb) == 1 and [p for p in cs.output_problems(nb) if 'machine path' in p] == []
