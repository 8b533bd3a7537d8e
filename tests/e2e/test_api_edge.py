"""The HTTP edge under a careless or hostile client: edge dates, formula cells in CSV,
rate limits, security headers, private files, signed cursors, reads limited by fund,
duplicate JSON keys, amounts in problems, key faults, an exhausted reads' pool."""

from __future__ import annotations

import base64
import csv
import io
import os
import secrets
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_api_support import FUND, OTHER_FUND, World, donation_body, problem, serve

from api.cursors import CURSOR_KEY_FILE
from api.middleware import RateLimits
from ledger.privacy import DonorVault
from projections.exports.csv_files import csv_cell

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture
def world(sqlite_url: str, tmp_path: Path, clock: Any) -> Iterator[World]:
    with serve(sqlite_url, tmp_path, clock.now) as w:
        w.open_fund()
        yield w


def csv_rows(response: Any) -> list[list[str]]:
    assert response.status_code == 200, response.text
    return list(csv.reader(io.StringIO(response.content.decode("utf-8-sig"))))


# -- item 4: edge dates -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "query",
    [
        "report?from=0001-01-01&to=9999-12-31",
        "report?from=0001-01-01",
        "balance?known_at=0001-01-01T00:00:00%2B14:00",
        "balance?known_at=9999-12-31T23:59:59-12:00",
        "balance?as_of=0001-01-01",
        "exports/journal.csv?from=0001-01-01",
        "exports/ledger.beancount?to=9999-12-31",
    ],
)
def test_edge_dates_on_public_reads_are_refused_with_422(world: World, query: str) -> None:
    world.donate("10.00")
    body = problem(world.client.get(f"/api/funds/{FUND}/{query}"), 422, "validation-error")
    assert body["field"] in ("from", "to", "known_at", "as_of")


def test_dates_inside_the_query_window_still_answer(world: World) -> None:
    world.donate("10.00")
    ok = world.get(f"/api/funds/{FUND}/report", **{"from": "1900-01-01", "to": "2999-12-31"})
    assert ok.status_code == 200, ok.text
    late = world.get(f"/api/funds/{FUND}/balance", known_at="2999-12-31T23:59:59-12:00")
    assert late.status_code == 422  # 3000-01-01 in UTC: outside the window
    inside = world.get(f"/api/funds/{FUND}/balance", known_at="2999-12-31T00:00:00Z")
    assert inside.status_code == 200


# -- item 9: CSV formula injection -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("cell", "written"),
    [
        ('=HYPERLINK("http://x","y")', '\'=HYPERLINK("http://x","y")'),
        ("+1+1", "'+1+1"),
        ("-1+1", "'-1+1"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\tx", "'\tx"),
        ("\rx", "'\rx"),
        ("-5.00", "-5.00"),
        ("+3", "+3"),
        ("张三", "张三"),
        ("a=b", "a=b"),
        (12, 12),
    ],
)
def test_a_cell_a_spreadsheet_would_run_is_quoted_and_numbers_stay_numbers(
    cell: Any, written: Any
) -> None:
    assert csv_cell(cell) == written


def test_every_csv_export_quotes_formula_cells_and_keeps_negative_amounts_summable(
    world: World,
) -> None:
    gift = world.donate("100.00", donor={"public_name": '=HYPERLINK("http://evil","点我")'})
    world.create(f"/api/donations/{gift['id']}/refunds", {"amount": "30.00", "reason": "@退款"})
    world.create(
        f"/api/funds/{FUND}/expenses",
        {
            "amount": "5.00",
            "category": "administration",
            "paid_on": "2026-11-21",
            "payee": "+打印店",
            "description": "-cmd|' /C calc'!A0",
        },
    )
    donations = csv_rows(world.get(f"/api/funds/{FUND}/exports/donations.csv"))
    assert donations[1][donations[0].index("donor")] == '\'=HYPERLINK("http://evil","点我")'
    audited = csv_rows(world.get(f"/api/funds/{FUND}/exports/donations.csv", "auditor"))
    assert audited[1][audited[0].index("donor")].startswith("'=")
    expenses = csv_rows(world.get(f"/api/funds/{FUND}/exports/expenses.csv"))
    assert expenses[1][expenses[0].index("payee")] == "'+打印店"
    assert expenses[1][expenses[0].index("description")] == "'-cmd|' /C calc'!A0"
    journal = csv_rows(world.get(f"/api/funds/{FUND}/exports/journal.csv"))
    changes = [row[journal[0].index("figure_change")] for row in journal[1:]]
    assert "-30.00" in changes or "30.00" in changes
    assert all(not c.startswith("'") for c in changes)  # amounts stay numbers
    assert all(not cell.startswith(("=", "+", "@")) for row in journal for cell in row)


