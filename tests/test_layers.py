"""The package's layers, lowest first: a module imports only from its own layer or lower ones (lazy imports inside
functions included), and module-level imports form no cycle. docs/method.md's code layout lists the same layers."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "swapforward"

#: Lowest first. The package root (its __version__ and lazy exports) sits below everything it exports.
LAYERS = ["errors", "core", "prompts", "io", "options", "models", "runtime", "baselines", "evaluation", "pipelines",
          "lab", "frontends", "__main__"]


def imports(path: Path) -> list[tuple[str, bool]]:
    """(imported swapforward module, at module level) of every import in `path`."""
    module = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    package = module.removesuffix(".__init__") if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    tree = ast.parse(path.read_text())
    top = {id(node) for node in tree.body}
    typing_only = {id(n) for block in ast.walk(tree) if isinstance(block, ast.If)
                   and getattr(block.test, "id", "") == "TYPE_CHECKING" for n in ast.walk(block)}
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.ImportFrom) or id(node) in typing_only:  # annotations only: no import at run time
            continue
        if node.level:
            base = package.split(".")[: len(package.split(".")) - node.level + 1]
            target = ".".join(base + ([node.module] if node.module else []))
        else:
            target = node.module or ""
        if target.startswith("swapforward"):
            names = [target] if node.module else [f"{target}.{a.name}" for a in node.names]
            found += [(name, id(node) in top) for name in names]
    return found


def layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] not in ("__version__",) else "root"


def test_no_module_imports_from_a_higher_layer():
    order = {name: i for i, name in enumerate(LAYERS)}
    upward = []
    for path in PACKAGE.rglob("*.py"):
        source = layer(".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts))
        for target, _ in imports(path):
            if source == "root" or layer(target) == "root":
                continue
            if order[layer(target)] > order[source]:
                upward.append(f"{path.relative_to(PACKAGE.parent)} imports {target}")
    assert not upward, upward
    assert {p.stem if p.is_file() else p.name for p in PACKAGE.iterdir() if not p.name.startswith("_")
            and p.suffix in ("", ".py") and p.name != "__pycache__"} <= set(LAYERS), "every module has a layer"


def test_module_level_imports_form_no_cycle():
    graph = {}
    for path in PACKAGE.rglob("*.py"):
        module = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts).removesuffix(".__init__")
        graph[module] = {t for t, top in imports(path) if top}
    known = set(graph)

    def resolve(name):  # "from .x import y" may name a module or an attribute of x
        return name if name in known else name.rsplit(".", 1)[0] if name.rsplit(".", 1)[0] in known else None

    edges = {m: {r for t in targets if (r := resolve(t)) and r != m} for m, targets in graph.items()}
    state, cycle = {}, []

    def visit(m, stack):
        state[m] = "open"
        for n in edges[m]:
            if state.get(n) == "open":
                cycle.append(stack[stack.index(n):] + [n])
            elif n not in state:
                visit(n, [*stack, n])
        state[m] = "done"

    for m in edges:
        if m not in state:
            visit(m, [m])
    assert not cycle, cycle[0]
