"""A model as a Numba type: the jitted engine specializes on the models it carries, compiled from one definition.

Every model (queue, latency or fee) is a small Python class whose methods are
plain functions over the engine's state, as a Rust trait's impl is. An
instance carries no data (parameters live in the ``Sim``'s arrays); its Numba
type carries the class. The ``Sim`` holds one instance per kind, so every
kernel that takes the ``Sim`` is compiled for its models: a method call is a
direct call that LLVM inlines, never a branch on a model code, and each
specialization is cached on disk like any other (the class is pickled by name).

A kind's interface module (``engine/models/queue/__init__.py`` and so on)
declares a :class:`UnitType` subclass, registers it with :func:`register_kind`,
and binds each method name once with ``overload_method``; a model is a subclass
of the kind's base class that defines those methods.
"""
from __future__ import annotations

import importlib

from numba.core import types
from numba.extending import NativeValue, models, register_model, typeof_impl, unbox


class UnitType(types.Type):
    """The Numba type of one model: the model's class, named by where it is defined.

    A cache index lists every model the engine was ever compiled for, and reading it unpickles
    all their types. So a type pickles as the class's module and name only, and finds the class
    when a compile asks for it: a model that is not importable here (one defined by a test, a
    notebook or another project) never stops a run that does not use it.
    """

    def __init__(self, cls=None, where: tuple[str, str] | None = None):
        self.where = where or (cls.__module__, cls.__qualname__)
        self._cls = cls
        super().__init__(name=f"{type(self).__name__}({self.where[0]}.{self.where[1]})")

    @property
    def cls(self) -> type:
        if self._cls is None:
            module, qualname = self.where
            found = importlib.import_module(module)
            for part in qualname.split("."):
                found = getattr(found, part)
            self._cls = found
        return self._cls

    def __reduce__(self):
        return type(self), (None, self.where)


class Unit:
    """Base of every model class; an instance is what the ``Sim`` holds."""

    numba_type: type[UnitType]


@typeof_impl.register(Unit)
def _typeof(val, c):
    return type(val).numba_type(type(val))


def register_kind(typ: type[UnitType]) -> None:
    """Let values of a kind's type be passed in from Python (they hold no data)."""
    register_model(typ)(models.OpaqueModel)

    @unbox(typ)
    def _unbox(t, obj, c):
        return NativeValue(c.context.get_constant_null(t))


def implementation(model: types.Type, kind: type[UnitType], name: str):
    """The model's function for method ``name`` (an interface binding's answer), or None for another kind."""
    if isinstance(model, kind):
        return getattr(model.cls, name)
    return None