# -- item 10: rate limits, headers, private files, no CDN docs --------------------------------


def test_requests_over_the_address_limit_get_429_with_retry_after(
    sqlite_url: str, tmp_path: Path, clock: Any
) -> None:
    limits = RateLimits(per_address="5/minute", per_token="1000/minute")
    with serve(sqlite_url, tmp_path, clock.now, rate_limits=limits) as w:
        statuses = [w.get("/api/funds").status_code for _ in range(5)]
        assert statuses == [200] * 5
        refused = w.get("/api/funds")
        body = problem(refused, 429, "rate-limited")
        assert int(refused.headers["retry-after"]) >= 1
        assert body["retry_after_s"] >= 1
        assert refused.headers["x-content-type-options"] == "nosniff"


def test_requests_over_the_token_limit_get_429(sqlite_url: str, tmp_path: Path, clock: Any) -> None:
    limits = RateLimits(per_address="1000/minute", per_token="3/minute")
    with serve(sqlite_url, tmp_path, clock.now, rate_limits=limits) as w:
        assert [w.get("/api/funds", "auditor").status_code for _ in range(3)] == [200] * 3
        problem(w.get("/api/funds", "auditor"), 429, "rate-limited")
        assert w.get("/api/funds", "treasurer").status_code == 200  # another token


def test_bad_tokens_are_throttled_without_a_lookup_per_token(
    sqlite_url: str, tmp_path: Path, clock: Any
) -> None:
    """With the limits the server runs with (api.limits)."""
    with serve(sqlite_url, tmp_path, clock.now, rate_limits=RateLimits()) as world:
        lookups: list[str] = []
        real = world.services.tokens.authenticate

        def counting(secret: str) -> Any:
            lookups.append(secret)
            return real(secret)

        world.services.tokens.authenticate = counting  # type: ignore[method-assign]
        statuses = []
        for _ in range(10):
            bad = {"Authorization": "Bearer " + secrets.token_urlsafe(32)}
            statuses.append(world.client.get("/api/funds", headers=bad).status_code)
        assert statuses == [401] * 10
        for _ in range(20):
            bad = {"Authorization": "Bearer " + secrets.token_urlsafe(32)}
            refused = world.client.get("/api/funds", headers=bad)
            problem(refused, 429, "rate-limited")
        assert len(lookups) == 10  # no lookup beyond the limit
        assert int(refused.headers["retry-after"]) >= 1
        assert world.get("/api/funds").status_code == 200  # without a token: still served


def test_every_response_carries_the_security_headers(world: World) -> None:
    for response in (
        world.get("/api/funds"),
        world.get("/api/nothing-here"),
        world.get(f"/api/funds/{FUND}/exports/donations.csv"),
        world.post(f"/api/funds/{FUND}/donations", donation_body(), key=None),
    ):
        assert response.headers["x-content-type-options"] == "nosniff"
        assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
        assert response.headers["referrer-policy"] == "no-referrer"
        assert "server" not in response.headers


def test_authenticated_answers_and_auditor_views_are_not_stored(world: World) -> None:
    world.donate("10.00")
    audited = world.get(f"/api/funds/{FUND}/donations", "auditor")
    assert audited.json()["items"][0]["donor_details"]["name"] == "张三"
    assert audited.headers["cache-control"] == "no-store"
    exported = world.get(f"/api/funds/{FUND}/exports/donations.csv", "auditor")
    assert exported.headers["cache-control"] == "no-store"
    assert world.get("/api/funds", "treasurer").headers["cache-control"] == "no-store"
    assert "no-store" not in world.get("/api/funds").headers.get("cache-control", "")


