"""The command line's error boundary: every way a command can end, mapped to one line and an exit code.

:func:`guarded_main` runs the Typer app in non-standalone mode and turns what comes out of it into
an exit status, printing at most one line (two for a usage error: the problem, then where help is):

=====================================  ======  ==========================================
outcome                                status  what is printed (stderr)
=====================================  ======  ==========================================
success                                0       nothing extra
``--help`` / bare group (help shown)   0       the help text (stdout)
usage error (missing/unknown option,   2       ``error: <problem>`` + ``see: phonbench CMD --help``
bad value, typer *or* click classes)
:class:`~phonbench.exceptions.Interrupted`  130  its message (what was kept, how to resume)
``KeyboardInterrupt`` / ``Abort``      130     ``interrupted: nothing was written``
:class:`PhonbenchError`                1       ``error: <message> — fix: <fix>``
any other exception                    1       ``error: unexpected <Type>: <first line>``
                                               ``— rerun with --debug for the traceback``
=====================================  ======  ==========================================

Typer ≥ 0.26 vendors click as ``typer._click`` with its own exception classes, and older
versions raise ``click``'s, so exceptions are classified by their class *names* along the MRO
(``UsageError``, ``ClickException``, ``Exit``, ``Abort``), which both families share.
"""

from __future__ import annotations

import sys
from typing import Any, Callable

from phonbench.exceptions import Interrupted, PhonbenchError

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


def _names(exc: BaseException) -> set[str]:
    return {cls.__name__ for cls in type(exc).__mro__}


def _first_line(text: str) -> str:
    lines = [ln.strip() for ln in str(text).splitlines() if ln.strip()]
    return lines[0] if lines else ""


def _command_path(exc: Any) -> str:
    ctx = getattr(exc, "ctx", None)
    return getattr(ctx, "command_path", None) or "phonbench"


def _usage(exc: Any, echo: Callable[[str], None]) -> int:
    """One-line report of a click/typer usage error (help output when the error *is* the help)."""
    if "NoArgsIsHelpError" in _names(exc):
        ctx = getattr(exc, "ctx", None)
        print(ctx.get_help() if ctx is not None else exc.format_message())
        return EXIT_OK
    echo(f"error: {_first_line(exc.format_message())}")
    echo(f"see: {_command_path(exc)} --help")
    return int(getattr(exc, "exit_code", EXIT_USAGE) or EXIT_USAGE)


def classify(exc: BaseException, echo: Callable[[str], None]) -> int:
    """Print the report of ``exc`` through ``echo`` and return the exit status it maps to."""
    names = _names(exc)
    if isinstance(exc, Interrupted):
        echo(str(exc))
        return EXIT_INTERRUPTED
    if isinstance(exc, PhonbenchError):
        echo(f"error: {_first_line(str(exc))}")
        return EXIT_ERROR
    if isinstance(exc, KeyboardInterrupt) or "Abort" in names:
        echo("interrupted: nothing was written")
        return EXIT_INTERRUPTED
    if "Exit" in names and hasattr(exc, "exit_code"):
        code = int(exc.exit_code or 0)
        if code == EXIT_INTERRUPTED:
            echo("interrupted: nothing was written")
        return code
    if "ClickException" in names and hasattr(exc, "format_message"):
        if "UsageError" in names:
            return _usage(exc, echo)
        echo(f"error: {_first_line(exc.format_message())}")
        return int(getattr(exc, "exit_code", EXIT_ERROR) or EXIT_ERROR)
    if isinstance(exc, SystemExit):
        return exc.code if isinstance(exc.code, int) else (EXIT_OK if exc.code is None else EXIT_ERROR)
    detail = _first_line(str(exc))
    echo(f"error: unexpected {type(exc).__name__}{': ' + detail if detail else ''} "
         "— rerun with --debug for the traceback")
    return EXIT_ERROR


def guarded_main(app: Callable[..., Any], args: list[str], *, debug: bool) -> int:
    """Run ``app(args=..., standalone_mode=False)`` and return the process exit status.

    With ``debug`` every error except usage errors and interrupts is re-raised (full traceback).
    """

    def echo(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    try:
        result = app(args=args, standalone_mode=False)
    except BaseException as exc:  # noqa: BLE001 - this is the boundary
        usage = "UsageError" in _names(exc) or "Exit" in _names(exc)
        interrupt = isinstance(exc, (KeyboardInterrupt, Interrupted)) or "Abort" in _names(exc)
        if debug and not (usage or interrupt or isinstance(exc, SystemExit)):
            raise
        return classify(exc, echo)
    if isinstance(result, int) and not isinstance(result, bool):
        if result == EXIT_INTERRUPTED:
            echo("interrupted: nothing was written")
        return result
    return EXIT_OK
