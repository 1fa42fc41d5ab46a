"""Exception hierarchy.

Every error a user can cause is a :class:`PhonbenchError` whose message names the bad value and
the fix. The CLI prints ``str(error)`` on one line and exits non-zero.
"""

from __future__ import annotations


class PhonbenchError(Exception):
    """Root of all phonbench errors.

    Args:
        message: what is wrong, naming the offending value.
        fix: optional hint telling the user how to fix it; appended as ``"... (fix: ...)"``.
    """

    def __init__(self, message: str, fix: str | None = None):
        self.message = message
        self.fix = fix
        super().__init__(message if not fix else f"{message} — fix: {fix}")


class RegistryError(PhonbenchError):
    """Unknown, duplicate, invalid or broken registry entry."""


class DataError(PhonbenchError):
    """Missing, unreadable or inconsistent data (structures, targets, splits)."""


class ChecksumError(DataError):
    """A bundled or user file does not match its recorded sha256."""


class ConfigError(PhonbenchError):
    """Bad configuration: unknown parameter, wrong type, bad option value."""


class ModelError(PhonbenchError):
    """A model was used wrongly (predict before fit, unsupported task, bad checkpoint)."""


class TrackingError(PhonbenchError):
    """Records or the experiment tracker could not be written or read."""


class Interrupted(PhonbenchError):
    """A run, study or suite stopped by Ctrl-C (SIGINT) after keeping what was finished.

    The CLI prints the message as is (it says what was kept, where, and how to resume) and exits
    with status 130.
    """

    def __init__(self, message: str):
        super().__init__(message)

    def __str__(self) -> str:
        return self.message
