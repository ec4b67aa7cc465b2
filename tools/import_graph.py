"""The import graph of the `scoretool` package: every `import` statement (module level or inside a
function) between its modules, the cycles in it, and the modules over the size limit.

    python tools/import_graph.py            # one line per module: what it imports; then cycles, sizes
    python tools/import_graph.py --check    # exit 1 if there is a cycle or an oversized module
"""

from __future__ import annotations

import argparse
import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "scoretool"
MAX_LINES = 400
# Modules that are data tables, allowed to be longer (the rule: "only if it is data, not code").
DATA_MODULES: set[str] = set()


def modules(root: Path = ROOT) -> dict[str, Path]:
    found = {}
    for path in sorted((root / PACKAGE).rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def _target(name: str, known: dict[str, Path]) -> str | None:
    """The scoretool module an imported dotted name refers to (its longest known prefix)."""
    while name:
        if name in known:
            return name
        name = name.rpartition(".")[0]
    return None


def imports_of(module: str, path: Path, known: dict[str, Path]) -> set[str]:
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    edges = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            names = [f"{base}.{alias.name}" for alias in node.names]
        else:
            continue
        for name in names:
            target = _target(name, known)
            if target and target != module:
                edges.add(target)
    return edges


def graph(root: Path = ROOT) -> dict[str, set[str]]:
    known = modules(root)
    return {m: imports_of(m, p, known) for m, p in known.items()}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, on_stack, stack, found = {}, {}, set(), [], []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    sys.setrecursionlimit(10_000)
    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def oversized(root: Path = ROOT) -> dict[str, int]:
    sizes = {m: len(p.read_text(encoding="utf-8").splitlines()) for m, p in modules(root).items()}
    return {m: n for m, n in sizes.items() if n > MAX_LINES and m not in DATA_MODULES}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only report problems; exit 1 if any")
    args = parser.parse_args(argv)
    edges = graph()
    if not args.check:
        for module, targets in sorted(edges.items()):
            print(f"{module:36} -> {', '.join(sorted(targets)) or '-'}")
    found, big = cycles(edges), oversized()
    for component in found:
        print("cycle: " + " <-> ".join(component))
    for module, lines in sorted(big.items()):
        print(f"over {MAX_LINES} lines: {module} ({lines})")
    print(f"{len(edges)} modules, {sum(map(len, edges.values()))} imports, {len(found)} cycle(s), {len(big)} oversized")
    return 1 if found or big else 0


if __name__ == "__main__":
    sys.exit(main())
