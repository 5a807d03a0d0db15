"""The package's architecture, checked from its source (issue #14, DESIGN §6–§8): the imports of
`jaxfeat/` form a DAG (function-local imports count), the scan engine's parts sit below `cli` and
`plotting`, no module is shadowed by a function of its own name, and functions stay short."""

import ast
import importlib
import pathlib
import pkgutil
import re
import warnings

import pytest

import jaxfeat

ROOT = pathlib.Path(jaxfeat.__file__).parent
MAX_LINES = 40  # DESIGN §6: the anchors' 90th percentile; longer needs a comment saying why


def _modules() -> dict[str, pathlib.Path]:
    mods = {}
    for p in ROOT.rglob("*.py"):
        parts = ("jaxfeat",) + p.relative_to(ROOT).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        mods[".".join(parts)] = p
    return mods


def import_graph() -> dict[str, set[str]]:
    """{module: the jaxfeat modules it imports}, from every import statement in its source,
    module-level or inside functions. `from . import x` names module `x` when `x` is one, else
    the package it comes from (a package's `__init__` is only an edge when named)."""
    mods, edges = _modules(), {}
    for name, path in mods.items():
        package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        edges[name] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - node.level + 1]
                    target = ".".join(base + ([node.module] if node.module else []))
                else:
                    target = node.module or ""
                subs = {f"{target}.{a.name}" for a in node.names} & set(mods)
                found = subs or ({target} & set(mods))
            elif isinstance(node, ast.Import):
                found = {a.name for a in node.names} & set(mods)
            else:
                continue
            edges[name] |= found - {name}
    return edges


def _cycle(edges) -> list[str] | None:
    """One import cycle, as a path of module names, or None."""
    state, stack = {}, []

    def visit(v):
        state[v] = "open"
        stack.append(v)
        for w in sorted(edges.get(v, ())):
            if state.get(w) == "open":
                return stack[stack.index(w) :] + [w]
            if w not in state and (found := visit(w)):
                return found
        state[v] = "done"
        stack.pop()
        return None

    for v in sorted(edges):
        if v not in state and (found := visit(v)):
            return found
    return None


def _reachable(edges, start) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        for w in edges.get(todo.pop(), ()):
            if w not in seen:
                seen.add(w)
                todo.append(w)
    return seen


def test_imports_form_a_dag():
    edges = import_graph()
    assert "jaxfeat._scan.store" in edges and "jaxfeat.experiments._experiment" in edges
    assert (cycle := _cycle(edges)) is None, " → ".join(cycle)


def test_the_cycle_check_finds_a_cycle():
    """The check itself can fail: a graph with a back edge through a function-local import."""
    edges = import_graph()
    edges["jaxfeat._scan.store"] = edges["jaxfeat._scan.store"] | {"jaxfeat.cli"}
    assert _cycle(edges) is not None
    # cli imports plotting only inside functions: the graph must still hold that edge
    assert "jaxfeat.plotting" in edges["jaxfeat.cli"]


def test_scan_engine_sits_below_cli_and_plotting():
    """The engine's parts never reach the presentation layer, and the numerical core never
    reaches the engine or the experiments: each layer imports only the layers below it."""
    edges = import_graph()
    engine = [m for m in edges if m.startswith("jaxfeat._scan")]
    assert {"jaxfeat._scan.plan", "jaxfeat._scan.program", "jaxfeat._scan.loop"} <= set(engine)
    for m in engine:
        assert not {"jaxfeat.cli", "jaxfeat.plotting"} & _reachable(edges, m), m
    core = ["jaxfeat.population", "jaxfeat.spectrum", "jaxfeat.training", "jaxfeat.data"]
    for m in core:
        above = {x for x in _reachable(edges, m) if x.startswith(("jaxfeat._scan", "jaxfeat.exp"))}
        assert not above and "jaxfeat.plotting" not in _reachable(edges, m), m
    assert not _reachable(edges, "jaxfeat.plotting") & set(engine)


def test_no_module_is_shadowed_by_a_function():
    """`import jaxfeat.a.b as m` must give the module b, whatever `jaxfeat.a` re-exports."""
    for info in pkgutil.walk_packages(jaxfeat.__path__, "jaxfeat."):
        if info.name == "jaxfeat.experiment":  # the deprecated alias module warns on import
            continue
        parent, _, leaf = info.name.rpartition(".")
        attr = getattr(importlib.import_module(parent), leaf, None)
        module = importlib.import_module(info.name)
        assert attr is None or attr is module, f"{info.name} is shadowed by {attr!r}"


def test_the_old_experiment_module_warns_and_still_works():
    import sys

    sys.modules.pop("jaxfeat.experiment", None)
    with pytest.warns(DeprecationWarning, match="jaxfeat.experiments"):
        old = importlib.import_module("jaxfeat.experiment")
    assert old.Experiment is jaxfeat.Experiment


def _long_functions() -> list[str]:
    """Functions over MAX_LINES lines (docstring excluded) without a comment saying why on the
    line(s) just above their `def` (a comment that starts with `# long:`)."""
    found = []
    for path in sorted(ROOT.rglob("*.py")):
        lines = path.read_text().splitlines()
        for node in ast.walk(ast.parse("\n".join(lines))):
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            n = node.end_lineno - node.lineno + 1
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(
                getattr(first, "value", None), ast.Constant
            ):
                n -= first.end_lineno - first.lineno + 1
            top = min([node.lineno] + [d.lineno for d in node.decorator_list]) - 1
            said = top > 0 and lines[top - 1].strip().startswith("# long:")
            if n > MAX_LINES and not said:
                found.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({n} lines)")
    return found


def test_functions_are_short_or_say_why():
    assert not (long := _long_functions()), "\n".join(long)


def test_deprecated_scan_key_still_works():
    from scan_helpers.toy import toy

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        new = jaxfeat.scan(toy, {"scale": [1.0]}, 2, seed=3, progress=False)
    with pytest.warns(DeprecationWarning, match="seed="):
        old = jaxfeat.scan(toy, {"scale": [1.0]}, 2, key=3, progress=False)
    for v in new.data_vars:
        assert (new[v].values == old[v].values).all() or v == "diverged"
    with pytest.raises(TypeError, match="bogus"):
        jaxfeat.scan(toy, {"scale": [1.0]}, 2, bogus=1, progress=False)


def test_the_public_face_is_all_of_jaxfeat():
    """`jaxfeat.__all__` lists every public name the package exports, and nothing it lacks."""
    import types

    import jaxfeat

    public = {
        n
        for n, v in vars(jaxfeat).items()
        if not n.startswith("_")
        and not (isinstance(v, types.ModuleType) and n not in jaxfeat.__all__)
    }
    assert set(jaxfeat.__all__) - {"__version__"} == public
    assert all(hasattr(jaxfeat, n) for n in jaxfeat.__all__)


def test_every_committed_figure_is_shown_in_the_docs():
    """docs/figures holds the quick presets' figures (`make figures`); each is shown on a page,
    and each page's figure exists (mkdocs --strict checks the links only at build time)."""
    docs = ROOT.parent / "docs"
    figures = {p.name for p in (docs / "figures").glob("*.png")}
    pages = "\n".join(p.read_text() for p in docs.rglob("*.md"))
    shown = set(re.findall(r"figures/([\w-]+\.png)\)", pages))
    assert figures == shown
    makefile = (ROOT.parent / "Makefile").read_text()
    made = re.search(r"^FIGURES := (.*)$", makefile, re.M)
    assert made and {f"{e}-quick.png" for e in made.group(1).split()} == figures
