"""One way to declare and check settings: a rule on each dataclass field, checked by one function.

    @dataclass(frozen=True)
    class SynthConfig:
        size: int = setting(256, kind=int, low=1, high=4096)
        legs: str = setting("ik", choices=("ik", "fk"))

        def __post_init__(self):
            check_settings(self)          # then any rule that ties two fields together

Every bad value raises :class:`udpgen.errors.SettingsError` as ``"SynthConfig.size = 0: expected an
integer in [1, 4096]"``: the class, the key, the value received and what was expected, so a config error
fails at start-up naming what to fix. Another package keeps its own error type and key names by passing
``section`` and ``error`` (conr: ``ConfigError("train.lr", value, "expected a number >= 0")``), and values
read from text files are normalised with ``coerce`` (a list for a tuple, ``"1e-4"`` for a float: PyYAML
reads ``1e-4`` as a string).
"""
from __future__ import annotations

import math
from dataclasses import MISSING, dataclass, field, fields

from udpgen.errors import SettingsError

__all__ = ["Rule", "setting", "check_settings", "fail"]


@dataclass(frozen=True)
class Rule:
    """kind: int, float (any finite number), bool, str, 'pair' (a (low, high) tuple of numbers, low <= high),
    'vector' (a tuple of ``size`` finite numbers) or 'ints' (a tuple of ``size`` integers). low / high:
    inclusive bounds of the value (of both ends of a pair, of every element of a vector or 'ints'), or exclusive with
    ``open_low`` / ``open_high``. choices: the allowed values. optional: None is allowed too. nonzero: a
    vector must not be all zeros."""
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
                "pair": "a (low, high) pair with low <= high", "vector": f"{self.size} numbers",
                "ints": f"{self.size} integers"}[self.kind]
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
            return (isinstance(v, (tuple, list)) and len(v) == self.size and all(self._number_ok(x) for x in v)
                    and not (self.nonzero and not any(v)))
        if self.kind == "ints":
            return (isinstance(v, tuple) and len(v) == self.size
                    and all(isinstance(x, int) and self._number_ok(x) for x in v))
        raise TypeError(f"unknown setting kind {self.kind!r}")

    def coerce(self, v):
        """``v`` as read from a text file -> the field's own type where that is unambiguous: a list for a
        tuple kind, an int or a numeric string for a float (and a pair's or vector's elements), true/false,
        yes/no, on/off for a bool. Anything else is returned as
        it is, for :meth:`ok` to judge."""
        if isinstance(v, list) and self.kind in ("pair", "vector", "ints"):
            v = tuple(v)
        if self.kind is float:
            return _as_float(v)
        if self.kind is bool and isinstance(v, str):
            return _BOOL_WORDS.get(v.strip().lower(), v)
        if self.kind in ("pair", "vector") and isinstance(v, tuple):
            return tuple(_as_float(x) for x in v)
        return v


_BOOL_WORDS = {"true": True, "yes": True, "on": True, "false": False, "no": False, "off": False}


def _as_float(v):
    if isinstance(v, str):
        try:
            return float(v)
        except ValueError:
            return v
    return float(v) if isinstance(v, int) and not isinstance(v, bool) else v


def setting(default=MISSING, *, default_factory=MISSING, doc: str = "", **rule):
    """A dataclass field carrying its :class:`Rule` (keyword arguments as Rule's) and a one-line doc."""
    return field(default=default, default_factory=default_factory, metadata={"rule": Rule(**rule), "doc": doc})


def fail(obj, name: str, value, expected: str, *, section: str | None = None, error=None):
    """Raise the one settings error: ``Class.name = value: expected ...``. section: the key's prefix instead
    of the class name ('train' -> 'train.lr'; '' -> the bare name); error: builds the exception as
    ``error(key, value, "expected ...")`` instead of SettingsError."""
    key = f"{type(obj).__name__ if section is None else section}.{name}".lstrip(".")
    if error is not None:
        raise error(key, value, f"expected {expected}")
    raise SettingsError(f"{key} = {value!r}: expected {expected}")


def check_settings(obj, *, section: str | None = None, error=None, coerce: bool = False) -> None:
    """Check every field of ``obj`` that carries a rule; raise (as :func:`fail`) naming the first bad one.
    coerce: first normalise each value with :meth:`Rule.coerce`, written back into ``obj`` (frozen or not)."""
    for f in fields(obj):
        rule = f.metadata.get("rule")
        if rule is None:
            continue
        value = getattr(obj, f.name)
        if coerce:
            value = rule.coerce(value)
            object.__setattr__(obj, f.name, value)
        if not rule.ok(value):
            fail(obj, f.name, value, rule.expected(), section=section, error=error)
