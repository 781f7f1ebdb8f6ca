"""Every exception type of the project pickles and unpickles intact: workers (synth, hand-drawn, DataLoader)
send them to the parent, and one that cannot be rebuilt there kills multiprocessing's result thread."""
from __future__ import annotations

import importlib
import inspect
import pickle
import pkgutil

import pytest

import udpgen
from udpgen.errors import UdpgenError


def _all_modules(pkg):
    for info in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + "."):
        if ".cli" in info.name or info.name.endswith("__main__"):
            continue
        try:
            importlib.import_module(info.name)
        except ImportError:         # an optional extra that is not installed
            pass


def _subclasses(base):
    seen, todo = [], [base]
    while todo:
        c = todo.pop()
        for s in c.__subclasses__():
            if s not in seen:
                seen.append(s)
                todo.append(s)
    return [base] + seen


def _error_types():
    _all_modules(udpgen)
    types = _subclasses(UdpgenError)
    try:
        import conr
        from conr.errors import ConrError
        _all_modules(conr)
        types += _subclasses(ConrError)
        from conr.data import _Skip
        types.append(_Skip)
    except ImportError:
        pass
    return [t for t in types if t.__module__.split(".")[0] in ("udpgen", "conr")]


def _example_args(cls):
    values = {"path": "models/a.pmx", "offset": 123, "field": "bones[3].parent", "reason": "index 99 out of range",
              "value": (1, 2), "name": "refs", "detail": "unreadable png"}
    params = [p for p in inspect.signature(cls.__init__).parameters.values()
              if p.name != "self" and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
              and p.default is p.empty]
    return [values.get(p.name, f"<{p.name}>") for p in params] or ["something went wrong"]


TYPES = _error_types()


def test_the_walk_finds_the_project_types():
    names = {t.__name__ for t in TYPES}
    assert {"UdpgenError", "FormatError", "ModelError", "SettingsError", "EmptyRenderError"} <= names


@pytest.mark.parametrize("cls", TYPES, ids=lambda c: f"{c.__module__}.{c.__name__}")
def test_pickles_intact(cls):
    e = cls(*_example_args(cls))
    back = pickle.loads(pickle.dumps(e))
    assert type(back) is cls
    assert str(back) == str(e)
    assert vars(back) == vars(e)
