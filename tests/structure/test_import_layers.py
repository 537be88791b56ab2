"""Every module of the package imports only from its own layer or the layers below it.

The layers, bottom to top (``docs/architecture.md``, "Layout"): ``registry``/
``version``; ``ops``; ``structures``; ``models``; ``datasets``, ``evaluation``, ``engine``, ``utils``;
``apis``. Imports are read with ``ast`` (function-level imports included), so the test
needs no optional package and catches lazy imports that dodge a cycle.
"""
import ast
import pathlib

import pytest

PACKAGE = pathlib.Path(__file__).resolve().parents[2] / 'mmhrsam'
LEVELS = {'registry': 0, 'version': 0, 'ops': 1, 'structures': 2, 'models': 3,
          'datasets': 4, 'evaluation': 4, 'engine': 4, 'utils': 4, 'apis': 5}


def layer_of(module: str) -> str:
    """``mmhrsam.models.layers.mlp`` -> ``models``."""
    parts = module.split('.')
    return parts[1] if len(parts) > 1 else ''


def imported_modules(path: pathlib.Path):
    """(line, absolute module name) of every mmhrsam import in ``path``."""
    rel = path.relative_to(PACKAGE.parent).with_suffix('')
    package = list(rel.parts[:-1]) if rel.name != '__init__' else list(rel.parts[:-1])
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[:len(package) - node.level + 1]
                module = '.'.join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ''
            if node.module is None:  # `from . import x`: each name is a module
                for alias in node.names:
                    yield node.lineno, f'{module}.{alias.name}'
            else:
                yield node.lineno, module


def modules():
    return sorted(p for p in PACKAGE.rglob('*.py') if p.parent != PACKAGE or p.name != '__init__.py')


def upward_imports(path: pathlib.Path):
    own = layer_of('.'.join(path.relative_to(PACKAGE.parent).with_suffix('').parts))
    if own not in LEVELS:
        raise AssertionError(f'{path} is in no layer; add its package to LEVELS')
    for line, module in imported_modules(path):
        if not module.startswith('mmhrsam.'):
            continue
        target = layer_of(module)
        if target != own and LEVELS.get(target, 99) >= LEVELS[own]:
            yield f'{path.relative_to(PACKAGE.parent)}:{line} ({own}) imports {module} ({target})'


def test_the_parser_sees_upward_imports(tmp_path, monkeypatch):
    """The check itself: a relative and an absolute upward import, a lazy one, a peer one."""
    fake = tmp_path / 'mmhrsam'
    (fake / 'models').mkdir(parents=True)
    (fake / 'models' / 'm.py').write_text('from ..apis import x\nimport mmhrsam.ops\n'
                                          'def f():\n    from mmhrsam.evaluation import y\n')
    (fake / 'datasets').mkdir()
    (fake / 'datasets' / 'd.py').write_text('from mmhrsam.engine import z\nfrom ..models.m import f\n')
    monkeypatch.setitem(globals(), 'PACKAGE', fake)
    found = [msg for p in sorted(fake.rglob('*.py')) for msg in upward_imports(p)]
    assert [m.split(' imports ')[1] for m in found] == ['mmhrsam.engine (engine)', 'mmhrsam.apis (apis)',
                                                        'mmhrsam.evaluation (evaluation)']


def test_no_upward_imports():
    found = [msg for path in modules() for msg in upward_imports(path)]
    assert not found, 'upward imports:\n' + '\n'.join(found)


@pytest.mark.parametrize('module,layer', [('mmhrsam.ops.switch', 'ops'), ('mmhrsam', '')])
def test_layer_of(module, layer):
    assert layer_of(module) == layer
