"""The command line's own errors (the SDK's are embedspace.EmbedspaceError): `main` prints
each as one line, `embedspace: Kind: message`, and exits 1, or 2 for a usage error."""

from __future__ import annotations


class UsageError(Exception):
    """Arguments that do not go together (exit status 2)."""


class MissingExtra(RuntimeError):
    """An optional dependency is not installed; the message names the extra to install."""


class FileFormatError(ValueError):
    """A file that cannot be read at all (as opposed to a bad row in it)."""


class CannotResume(Exception):
    """--resume refused: no state, or a state that does not match this run."""
