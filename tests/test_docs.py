"""Every fenced block in README.md and docs/ runs, so the documentation cannot drift from the code.

A page is one session, as a reader would type it: its blocks run in order in
one scratch directory (``configs``, ``data`` and ``examples`` link back into the repo,
``../shared/data`` to the public data), so a later block
may use what an earlier one wrote, and nothing lands in the repo. ``bash``
blocks run in ``bash -euo pipefail`` with ``cmm`` and ``python`` on the PATH
(this interpreter, this checkout first); ``python`` blocks run in a fresh
interpreter; ``toml`` blocks are parsed and checked against the config schema
(a block whose first line is ``# NAME.toml`` is written as that file, and a
whole config is loaded by the config loader); ``text`` blocks are output and
are not run. A block that mentions ``../shared/data`` needs the public tick
data: it runs in a session of its own, skipped with the reason when the data
is absent. ``$PORT`` is a free port (the feed's snapshots take ``$PORT + 1``).
"""
from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import NamedTuple

import msgspec
import pytest

from tests.conftest import REPO, SHARED_DATA, shared_path

PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
LANGUAGES = {"bash", "python", "toml", "text"}
LINKED = ("configs", "data", "examples")      # what the blocks read from the repo, by relative path
BLOCK_TIMEOUT_S = 120


class Block(NamedTuple):
    lang: str
    text: str
    where: str          # page:line, for the failure message


def blocks(page: Path) -> list[Block]:
    """The fenced blocks of a page, in order; an unclosed fence is an error."""
    found, lang, start, body = [], None, 0, []
    for n, line in enumerate(page.read_text().splitlines(), 1):
        if lang is None:
            if line.startswith("```"):
                lang, start, body = line[3:].strip(), n, []
        elif line.rstrip() == "```":
            found.append(Block(lang, "\n".join(body) + "\n", f"{page.relative_to(REPO)}:{start}"))
            lang = None
        else:
            body.append(line)
    assert lang is None, f"{page.relative_to(REPO)}:{start}: a fence is never closed"
    return found


def needs_shared(block: Block) -> bool:
    return "../shared/data" in block.text


def free_port_pair() -> int:
    """A port whose successor is free too (the feed's snapshot service binds PORT + 1)."""
    for _ in range(50):
        with socket.socket() as a:
            a.bind(("127.0.0.1", 0))
            port = a.getsockname()[1]
            if port >= 65535:
                continue
            with socket.socket() as b:
                try:
                    b.bind(("127.0.0.1", port + 1))
                except OSError:
                    continue
        return port
    raise RuntimeError("no two consecutive free ports")


