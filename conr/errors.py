"""The exception types of conr.

Every problem with user input (a tensor handed to a network, a config value, a weight file) raises a
subclass of :class:`ConrError`, so callers and the CLI can catch one type and print one line.
"""
from __future__ import annotations

import os


class ConrError(Exception):
    """Base class of every error conr raises on purpose."""


class ConfigError(ConrError, ValueError):
    """A configuration names an unknown field or gives a field a bad value.

    Attributes:
        field: the field (or config name / file) at fault.
        value: the value received (repr'd in the message).
        reason: what is wrong.
    """

    def __init__(self, field: str, value: object, reason: str):
        self.field, self.value, self.reason = field, value, reason
        super().__init__(f"{field}={value!r}: {reason}")

    def __reduce__(self):          # rebuilt from the fields: DataLoader and DDP workers send it to the parent
        return type(self), (self.field, self.value, self.reason)


class InputError(ConrError, ValueError):
    """A tensor handed to a network has the wrong shape, dtype or values.

    Attributes:
        name: the argument, e.g. ``refs`` or ``target_udp``.
        value: what was received (a shape, a count, a dtype).
        reason: what was expected.
    """

    def __init__(self, name: str, value: object, reason: str):
        self.name, self.value, self.reason = name, value, reason
        super().__init__(f"{name}: got {value}: {reason}")

    def __reduce__(self):
        return type(self), (self.name, self.value, self.reason)


class WeightsError(ConrError):
    """A weight file is missing, corrupt, fails its hash, or does not fit the network.

    Attributes:
        path: the file (or the name that was looked up).
        reason: what is wrong, naming keys and shapes where there are some.
    """

    def __init__(self, path: str | os.PathLike, reason: str):
        self.path, self.reason = str(path), reason
        super().__init__(f"{self.path}: {reason}")

    def __reduce__(self):
        return type(self), (self.path, self.reason)