def test_no_docs_page_loads_assets_from_a_cdn_and_the_schema_stays(world: World) -> None:
    assert world.get("/api/docs").status_code == 404
    assert "cdn" not in world.get("/api/docs").text.lower()
    assert world.get("/openapi.json").json()["info"]["title"]


def test_the_database_and_the_cursor_key_are_private_files(
    world: World, sqlite_path: Path, tmp_path: Path
) -> None:
    world.donate("10.00")
    for path in (sqlite_path, Path(f"{sqlite_path}-wal"), tmp_path / "keys" / CURSOR_KEY_FILE):
        assert path.exists(), path
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600, path


# -- item 11: signed cursors -----------------------------------------------------------------------


def _edited(cursor: str) -> str:
    body, _, tag = cursor.partition(".")
    raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)).replace(b"2026", b"2027")
    return base64.urlsafe_b64encode(raw).decode().rstrip("=") + "." + tag


def test_only_cursors_this_api_gave_out_for_that_list_and_fund_are_taken(world: World) -> None:
    world.open_fund(slug=OTHER_FUND, name="河边小学基金")
    for _ in range(3):
        world.donate("10.00")
        world.donate("10.00", fund=OTHER_FUND)
        world.create(
            f"/api/funds/{FUND}/grants",
            {"title": "灶具", "grantee": {"name": "老年协会"}, "amount": "1.00"},
        )
    donations = world.get(f"/api/funds/{FUND}/donations", limit=1).json()["next_cursor"]
    grants = world.get(f"/api/funds/{FUND}/grants", limit=1).json()["next_cursor"]
    funds = world.get("/api/funds", limit=1).json()["next_cursor"]
    assert world.get(f"/api/funds/{FUND}/donations", limit=1, cursor=donations).status_code == 200
    sql = base64.urlsafe_b64encode(
        b'["c1","2026-11-02","x\' OR 1=1; DROP TABLE rm_donations; --"]'
    ).decode()
    cases = {
        "edited": (f"/api/funds/{FUND}/donations", _edited(donations)),
        "tag removed": (f"/api/funds/{FUND}/donations", donations.partition(".")[0]),
        "sql": (f"/api/funds/{FUND}/donations", sql),
        "another list": (f"/api/funds/{FUND}/grants", donations),
        "another fund": (f"/api/funds/{OTHER_FUND}/donations", donations),
        "grants on donations": (f"/api/funds/{FUND}/donations", grants),
        "funds on grants": (f"/api/funds/{FUND}/grants", funds),
    }
    for name, (path, cursor) in cases.items():
        body = problem(world.get(path, limit=1, cursor=cursor), 422, "invalid-cursor")
        assert body["field"] == "cursor", name


# -- item 12: reads limited by fund ---------------------------------------------------------------


def test_a_treasurer_of_another_fund_reads_the_public_view(world: World) -> None:
    world.open_fund(slug=OTHER_FUND, name="河边小学基金")
    world.donate("10.00", note="内部备注", external_ref="BANK-0042")
    world.token("河边出纳", "treasurer", funds=(OTHER_FUND,))
    world.token("茶乡出纳", "treasurer", funds=(FUND,))
    foreign = world.get(f"/api/funds/{FUND}/donations", "河边出纳").json()["items"][0]
    assert not {"note", "external_ref", "recorded_by"} & set(foreign)
    assert foreign == world.get(f"/api/funds/{FUND}/donations").json()["items"][0]
    own = world.get(f"/api/funds/{FUND}/donations", "茶乡出纳").json()["items"][0]
    assert own["note"] == "内部备注"
    assert own["external_ref"] == "BANK-0042"
    everywhere = world.get(f"/api/funds/{FUND}/donations", "treasurer").json()["items"][0]
    assert everywhere["recorded_by"]


# -- item 13: smaller ones --------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["journal", "donations", "grants"])
def test_an_export_that_ends_before_it_starts_is_refused_like_the_report(
    world: World, kind: str
) -> None:
    query = "from=2026-11-02&to=2026-11-01"
    csv_path = f"/api/funds/{FUND}/exports/{kind}.csv?{query}"
    problem(world.client.get(csv_path), 422, "invalid-field")
    problem(world.client.get(f"/api/funds/{FUND}/report?{query}"), 422, "invalid-field")


