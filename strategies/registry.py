"""Strategies by the name a config uses, each with its Python class and, where one exists, its kernel.

The CMM family (``cmm``, ``teacher``, ``single_student``, ``cmm_mean``,
``cmm_gating``, ``cmm_no_regime``, ``cmm_no_layer``) is one strategy on
different bundles: each takes ``[strategy.params] bundle``, the directory of
its model (``data/bundles/goog_sample/`` for ``cmm``, its ``<variant>/``
subdirectory for the others), and refuses another model's bundle.

A kernel runner takes the engine state, the strategy's Params and its wake
policy, and runs the whole backtest inside Numba.

A name with a colon is a user's own class (:func:`entry`): ``package.module:Class``
imported as Python imports it (the working directory first, as ``uvicorn`` and
``celery`` do), or ``path/to/file.py:Class``, a file relative to the config. The
backtest, the strategy process of ``--transport zmq`` and paper trading all
resolve a config's name here, so they run the same class.
"""
from __future__ import annotations

import difflib
import hashlib
import importlib
import importlib.util
import inspect
import os
import sys
import traceback
from typing import Callable, NamedTuple

import msgspec

from common.config import ConfigError, resolve

from strategies.avellaneda_stoikov import AvellanedaStoikov
from strategies.base import Strategy
from strategies.cmm import CMMStrategy
from strategies.cmm_variants import CMMGating, CMMMean, CMMNoLayer, CMMNoRegime, SingleStudent
from strategies.fixed_spread import FixedSpread
from strategies.teacher_strategy import TeacherStrategy


class Entry(NamedTuple):
    python: type[Strategy]
    kernel: Callable | None


def _fixed_spread_kernel(sim, p, wake, tick_size):
    from strategies.kernels.fixed_spread import fixed_spread
    return fixed_spread(sim, wake.every_ns, p.half_spread_ticks, p.qty, p.max_position)


def _avellaneda_stoikov_kernel(sim, p, wake, tick_size):
    from strategies.kernels.avellaneda_stoikov import avellaneda_stoikov
    return avellaneda_stoikov(sim, wake.every_ns, tick_size, p.gamma, p.kappa, p.horizon_s, p.sigma0,
                              p.sigma_window, p.qty, p.max_position)


STRATEGIES: dict[str, Entry] = {
    "fixed_spread": Entry(FixedSpread, _fixed_spread_kernel),
    "avellaneda_stoikov": Entry(AvellanedaStoikov, _avellaneda_stoikov_kernel),
    "cmm": Entry(CMMStrategy, None),
    "teacher": Entry(TeacherStrategy, None),
    "single_student": Entry(SingleStudent, None),
    "cmm_mean": Entry(CMMMean, None),
    "cmm_gating": Entry(CMMGating, None),
    "cmm_no_regime": Entry(CMMNoRegime, None),
    "cmm_no_layer": Entry(CMMNoLayer, None),
}


def label(name: str) -> str:
    """What a run of ``name`` is called in tables, plots and directory names: the registry name, or the class's."""
    return name.rpartition(":")[2]


def entry(name: str, config_path: str) -> Entry:
    """The strategy a config's ``[strategy] name`` names: a registry name, or a user's class (no kernel).

    Every way this fails (an unknown name, a module that does not import, no such class, a class that is not
    a :class:`Strategy`) is one :class:`ConfigError` line naming ``strategy.name``."""
    if ":" not in name:
        found = STRATEGIES.get(name)
        if found is None:
            raise ConfigError(f"unknown strategy {name!r}; expected one of {', '.join(STRATEGIES)}, or your own "
                              "class as 'package.module:Class' or 'path/to/file.py:Class'",
                              path=config_path, field="strategy.name")
        return found
    where, _, attr = name.rpartition(":")
    is_file = where.endswith(".py") or "/" in where or os.sep in where
    if not attr.isidentifier() or not is_file and not all(part.isidentifier() for part in where.split(".")):
        raise ConfigError(f"{name!r}: expected 'package.module:Class' or 'path/to/file.py:Class'",
                          path=config_path, field="strategy.name")
    module = _from_file(where, config_path) if is_file else _from_module(where, config_path)
    return Entry(_strategy_class(module, attr, name, config_path), None)


def _failed(what: str, e: BaseException, config_path: str) -> ConfigError:
    """An exception raised while importing the user's code, as one line with the place it was raised."""
    if isinstance(e, SyntaxError):
        where = f" ({e.filename}:{e.lineno})"
    else:
        frames = traceback.extract_tb(e.__traceback__)
        where = f" ({frames[-1].filename}:{frames[-1].lineno})" if frames else ""
    return ConfigError(f"importing {what} failed: {type(e).__name__}: {e}{where}".replace("\n", " "),
                       path=config_path, field="strategy.name")


def _from_module(module: str, config_path: str):
    cwd = os.getcwd()
    if cwd not in sys.path:            # ``cmm`` (a console script) does not put it there; ``python -m`` does
        sys.path.insert(0, cwd)
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as e:
        if e.name and (module == e.name or module.startswith(e.name + ".")):
            raise ConfigError(f"no module named {e.name!r} (looked in {cwd} and the installed packages)",
                              path=config_path, field="strategy.name") from None
        raise _failed(repr(module), e, config_path) from None
    except Exception as e:
        raise _failed(repr(module), e, config_path) from None


def _from_file(path: str, config_path: str):
    """A ``.py`` file (relative to the config) as a module of its own; the same file is loaded once."""
    path = resolve(config_path, path)
    if not os.path.isfile(path):
        raise ConfigError(f"no such file {path}", path=config_path, field="strategy.name")
    # A stable name per file, so pickling and msgspec's type cache see one module however often it is named.
    module_name = "cmm_user_" + hashlib.sha256(path.encode()).hexdigest()[:16]
    if module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as e:
        del sys.modules[module_name]
        raise _failed(path, e, config_path) from None
    return module


def _strategy_class(module, attr: str, name: str, config_path: str) -> type[Strategy]:
    found = getattr(module, attr, None)
    if found is None:
        classes = [k for k, v in vars(module).items() if inspect.isclass(v) and issubclass(v, Strategy)]
        close = difflib.get_close_matches(attr, classes, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else \
            f"; it has {', '.join(sorted(classes))}" if classes else "; it defines no Strategy class"
        raise ConfigError(f"{name!r}: the module has no {attr!r}{hint}", path=config_path, field="strategy.name")
    if not (inspect.isclass(found) and issubclass(found, Strategy)):
        what = f"the class {found.__qualname__}" if inspect.isclass(found) else f"a {type(found).__name__}"
        raise ConfigError(f"{name!r} is {what}, not a subclass of strategies.base.Strategy",
                          path=config_path, field="strategy.name")
    if not (inspect.isclass(found.Params) and issubclass(found.Params, msgspec.Struct)):
        raise ConfigError(f"{name!r}: its Params must be a msgspec.Struct (as strategies.base.NoParams is)",
                          path=config_path, field="strategy.name")
    return found