def session(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A scratch directory that looks like the repo root to the blocks, and their environment."""
    cwd = tmp_path / "repo"
    cwd.mkdir()
    for name in LINKED:
        (cwd / name).symlink_to(REPO / name)
    (tmp_path / "shared").mkdir()
    (tmp_path / "shared" / "data").symlink_to(SHARED_DATA)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "cmm").write_text(f'#!/bin/sh\nexec "{sys.executable}" -m cmm "$@"\n')
    (bin_dir / "python").write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    for shim in ("cmm", "python"):
        (bin_dir / shim).chmod(0o755)
    env = dict(os.environ, PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}", PYTHONPATH=str(REPO),
               PORT=str(free_port_pair()), MPLBACKEND="Agg")
    env.pop("CMM_SHARED_DATA", None)      # the blocks find the data at ../shared/data, linked above
    return cwd, env


def run_command(argv: list[str], block: Block, cwd: Path, env: dict[str, str]) -> None:
    """Run one block in its own process group, and leave nothing of it behind (a feed it started included)."""
    proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True, text=True)
    try:
        out, _ = proc.communicate(timeout=BLOCK_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        pytest.fail(f"{block.where}: still running after {BLOCK_TIMEOUT_S} s\n{out[-4000:]}")
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    assert proc.returncode == 0, f"{block.where}: exit code {proc.returncode}\n{block.text}\n--- output\n{out[-4000:]}"


def _merge(base: dict, top: dict) -> dict:
    out = dict(base)
    for key, value in top.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def check_toml(block: Block, cwd: Path) -> None:
    """Parse a TOML block and check it against the schema it belongs to.

    A whole config (``[strategy]`` with ``[data]`` or ``[paper]``; ``[data]`` alone is a training config) is
    loaded by its loader from the file the block names, paths and all; a fragment is laid over the shipped
    example config of its kind and checked as that whole, so a misspelt key in the docs fails here.
    """
    from cmm_models import config as train_config
    from runtime import config as venue_config
    from runtime.backtest import strategy_entry

    try:
        table = tomllib.loads(block.text)
    except tomllib.TOMLDecodeError as e:
        pytest.fail(f"{block.where}: not valid TOML: {e}")
    first = block.text.splitlines()[0]
    name = re.fullmatch(r"#\s*(\S+\.toml)\s*", first)
    path = cwd / (name.group(1) if name else f"_block_{block.where.rpartition(':')[2]}.toml")
    path.write_text(block.text)
    training = "data" in table and "strategy" not in table
    whole = training or ("strategy" in table and ("data" in table or "paper" in table))
    if whole and training:
        train_config.load(str(path))
        return
    if whole:
        cfg = venue_config.load(str(path), venue_config.BacktestConfig if "data" in table else venue_config.PaperConfig)
        strategy_entry(cfg, str(path))
        return
    train_keys = set(train_config.TrainConfig.__struct_fields__) - {"data"}
    if set(table) & train_keys:
        base, type_ = REPO / "configs" / "cmm_tiny.toml", train_config.TrainConfig
    elif "paper" in table:
        base, type_ = REPO / "configs" / "paper_fixed_spread.toml", venue_config.PaperConfig
    else:
        base, type_ = REPO / "configs" / "backtest_fixed_spread.toml", venue_config.BacktestConfig
    merged = _merge(tomllib.loads(base.read_text()), table)
    try:
        cfg = msgspec.convert(merged, type_)
    except msgspec.ValidationError as e:
        pytest.fail(f"{block.where}: {e}")
    if type_ is not train_config.TrainConfig:
        strategy_entry(cfg, str(path))


def run_block(block: Block, cwd: Path, env: dict[str, str]) -> None:
    if block.lang == "bash":
        run_command(["bash", "-euo", "pipefail", "-c", block.text], block, cwd, env)
    elif block.lang == "python":
        script = cwd / f"_block_{block.where.rpartition(':')[2]}.py"
        script.write_text(block.text)
        run_command([sys.executable, script.name], block, cwd, env)
    elif block.lang == "toml":
        check_toml(block, cwd)


def page_id(page: Path) -> str:
    return str(page.relative_to(REPO))


@pytest.mark.parametrize("page", PAGES, ids=page_id)
def test_every_block_names_a_language(page):
    """An unlabelled block would be neither run nor checked: each says what it is."""
    for block in blocks(page):
        assert block.lang in LANGUAGES, f"{block.where}: fence language {block.lang!r}, expected one of {LANGUAGES}"


@pytest.mark.parametrize("page", PAGES, ids=page_id)
def test_page_runs(page, tmp_path):
    """The page's blocks, in order, in one session; the ones that need the public data run below."""
    cwd, env = session(tmp_path)
    for block in blocks(page):
        if block.lang in LANGUAGES and not needs_shared(block):
            run_block(block, cwd, env)


SHARED_BLOCKS = [b for page in PAGES for b in blocks(page) if needs_shared(b)]


@pytest.mark.shared_data
@pytest.mark.parametrize("block", SHARED_BLOCKS, ids=[b.where for b in SHARED_BLOCKS])
def test_shared_data_block_runs(block, tmp_path):
    """A block on the public tick data, in a session of its own (skipped, with the reason, without the data)."""
    shared_path()
    cwd, env = session(tmp_path)
    run_block(block, cwd, env)


LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


@pytest.mark.parametrize("page", PAGES, ids=page_id)
def test_relative_links_resolve(page):
    for target in LINK.findall(page.read_text()):
        if "://" not in target and not target.startswith("mailto:"):
            assert (page.parent / target).exists(), f"{page_id(page)}: the link {target} leads nowhere"


def test_readme_is_one_page():
    """The README introduces and points into docs/; the detail lives there."""
    size = len((REPO / "README.md").read_bytes())
    assert size < 10_000, f"README.md is {size:,} bytes; move detail into docs/"
    assert set(LINK.findall((REPO / "README.md").read_text())) >= {f"docs/{p.name}" for p in PAGES[1:]}
