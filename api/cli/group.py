"""The command line's group class: it runs a command and turns whatever goes wrong into
one line on standard error and an exit code, never a traceback: the command line's own
usage errors exit 2; any other error is answered from ``api.errors.ERRORS``, the table
the HTTP API answers from too.

Every group of the ``ledger`` command line uses it, so a group run on its own (a test
invoking ``projections_app``) fails the same way as through ``ledger``.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any, NoReturn

import typer
from typer.core import TyperGroup

from api.errors import EXIT_FAILED, EXIT_USAGE, exit_code_of, one_line


def fail(message: str, code: int) -> NoReturn:
    typer.echo(f"error: {' '.join(message.split())}", err=True)
    sys.exit(code)


class LedgerGroup(TyperGroup):
    """Runs the command and maps whatever goes wrong to one line."""

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        windows_expand_args: bool = True,
        **extra: Any,
    ) -> Any:
        run_args = {
            "args": args,
            "prog_name": prog_name,
            "complete_var": complete_var,
            "windows_expand_args": windows_expand_args,
            **extra,
        }
        if not standalone_mode:
            return super().main(standalone_mode=False, **run_args)
        try:
            rv = super().main(standalone_mode=False, **run_args)
        except typer.TyperException as e:  # Typer's (vendored) click errors, usage errors first
            if type(e).__name__ == "NoArgsIsHelpError":  # the help is the message (or shown)
                if e.format_message():
                    typer.echo(e.format_message(), err=True)
                sys.exit(EXIT_USAGE)
            usage_ctx = getattr(e, "ctx", None)
            hint = f" (see '{usage_ctx.command_path} --help')" if usage_ctx is not None else ""
            fail(e.format_message() + hint, e.exit_code)
        except typer.Abort:
            fail("aborted", EXIT_FAILED)
        except Exception as e:  # the error table's code and type (api.errors.ERRORS)
            fail(one_line(e), exit_code_of(e))
        sys.exit(rv if isinstance(rv, int) else 0)


def command_group(help_text: str) -> typer.Typer:
    """A command group of ``ledger`` (help when run without a command)."""
    return typer.Typer(
        cls=LedgerGroup,
        help=help_text,
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
    )
