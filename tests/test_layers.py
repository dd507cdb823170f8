"""The project's layers, checked on every module's imports (read with ``ast``, nothing is imported).

Dependencies point one way: cmm -> study -> runtime -> {strategies, analysis} -> bundle -> engine -> feeds ->
common.
The engine's memory layout is its own: outside ``engine/`` (and the engine's own tests) code reads and
drives a run through ``engine.views``, with ``engine.codes`` for the codes' names; market data never
pulls in torch, the strategy link or the command line's helpers; trading never imports training code.
"""
from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
RANK = {"common": 0, "feeds": 1, "engine": 2, "bundle": 3, "strategies": 4, "analysis": 4, "runtime": 5, "study": 6,
        "cmm": 7}
TRAINING_MAY_IMPORT = {"cmm_models", "bundle", "feeds", "common"}
# Outside the layers: the training command, the study (which trains, then trades), benchmarks and tests may run
# training code.
MAY_IMPORT_TRAINING = {"cmm_models", "cmm", "study", "bench", "tests"}
ENGINE_API = {"engine.views", "engine.codes"}
ENGINE_OWN_TESTS = re.compile(r"tests/(test_engine_\w+|engine_\w+|test_live)\.py$")
INDEX_CONSTANT = re.compile(r"(I|F|O|Q|RQ|RS|RSF|FL|FLF|OL|OLF|TQ|L)_[A-Z0-9_]+$")
FEEDS_MUST_NOT = ("torch", "runtime.link", "common.progress", "common.atomic")


def modules() -> list[Path]:
    skip = {".venv", "build", "data", ".git"}
    return sorted(p for p in REPO.rglob("*.py") if not skip & set(p.relative_to(REPO).parts))


def imports(path: Path, root: Path) -> list[tuple[int, str, list[str]]]:
    """Every import statement in ``path`` (functions' too) as (line, absolute module, names imported)."""
    package = list(path.relative_to(root).parent.parts)
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name, []) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package[:len(package) - node.level + 1] if node.level else []
            out.append((node.lineno, ".".join(base + ([node.module] if node.module else [])),
                        [a.name for a in node.names]))
    return out


def within(module: str, prefixes) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def violations(path: Path, root: Path = REPO) -> list[str]:
    """One line per rule an import statement breaks (``path`` a module of the tree at ``root``)."""
    rel = path.relative_to(root).as_posix()
    top = rel.split("/")[0] if "/" in rel else ""
    engine_own = top == "engine" or bool(ENGINE_OWN_TESTS.search(rel))
    found = []
    for line, module, names in imports(path, root):
        # ``from engine import state`` imports the module engine.state: a name may be a module.
        targets = [module] + [f"{module}.{n}" for n in names]
        roots = {t.split(".")[0] for t in targets}
        why = []
        if "engine" in roots and not engine_own:
            if any(within(t, ["engine.state"]) for t in targets):
                why.append("the engine's layout is its own (use engine.views)")
            elif module != "engine" and not within(module, ENGINE_API) or module == "engine" and any(
                    not within(t, ENGINE_API) for t in targets[1:]):
                why.append("outside engine/, use engine.views")
            consts = [n for n in names if INDEX_CONSTANT.match(n)]
            if consts:
                why.append(f"index constants {consts}")
        if top == "feeds" and any(within(t, FEEDS_MUST_NOT) for t in targets):
            why.append("feeds/ is market data only")
        if "cmm_models" in roots and top not in MAY_IMPORT_TRAINING:
            why.append("trading never imports training code")
        if top == "cmm_models" and roots & set(RANK) - TRAINING_MAY_IMPORT:
            why.append("training imports bundle, feeds and common only")
        if top in RANK:
            higher = sorted(r for r in roots if r in RANK and r != top and RANK[r] >= RANK[top])
            why += [f"{top} is below {r}" for r in higher]
        found += [f"{rel}:{line} imports {module}: {w}" for w in why]
    return found


def test_every_module_keeps_to_its_layer():
    found = [v for p in modules() for v in violations(p)]
    assert found == [], "\n".join(found)


LAYOUT = "the engine's layout is its own (use engine.views)"


@pytest.mark.parametrize("rel, source, expected", [
    ("runtime/x.py", "from engine.state import I_CUR", [LAYOUT, "index constants ['I_CUR']"]),
    ("runtime/x.py", "from engine import state", [LAYOUT]),
    ("analysis/x.py", "import engine.state", [LAYOUT]),
    ("strategies/x.py", "from engine.kernel import submit", ["outside engine/, use engine.views"]),
    ("strategies/x.py", "from engine import kernel", ["outside engine/, use engine.views"]),
    ("bench/x.py", "from engine.views import FL_ID", ["index constants ['FL_ID']"]),
    ("tests/test_x.py", "from engine.views import RQ_TS, SimView", ["index constants ['RQ_TS']"]),
    ("feeds/x.py", "import torch.nn", ["feeds/ is market data only"]),
    ("feeds/readers/x.py", "from ..events import EVENT_DTYPE", []),
    ("feeds/readers/x.py", "from common.progress import bar", ["feeds/ is market data only"]),
    ("feeds/readers/x.py", "from common import atomic", ["feeds/ is market data only"]),
    ("feeds/x.py", "from runtime.link.protocol import Venue", ["feeds/ is market data only", "feeds is below runtime"]),
    ("runtime/x.py", "from cmm_models import export", ["trading never imports training code"]),
    ("cmm_models/x.py", "from engine.views import make_sim", ["training imports bundle, feeds and common only"]),
    ("engine/x.py", "from bundle.features import FeatureSchema", ["engine is below bundle"]),
    ("strategies/x.py", "from analysis.metrics import summarize", ["strategies is below analysis"]),
    ("analysis/x.py", "def f():\n    from runtime.session import run", ["analysis is below runtime"]),
    ("engine/x.py", "from engine.state import I_CUR", []),
    ("tests/test_engine_orders.py", "from engine.state import I_CUR", []),
    ("runtime/x.py", "from engine.views import SimView, submit", []),
    ("runtime/x.py", "from engine import codes, views", []),
    ("cmm/train.py", "from cmm_models import pipeline", []),
    ("study/run.py", "from cmm_models import pipeline", []),
    ("runtime/x.py", "from study import run", ["runtime is below study"]),
])
def test_a_module_breaking_a_rule_is_named(tmp_path, rel, source, expected):
    path = tmp_path / rel
    path.parent.mkdir(parents=True)
    path.write_text(source + "\n")
    found = violations(path, tmp_path)
    assert all(f.startswith(f"{rel}:") for f in found)
    assert [f.split(": ", 1)[1] for f in found] == expected
