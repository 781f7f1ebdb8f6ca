"""The project's exception types.

Every problem with user input (a file, a config value, a command-line argument) raises a subclass of
:class:`UdpgenError`, so callers (and the CLI) can catch one type and print one line.
"""
from __future__ import annotations

import os


class UdpgenError(Exception):
    """Base class of every error udpgen raises on purpose."""


class InputWarning(UserWarning):
    """Odd but usable input (a tolerated oddity, trailing bytes, dropped physics): the message names the file
    and says what was done. The command line prints each as one ``warning:`` line."""


class FormatError(UdpgenError):
    """A file is not what its format says it should be.

    Attributes:
        path: the file (str), or '<bytes>' when parsing an in-memory buffer.
        offset: byte offset where the bad field starts (int), or None for text formats / whole-file problems.
        field: dotted name of the field being read, e.g. ``vertices[12].weights`` or ``header.magic``;
            '' for problems with the file as a whole (missing, a directory).
        reason: what is wrong, including the value received where there is one.
    """

    def __init__(self, path: str | os.PathLike | None, offset: int | None, field: str, reason: str):
        self.path = str(path) if path is not None else "<bytes>"
        self.offset = offset
        self.field = field
        self.reason = reason
        where = f"{field} at byte {offset}: " if offset is not None else f"{field}: " if field else ""
        super().__init__(f"{self.path}: {where}{reason}")

    def __reduce__(self):
        # Exception pickles as cls(*self.args) with args = (message,): rebuild from the fields instead, or
        # a worker's error cannot be unpickled in the parent (multiprocessing's result thread dies on it).
        return type(self), (self.path, self.offset, self.field, self.reason)


class ModelError(UdpgenError):
    """A model is readable but cannot be used for what was asked (e.g. missing standard bones)."""


class SettingsError(UdpgenError, ValueError):
    """A settings dataclass got a bad value; the message names the field and the value."""
