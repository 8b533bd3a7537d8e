"""One error table for both edges: every error class it names gives its status and problem
type over HTTP and its exit code and one-line message in the command line.

The expected values are written here from DESIGN §5, docs/api.md and docs/cli.md, not read
from the table: a wrong row fails.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import typer
from fastapi import FastAPI
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from api import errors as e
from api.cli import app as cli_app
from api.cli.group import LedgerGroup, command_group
from ledger.audit.checkpoint import CheckpointError
from ledger.audit.merkle import ProofError
from ledger.audit.note import NoteError
from ledger.audit.verify import VerificationError
from ledger.audit.witness import WitnessError
from ledger.domain import errors as d
from ledger.privacy import KeyFileError
from projections.errors import ProjectionError, RebuildFailed, RebuildSuperseded, UnknownProjection

# class -> (HTTP status, problem type, exit code)
EXPECTED: dict[type[Exception], tuple[int, str, int]] = {
    d.InvalidInput: (422, "invalid-input", 1),
    d.NotFound: (404, "not-found", 1),
    d.Forbidden: (403, "forbidden", 1),
    d.RuleViolated: (409, "rule-violated", 1),
    d.FigureLimitReached: (409, "figure-limit-reached", 1),
    d.Conflict: (409, "conflict", 1),
    d.LedgerError: (400, "ledger-error", 1),
    e.ApiProblem: (400, "bad-request", 1),
    e.BadRequest: (400, "bad-request", 1),
    e.IdempotencyKeyMissing: (400, "idempotency-key-missing", 1),
    e.IdempotencyKeyInvalid: (400, "idempotency-key-invalid", 1),
    e.Unauthorized: (401, "unauthorized", 1),
    e.RoleNotAllowed: (403, "role-not-allowed", 1),
    e.FundNotAllowed: (403, "fund-not-allowed", 1),
    e.RouteNotFound: (404, "route-not-found", 1),
    e.MethodNotAllowed: (405, "method-not-allowed", 1),
    e.BodyTooLarge: (413, "body-too-large", 1),
    e.ValidationFailed: (422, "validation-error", 1),
    e.InvalidCursor: (422, "invalid-cursor", 1),
    e.NoCheckpoint: (404, "no-checkpoint", 1),
    e.TreeSizeOutOfRange: (422, "tree-size-out-of-range", 1),
    e.ReceiptNotFound: (404, "receipt-not-found", 1),
    e.InternalError: (500, "internal-error", 1),
    e.Unavailable: (503, "unavailable", 1),
    e.Busy: (503, "busy", 1),
    e.TooManyExports: (503, "too-many-exports", 1),
    e.ExportTooLarge: (422, "export-too-large", 1),
    e.RateLimited: (429, "rate-limited", 1),
    KeyFileError: (500, "key-file", 1),
    UnknownProjection: (404, "unknown-projection", 2),
    ProjectionError: (500, "projection-failed", 1),
    RebuildFailed: (500, "rebuild-failed", 1),
    RebuildSuperseded: (409, "rebuild-superseded", 1),
    # What does not verify (``ledger audit``): exit 3.
    VerificationError: (422, "not-verified", 3),
    CheckpointError: (422, "checkpoint-invalid", 3),
    NoteError: (422, "note-invalid", 3),
    ProofError: (422, "proof-invalid", 3),
    WitnessError: (409, "witness-refused", 3),
    Exception: (500, "internal-error", 1),
}

# Leaves answer as their family does, with their own type.
LEAVES: dict[type[Exception], tuple[int, str, int]] = {
    d.TooManyDecimals: (422, "too-many-decimals", 1),
    d.DateInFuture: (422, "date-in-future", 1),
    d.FundNotFound: (404, "fund-not-found", 1),
    d.TrancheNotFound: (404, "tranche-not-found", 1),
    d.SelfApproval: (403, "self-approval", 1),
    d.InsufficientFunds: (409, "insufficient-funds", 1),
    d.AlreadyReversed: (409, "already-reversed", 1),
    d.IdempotencyKeyReused: (409, "idempotency-key-reused", 1),
    RuntimeError: (500, "internal-error", 1),
    KeyError: (500, "internal-error", 1),
}
CASES = {**EXPECTED, **LEAVES}
SECRET = "secret internals"


def an_error(cls: type[Exception]) -> Exception:
    if cls is ProjectionError:
        return ProjectionError("journal", 7, RuntimeError(SECRET))
    if cls is Exception:
        return RuntimeError(SECRET)
    if cls is VerificationError:
        return VerificationError(7, "leaf_hash", "the event is not the one recorded")
    if cls in (CheckpointError, ProofError):
        return cls("signature" if cls is CheckpointError else "root_mismatch", "it fails")
    if cls is WitnessError:
        return WitnessError(422, "another root for size 7")
    if issubclass(cls, (d.LedgerError, e.ApiProblem)):
        return cls("what happened")
    return cls(SECRET)


def test_the_table_names_exactly_the_expected_classes() -> None:
    assert set(e.ERRORS) == set(EXPECTED)


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    api = FastAPI()
    e.install_handlers(api)

    @api.get("/raise/{name}")
    def raise_it(name: str) -> Any:
        raise an_error(next(cls for cls in CASES if cls.__qualname__ == name))

    with TestClient(api, raise_server_exceptions=False) as client:
        yield client


@pytest.mark.parametrize("cls", list(CASES), ids=lambda c: c.__qualname__)
def test_each_error_gives_its_status_and_type_over_http(
    client: TestClient, cls: type[Exception]
) -> None:
    status, slug, _ = CASES[cls]
    response = client.get(f"/raise/{cls.__qualname__}")
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert (body["type"], body["status"]) == (slug, status)
    assert body["title"]
    assert isinstance(body["detail"], str)
    if status >= 500:  # a server error says nothing of what went wrong
        assert SECRET not in response.text
    if cls is e.Unauthorized:
        assert response.headers["www-authenticate"] == "Bearer"


def _cli_raising(error: Exception) -> typer.Typer:
    app = command_group("A command line that fails.")

    @app.command()
    def fail() -> None:
        raise error

    @app.command()
    def other() -> None:  # (two commands: the group does not collapse into one)
        pass

    return app


@pytest.mark.parametrize("cls", list(CASES), ids=lambda c: c.__qualname__)
def test_each_error_gives_its_exit_code_and_one_line_in_the_cli(cls: type[Exception]) -> None:
    _, slug, exit_code = CASES[cls]
    result = CliRunner().invoke(_cli_raising(an_error(cls)), ["fail"])
    assert result.exit_code == exit_code, (result.stdout, result.stderr)
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    assert lines[0].endswith(f"[{slug}]")
    assert "Traceback" not in result.output


def test_a_note_added_on_the_way_comes_first_in_the_line() -> None:
    error = RebuildFailed("the page writer stopped")
    error.add_note("the rebuild failed, the read models are as before")
    result = CliRunner().invoke(_cli_raising(error), ["fail"])
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        "error: the rebuild failed, the read models are as before: the page writer stopped "
        "[rebuild-failed]"
    ]


def test_every_group_of_the_ledger_command_line_answers_from_the_table() -> None:
    root = typer.main.get_command(cli_app)
    assert isinstance(root, LedgerGroup)
    assert isinstance(root, typer.core.TyperGroup)
    groups = [c for c in root.commands.values() if isinstance(c, typer.core.TyperGroup)]
    names = {g.name for g in groups}
    assert names >= {"fund", "donation", "grant", "expense", "token", "projections"}
    assert all(isinstance(g, LedgerGroup) for g in groups)
