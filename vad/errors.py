"""The one base of the errors vad reports to its user, and the exit code each one means.

Every module raises a subclass of VadError with a one-line message that says what is wrong,
where, and how to fix it; `vad` (pipeline/cli.py) maps them to `vad: error: ...` and the
class's exit code in one place. Anything else that escapes is a bug: exit 1, with the
traceback under -v.
"""
from __future__ import annotations

BAD_INPUT = 2  # the user's input (a file, an option, a table) is wrong: fix it and rerun
FAILED = 1  # the run failed (a disk, a worker, a batch item) or a bug


class VadError(Exception):
    """An error with a one-line message for the user; `exit_code` is what `vad` exits with."""

    exit_code = BAD_INPUT

    def __str__(self) -> str:  # KeyError subclasses would otherwise quote the message
        return str(self.args[0]) if self.args else type(self).__name__


class RunFailure(VadError):
    """The run failed at run time, or some items of a batch failed; what finished is kept."""

    exit_code = FAILED


class ConfigError(VadError):
    """A setting outside its choices or range (an option on the command line, a config field)."""
