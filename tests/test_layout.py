"""The tree keeps the shape docs/ARCHITECTURE.md describes (read statically, nothing imported).

* no file of ``core/`` or ``dashboard/`` over 500 lines;
* no name with a leading underscore imported from another module of the project;
* no import circle between the modules of ``core/``;
* ``core`` never imports ``dashboard`` or streamlit; data flows
  io -> features -> cluster / learn -> runs (a lower layer never imports a higher one).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
MAX_LINES = 500
#: Layers of core's packages: a module may import its own layer or lower ones only.
LAYERS = {"io": 0, "features": 1, "cluster": 2, "learn": 2, "runs": 3, "synth": 1}


def _modules(top: str) -> dict[str, Path]:
    out = {}
    for path in sorted((ROOT / top).rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


CORE, DASH = _modules("core"), _modules("dashboard")


def _imports(path: Path, module: str) -> list[tuple[str, list[str]]]:
    """(imported module, names) of every import in ``path``, relative ones resolved."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    typing_only = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If)
                   and "TYPE_CHECKING" in ast.unparse(node.test) for n in ast.walk(node)}
    out = []
    for node in ast.walk(tree):
        if id(node) in typing_only:  # annotations only: never imported at run time
            continue
        if isinstance(node, ast.Import):
            out += [(a.name, []) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            out.append((base, [a.name for a in node.names]))
    return out


@pytest.mark.parametrize("module", sorted({**CORE, **DASH}))
def test_no_file_over_the_limit(module):
    path = {**CORE, **DASH}[module]
    n = len(path.read_text().splitlines())
    assert n <= MAX_LINES, f"{path.relative_to(ROOT)} has {n} lines (limit {MAX_LINES})"


def test_no_private_name_crosses_a_module():
    crossings = []
    for module, path in {**CORE, **DASH}.items():
        for target, names in _imports(path, module):
            if target.split(".")[0] not in ("core", "dashboard") or target == module:
                continue
            crossings += [f"{module} imports {target}.{n}" for n in names
                          if n.startswith("_") and not n.startswith("__")]
    assert not crossings, crossings


def test_core_has_no_import_circle():
    graph = {m: {t for t, _ in _imports(p, m) if t in CORE and t != m} for m, p in CORE.items()}
    # a package's __init__ re-exports its modules: an edge into a package counts as an
    # edge into its public face only, and the face's own edges are its modules'
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> None:
        state[m] = 1
        stack.append(m)
        for t in sorted(graph[m]):
            if t.startswith(m + "."):  # a package's face importing its own modules
                continue
            if state.get(t) == 1:
                cycle = stack[stack.index(t):] + [t]
                if not all(a.startswith(b + ".") or b.startswith(a + ".")
                           for a, b in zip(cycle, cycle[1:])):
                    pytest.fail("import circle: " + " -> ".join(cycle))
            elif t not in state:
                visit(t)
        stack.pop()
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m)


def test_data_flows_one_way():
    wrong = []
    for module, path in CORE.items():
        parts = module.split(".")
        for target, _ in _imports(path, module):
            top = target.split(".")[0]
            if top in ("dashboard", "streamlit"):
                wrong.append(f"{module} imports {target}")
            tparts = target.split(".")
            if (len(parts) > 2 and len(tparts) > 1 and top == "core" and parts[1] in LAYERS
                    and tparts[1] in LAYERS and LAYERS[tparts[1]] > LAYERS[parts[1]]):
                wrong.append(f"{module} ({parts[1]}) imports {target} ({tparts[1]})")
    assert not wrong, wrong
