"""The package's shape: imports run downhill, no circle, argparse and print only in the command layer,
one home per constant (deliberate copies pinned to it), and modules small enough to read.

The checker walks the AST of every module (module-level and function-local imports alike), so a
circle hidden behind an import inside a function is still a circle.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "cer_hf"

# Floors from the bottom up: a module may import from its own floor or any floor below, never above.
FLOORS = (
    ("cer_hf.taxonomy", "cer_hf.image_io", "cer_hf.presets", "cer_hf.arguments", "cer_hf.pretraining",
     "cer_hf.safe_weights"),
    ("cer_hf.modeling",),
    ("cer_hf.data",),
    ("cer_hf.hub",),
    ("cer_hf.inference",),
    ("cer_hf.evaluation",),
    ("cer_hf.curriculum",),
    ("cer_hf.extensions",),
    ("cer_hf.commands",),
    ("cer_hf.cli", "cer_hf.__main__", "cer_hf"),
)
COMMAND_LAYER = ("cer_hf.commands", "cer_hf.cli", "cer_hf.__main__")
MAX_LINES = 600


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def package_modules(package: Path) -> dict[str, Path]:
    """Every module of the package by dotted name (the evaluate metric scripts are not package modules)."""
    modules = {}
    for path in sorted(package.rglob("*.py")):
        if "metrics" in path.parts and path.parent.name != "metrics":
            continue  # compound_f1/compound_f1.py etc.: evaluate modules loaded by path, self-contained
        modules[module_name(path, package.parent)] = path
    return modules


def imported_modules(path: Path, name: str, known: set[str]) -> list[tuple[str, int, bool]]:
    """(imported package module, line, inside a function?) for every import of `path` that names a known module."""
    tree = ast.parse(path.read_text())
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []

    def visit(node, in_function: bool):
        for child in ast.iter_child_nodes(node):
            local = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            targets = []
            if isinstance(child, ast.Import):
                targets = [alias.name for alias in child.names]
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    anchor = package.split(".")[: len(package.split(".")) - (child.level - 1)]
                    base = ".".join(anchor + ([base] if base else []))
                # `from pkg import sub` names the submodule; `from mod import name` names the module
                targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base for alias in child.names]
            for target in targets:
                # the longest known module that the target names (a package or a module of it)
                while target and target not in known:
                    target = target.rpartition(".")[0]
                if target and target != name:
                    found.append((target, child.lineno, in_function))
            visit(child, local)

    visit(tree, False)
    return found


def import_graph(package: Path) -> tuple[dict[str, set[str]], list[str]]:
    """Arrows module → imported module, and the function-local imports of package modules."""
    modules = package_modules(package)
    known = set(modules)
    graph, local = {name: set() for name in modules}, []
    for name, path in modules.items():
        for target, line, in_function in imported_modules(path, name, known):
            if name in ("cer_hf.modeling.modeling_cer",) and target == "cer_hf.modeling.configuration_cer":
                pass  # the remote-code pair: a relative import with a flat fallback, at module level
            graph[name].add(target)
            if in_function:
                local.append(f"{modules[name].relative_to(package.parent)}:{line} imports {target} inside a function")
    return graph, local


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), i.e. the import circles.

    A package's `__init__` importing its own submodules is not a circle: Python runs the
    `__init__` first, and a submodule naming its package only reaches its siblings.
    """
    def arrows(node):
        return {t for t in graph.get(node, ()) if not node.startswith(t + ".")}

    index, low, stack, on_stack, result, counter = {}, {}, [], set(), [], [0]

    def strongconnect(node):
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for target in arrows(node):
            if target not in index:
                strongconnect(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                result.append(sorted(component))

    sys.setrecursionlimit(10_000)
    for node in graph:
        if node not in index:
            strongconnect(node)
    return result


def floor_of(name: str) -> int:
    best, floor = -1, None
    for number, prefixes in enumerate(FLOORS):
        for prefix in prefixes:
            if (name == prefix or name.startswith(prefix + ".")) and len(prefix) > best:
                best, floor = len(prefix), number
    assert floor is not None, f"{name} is on no floor: add it to FLOORS"
    return floor


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    return [f"{source} (floor {floor_of(source)}) imports {target} (floor {floor_of(target)})"
            for source, targets in graph.items() for target in targets
            if floor_of(target) > floor_of(source) and not source.startswith(target + ".")]


# ----------------------------------------------------------------------------- the package


def test_every_module_imports():
    for name in package_modules(PACKAGE):
        if name != "cer_hf.__main__":
            importlib.import_module(name)


def test_no_import_circle_and_no_upward_import():
    graph, local = import_graph(PACKAGE)
    assert circles(graph) == []
    assert upward_imports(graph) == []
    assert local == [], "function-local imports of package modules hide the structure:\n" + "\n".join(local)


def test_argparse_and_print_only_in_the_command_layer():
    offenders = []
    for name, path in package_modules(PACKAGE).items():
        if name.startswith(COMMAND_LAYER):
            continue
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [a.name for a in node.names] + [getattr(node, "module", None) or ""]
                if "argparse" in names:
                    offenders.append(f"{name}:{node.lineno} imports argparse")
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "print":
                offenders.append(f"{name}:{node.lineno} prints")
    assert offenders == []


def test_modules_stay_readable():
    long = []
    for name, path in package_modules(PACKAGE).items():
        lines = len(path.read_text().splitlines())
        docstring = ast.get_docstring(ast.parse(path.read_text())) or ""
        if lines > MAX_LINES and "long because" not in docstring:
            long.append(f"{name}: {lines} lines")
    assert long == []


def test_constants_have_one_home():
    homes = {
        "IMAGE_EXTENSIONS": "cer_hf.image_io", "FACE_MEAN": "cer_hf.image_io", "FACE_STD": "cer_hf.image_io",
        "IMAGENET_MEAN": "cer_hf.image_io", "IMAGENET_STD": "cer_hf.image_io", "AU_NAMES": "cer_hf.taxonomy",
        "MISSING_VA": "cer_hf.taxonomy", "MISSING_AU": "cer_hf.taxonomy", "MISSING_VALUE": "cer_hf.taxonomy",
        "AFFWILD2_EXPR_LABELS": "cer_hf.taxonomy", "EXPRESSION_NAMES": "cer_hf.taxonomy",
    }
    copies = []
    for name, path in package_modules(PACKAGE).items():
        for node in ast.parse(path.read_text()).body:
            targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
            for target in targets:
                if isinstance(target, ast.Name) and target.id in homes and homes[target.id] != name:
                    copies.append(f"{name} defines {target.id} (home: {homes[target.id]})")
    assert copies == []


def _load_script(path: Path):
    spec = importlib.util.spec_from_file_location(path.stem + "_pinned", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_deliberate_copies_match_their_home():
    """The remote-code config and the evaluate modules stay self-contained; their tables equal taxonomy's."""
    from cer_hf.modeling import configuration_cer
    from cer_hf.taxonomy import AFFWILD2_EXPR_LABELS, EMOTION_BASICS, MISSING_EXPR, MISSING_VA, compound_set

    abaw7 = [(c.name, list(c.constituents)) for c in compound_set("abaw7")]
    assert configuration_cer.SIX_BASICS == list(EMOTION_BASICS)
    assert [(name, list(parts)) for name, parts in configuration_cer.ABAW7_COMPOUNDS] == abaw7
    metrics = PACKAGE / "evaluation" / "metrics"
    compound_f1 = _load_script(metrics / "compound_f1" / "compound_f1.py")
    assert compound_f1.BASIC_LABELS == list(EMOTION_BASICS)
    assert [(name, list(parts)) for name, parts in compound_f1.ABAW7_COMPOUNDS] == abaw7
    abaw = _load_script(metrics / "abaw_multitask" / "abaw_multitask.py")
    assert (abaw.MISSING_VA, abaw.MISSING_CLASS) == (MISSING_VA, MISSING_EXPR)
    assert len(AFFWILD2_EXPR_LABELS) == 8


def test_checkpoint_saved_before_the_restructuring_still_loads():
    """State-dict keys did not change with the class renames: an old checkpoint gives the same scores."""
    from cer_hf import ViTForCompoundExpression

    folder = ROOT / "tests" / "data" / "checkpoint_v0_1"
    expected = json.loads((folder / "expected.json").read_text())
    model = ViTForCompoundExpression.from_pretrained(folder).eval()
    assert sorted(model.state_dict()) == expected["keys"]
    pixels = torch.rand(*expected["shape"], generator=torch.Generator().manual_seed(expected["seed"]))
    with torch.no_grad():
        scores = model(pixel_values=pixels).compound_scores
    assert torch.allclose(scores, torch.tensor(expected["compound_scores"]), atol=1e-6)


# ----------------------------------------------------------------------------- the checker itself


def _write_package(root: Path, files: dict[str, str]) -> Path:
    for relative, text in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root / "cer_hf"


def test_checker_finds_a_planted_circle_behind_a_local_import(tmp_path):
    package = _write_package(tmp_path, {
        "cer_hf/__init__.py": "",
        "cer_hf/taxonomy.py": "X = 1\n",
        "cer_hf/inference/__init__.py": "",
        "cer_hf/inference/predictor.py": "from cer_hf.inference.video import run\n",
        "cer_hf/inference/video.py": "def run():\n    from cer_hf.inference import predictor\n",
    })
    graph, local = import_graph(package)
    assert circles(graph) == [["cer_hf.inference.predictor", "cer_hf.inference.video"]]
    assert len(local) == 1 and "video.py:2" in local[0]


def test_checker_finds_an_upward_import(tmp_path):
    package = _write_package(tmp_path, {
        "cer_hf/__init__.py": "",
        "cer_hf/taxonomy.py": "from cer_hf.curriculum.build import thing\n",
        "cer_hf/curriculum/__init__.py": "",
        "cer_hf/curriculum/build.py": "thing = 1\n",
    })
    graph, _ = import_graph(package)
    assert circles(graph) == []
    assert upward_imports(graph) == ["cer_hf.taxonomy (floor 0) imports cer_hf.curriculum.build (floor 6)"]


@pytest.mark.parametrize("planted", [False, True])
def test_checker_counts_arrows(tmp_path, planted):
    files = {"cer_hf/__init__.py": "", "cer_hf/taxonomy.py": "", "cer_hf/image_io.py": "from cer_hf import taxonomy\n"}
    if planted:
        files["cer_hf/taxonomy.py"] = "import cer_hf.image_io\n"
    graph, _ = import_graph(_write_package(tmp_path, files))
    assert sum(map(len, graph.values())) == (2 if planted else 1)
    assert bool(circles(graph)) == planted
