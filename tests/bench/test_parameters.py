"""No function of scarce.bench takes more than six parameters: what travels together is one object (the stages,
the execution, a finding's identity), not a row of loose arguments."""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import pkgutil

import scarce.bench

MOST = 6


def _functions():
    for info in pkgutil.walk_packages(scarce.bench.__path__, "scarce.bench."):  # the stage package's modules too
        module = importlib.import_module(info.name)
        for obj in vars(module).values():
            if getattr(obj, "__module__", None) != module.__name__:
                continue
            if inspect.isfunction(obj):
                yield obj
            elif inspect.isclass(obj):  # a dataclass's generated __init__ lists its fields: data, not parameters
                yield from (f for name, f in vars(obj).items() if inspect.isfunction(f)
                            and not (name == "__init__" and dataclasses.is_dataclass(obj)))


def test_no_function_of_bench_takes_more_than_six_parameters():
    functions = list(_functions())
    assert len(functions) > 50
    wide = {f"{f.__module__}.{f.__qualname__}": n for f in functions
            if (n := len([p for p in inspect.signature(f).parameters if p not in ("self", "cls")])) > MOST}
    assert not wide
