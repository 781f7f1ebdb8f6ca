"""One way to declare and check settings: a rule on each dataclass field, checked by one function.

    @dataclass(frozen=True)
    class SynthConfig:
        size: int = setting(256, kind=int, low=1, high=4096)
        legs: str = setting("ik", choices=("ik", "fk"))

        def __post_init__(self):
            check_settings(self)          # then any rule that ties two fields together

Every bad value raises :class:`udpgen.errors.SettingsError` as ``"SynthConfig.size = 0: expected an
integer in [1, 4096]"``: the class, the key, the value received and what was expected, so a config error
fails at start-up naming what to fix.
"""
from __future__ import annotations

import math
from dataclasses import MISSING, dataclass, field, fields

from udpgen.errors import SettingsError

__all__ = ["Rule", "setting", "check_settings", "fail"]


@dataclass(frozen=True)
class Rule:
    """kind: int, float (any finite number), bool, str, 'pair' (a (low, high) tuple of numbers, low <= high)
    or 'vector' (a tuple of ``size`` finite numbers). low / high: inclusive bounds of the value (of both
    ends of a pair), or exclusive with ``open_low`` / ``open_high``. choices: the allowed values.
    optional: None is allowed too. nonzero: a vector must not be all zeros."""
    kind: object = float
    low: float | None = None
    high: float | None = None
    open_low: bool = False
    open_high: bool = False
    choices: tuple | None = None
    optional: bool = False
    size: int = 3
    nonzero: bool = False

    def expected(self) -> str:
        if self.choices is not None:
            return "one of " + ", ".join(repr(c) for c in self.choices)
        what = {int: "an integer", float: "a number", bool: "true or false", str: "a string",
                "pair": "a (low, high) pair with low <= high", "vector": f"{self.size} numbers"}[self.kind]
        if self.low is not None and self.high is not None:
            what += f" in {'(' if self.open_low else '['}{self.low}, {self.high}{')' if self.open_high else ']'}"
        elif self.low is not None:
            what += f" {'>' if self.open_low else '>='} {self.low}"
        elif self.high is not None:
            what += f" {'<' if self.open_high else '<='} {self.high}"
        if self.nonzero:
            what += ", not all zero"
        return what + (", or None" if self.optional else "")

    def _number_ok(self, x) -> bool:
        if isinstance(x, bool) or not isinstance(x, (int, float)) or not math.isfinite(x):
            return False
        if self.low is not None and (x <= self.low if self.open_low else x < self.low):
            return False
        return not (self.high is not None and (x >= self.high if self.open_high else x > self.high))

    def ok(self, v) -> bool:
        if v is None:
            return self.optional
        if self.choices is not None:
            return v in self.choices
        if self.kind is bool:
            return isinstance(v, bool)
        if self.kind is str:
            return isinstance(v, str)
        if self.kind is int:
            return isinstance(v, int) and self._number_ok(v)
        if self.kind is float:
            return self._number_ok(v)
        if self.kind == "pair":
            return (isinstance(v, (tuple, list)) and len(v) == 2 and all(self._number_ok(x) for x in v)
                    and v[0] <= v[1])
        if self.kind == "vector":
            return (isinstance(v, (tuple, list)) and len(v) == self.size
                    and all(isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) for x in v)
                    and not (self.nonzero and not any(v)))
        raise TypeError(f"unknown setting kind {self.kind!r}")


def setting(default=MISSING, *, default_factory=MISSING, doc: str = "", **rule):
    """A dataclass field carrying its :class:`Rule` (keyword arguments as Rule's) and a one-line doc."""
    return field(default=default, default_factory=default_factory, metadata={"rule": Rule(**rule), "doc": doc})


def fail(obj, name: str, value, expected: str):
    """Raise the one settings error: ``Class.name = value: expected ...``."""
    raise SettingsError(f"{type(obj).__name__}.{name} = {value!r}: expected {expected}")


def check_settings(obj) -> None:
    """Check every field of ``obj`` that carries a rule; SettingsError naming the first bad one."""
    for f in fields(obj):
        rule = f.metadata.get("rule")
        if rule is not None and not rule.ok(getattr(obj, f.name)):
            fail(obj, f.name, getattr(obj, f.name), rule.expected())