def test_the_reports_unrestricted_entry_has_a_code_and_a_name(world: World) -> None:
    world.donate("10.00")
    purposes = world.get(f"/api/funds/{FUND}/report").json()["purposes"]
    unrestricted = [p for p in purposes if not p["restricted"]]
    assert [(p["code"], p["name"]) for p in unrestricted] == [("unrestricted", "非限定性")]
    assert all(p["code"] and p["name"] for p in purposes)


def test_problems_give_amounts_as_decimal_strings_only(world: World) -> None:
    world.donate("10.00")
    response = world.post(
        f"/api/funds/{FUND}/expenses",
        {
            "amount": "25.50",
            "category": "program",
            "paid_on": "2026-11-21",
            "payee": "店",
            "description": "x",
        },
        key="over",
    )
    body = problem(response, 409, "insufficient-funds")
    assert (body["available"], body["amount"]) == ("10.00", "25.50")
    assert not [k for k in body if k.endswith("_minor")]


def test_a_one_character_name_keeps_its_character_and_a_star(world: World) -> None:
    world.donate("10.00", donor={"name": "刘"})
    assert world.get(f"/api/funds/{FUND}/donations").json()["items"][0]["donor"] == "刘*"


def test_a_body_with_a_duplicate_key_is_refused(world: World) -> None:
    raw = (
        b'{"amount": "1.00", "amount": "1000000.00", "received_on": "2026-11-02",'
        b' "channel": "cash"}'
    )
    headers = {
        **world.auth("treasurer"),
        "Idempotency-Key": "dup",
        "Content-Type": "application/json",
    }
    response = world.client.post(f"/api/funds/{FUND}/donations", content=raw, headers=headers)
    body = problem(response, 422, "validation-error")
    assert body["field"] == "amount"
    nested = (
        b'{"amount": "1.00", "received_on": "2026-11-02", "channel": "cash",'
        b' "donor": {"name": "a", "name": "b"}}'
    )
    problem(
        world.client.post(f"/api/funds/{FUND}/donations", content=nested, headers=headers),
        422,
        "validation-error",
    )
    assert world.get(f"/api/funds/{FUND}").json()["figures"]["totals"]["received"] == "0.00"


# -- KeyFileError: a server fault, not "no donor details" ------------------------------------------


def test_a_wrong_key_is_a_logged_server_error_never_no_donor_details(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    world.donate("10.00")
    world.ledger.vault = DonorVault(secrets.token_bytes(32))  # another key-encryption key
    response = world.get(f"/api/funds/{FUND}/donations", "auditor")
    body = problem(response, 500, "key-file")
    assert "unwrap" not in body["detail"]
    assert "donor_details" not in response.text
    assert any("KeyFileError" in (r.exc_text or "") or r.exc_info for r in caplog.records)
    problem(world.get(f"/api/funds/{FUND}/exports/donations.csv", "auditor"), 500, "key-file")
    assert world.get(f"/api/funds/{FUND}/donations").status_code == 200  # public: no key needed


# -- item 1 (in process): an exhausted reads' pool ------------------------------------------------


def test_an_exhausted_reads_pool_answers_503_busy_and_health_says_so(world: World) -> None:
    world.donate("10.00")
    pool = world.services.read_engine.pool
    held = []
    try:
        while pool.checkedout() < pool.size() + pool._max_overflow:  # type: ignore[attr-defined]
            held.append(world.services.read_engine.connect())
        refused = world.get(f"/api/funds/{FUND}")
        problem(refused, 503, "busy")
        assert int(refused.headers["retry-after"]) >= 1
        health = world.get("/api/health")
        assert health.status_code == 503
        assert (health.json()["status"], health.json()["reads"]) == ("degraded", "exhausted")
        # writes and authentication have their own budget
        assert (
            world.post(f"/api/funds/{FUND}/donations", donation_body(), key="w").status_code == 201
        )
    finally:
        for conn in held:
            conn.close()
    assert world.get(f"/api/funds/{FUND}").status_code == 200
    assert world.get("/api/health").json()["reads"] == "ok"
