"""The package's internal import graph has no cycle.

Every module of ``geminifusion_mmseg`` is parsed with :mod:`ast`; every
``import`` / ``from ... import`` statement, at module level AND inside
functions or methods, that names another module of the package is an edge.
A cycle in that graph (e.g. the backbones importing the weights loader,
which imports the backbones back from inside a function) fails the test.

``from pkg import name`` counts as an edge to ``pkg.name`` when that is a
module, else to ``pkg`` (its ``__init__``).
"""
import ast
import os
import os.path as osp
from typing import Dict, List, Optional, Set

import geminifusion_mmseg

PACKAGE = 'geminifusion_mmseg'
ROOT = osp.dirname(osp.abspath(geminifusion_mmseg.__file__))


def package_modules() -> Dict[str, str]:
    """Dotted module name -> file path, for every .py file of the package."""
    modules = {}
    for dirpath, _, files in os.walk(ROOT):
        for f in files:
            if not f.endswith('.py'):
                continue
            path = osp.join(dirpath, f)
            rel = osp.relpath(path, osp.dirname(ROOT))[:-3]
            rel = rel.replace(os.sep, '.')
            if rel.endswith('.__init__'):
                rel = rel[:-len('.__init__')]
            modules[rel] = path
    return modules


def _resolve(module: str, is_package: bool, level: int,
             target: Optional[str]) -> str:
    """Absolute name of ``from <level dots><target> import ...``."""
    if level == 0:
        return target or ''
    base = module.split('.')
    if not is_package:
        base = base[:-1]
    if level > 1:
        base = base[:-(level - 1)]
    return '.'.join(base + ([target] if target else []))


def import_edges(modules: Dict[str, str]) -> Dict[str, Set[str]]:
    """Module -> the package modules it imports (anywhere in its body)."""
    edges: Dict[str, Set[str]] = {m: set() for m in modules}
    for module, path in modules.items():
        is_package = path.endswith('__init__.py')
        with open(path, encoding='utf-8') as f:
            tree = ast.parse(f.read(), filename=path)
        for node in ast.walk(tree):
            targets: List[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = _resolve(module, is_package, node.level, node.module)
                for alias in node.names:
                    sub = f'{base}.{alias.name}'
                    targets.append(sub if sub in modules else base)
            for t in targets:
                # the longest package module that the name starts with
                while t and t not in modules:
                    t = t.rpartition('.')[0]
                if t and t != module:
                    edges[module].add(t)
    return edges


def find_cycle(edges: Dict[str, Set[str]]) -> Optional[List[str]]:
    """One cycle as a list of modules (first == last), or None."""
    WHITE, GREY, BLACK = 0, 1, 2
    colour = {m: WHITE for m in edges}
    stack: List[str] = []

    def visit(m):
        colour[m] = GREY
        stack.append(m)
        for n in sorted(edges[m]):
            if colour[n] == GREY:
                return stack[stack.index(n):] + [n]
            if colour[n] == WHITE:
                found = visit(n)
                if found:
                    return found
        stack.pop()
        colour[m] = BLACK
        return None

    for m in sorted(edges):
        if colour[m] == WHITE:
            found = visit(m)
            if found:
                return found
    return None


def test_graph_covers_the_package():
    modules = package_modules()
    assert PACKAGE in modules
    assert f'{PACKAGE}.models.backbones.gemini_mit' in modules
    edges = import_edges(modules)
    assert f'{PACKAGE}.models.layers' in edges[
        f'{PACKAGE}.models.backbones.gemini_mit']


def test_function_level_imports_are_edges():
    """An import inside a function body is an edge like any other."""
    modules = {'p': 'p/__init__.py', 'p.a': 'a.py', 'p.b': 'b.py'}
    trees = {
        'p.a': 'from . import b\n',
        'p.b': 'def f():\n    from .a import x\n',
    }
    edges = {m: set() for m in modules}
    for m, src in trees.items():
        for node in ast.walk(ast.parse(src)):
            if isinstance(node, ast.ImportFrom):
                base = _resolve(m, False, node.level, node.module)
                for alias in node.names:
                    sub = f'{base}.{alias.name}'
                    edges[m].add(sub if sub in modules else base)
    assert find_cycle(edges) in (['p.a', 'p.b', 'p.a'], ['p.b', 'p.a', 'p.b'])


def test_no_import_cycle():
    edges = import_edges(package_modules())
    cycle = find_cycle(edges)
    assert cycle is None, ('import cycle in the package: ' +
                           ' -> '.join(cycle))


def test_layers():
    """The weights layer sits above the models, and the test helpers are
    imported by nothing in the package."""
    edges = import_edges(package_modules())
    above = (f'{PACKAGE}.checkpoints', f'{PACKAGE}.testing', f'{PACKAGE}.apis')
    for module, targets in edges.items():
        if module.startswith(f'{PACKAGE}.models'):
            bad = [t for t in targets if t.startswith(above)]
            assert not bad, f'{module} imports {bad}'
        if not module.startswith(f'{PACKAGE}.testing'):
            bad = [t for t in targets if t.startswith(f'{PACKAGE}.testing')]
            assert not bad, f'{module} imports {bad}'
