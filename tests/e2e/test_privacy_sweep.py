"""No donor's name (other than the public name chosen at recording) and no contact in any
public response: every public GET route of the app — JSON, CSV, SVG, HTML, the books — and
the 404 and 422 answers, requested without a token on a ledger seeded with distinctive
donors (Charity Law art. 82; DESIGN §7).

The routes are listed from the app itself (``app.routes``), so a new public route is swept
as soon as it exists; a route with a path parameter this file has no value for fails the
test until ``PATH_PARAMS`` gets one, and a public route that was not requested fails it too.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from itertools import product
from pathlib import Path
from typing import Any

import pytest
from starlette.routing import Mount, Route
from test_api_support import COMMITTEE, FUND, World, serve

from api.auth import route_access
from projections.exports.csv_files import EXPORT_KINDS

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

# (name, contact, how the public sees them): the donor record as given at recording.
DONORS: list[dict[str, Any]] = [
    {"name": "欧阳娜娜", "contact": "13912345678", "public_name": "热心村民"},
    {"name": "司马光明", "contact": "wechat:sima_guangming_88"},  # shown masked: 司**明
    {"name": "诸葛亮亮", "contact": "18600001111", "anonymous": True},  # 爱心人士
    {"name": "Wilhelmina Quist", "contact": "wq@example.org"},  # W********* Q****
]
PUBLIC_NAMES = ("热心村民", "司**明", "爱心人士", "W********* Q****")
# Whole names, contacts, and the parts of each name its public form does not show.
SECRETS = (
    "欧阳娜娜", "欧阳", "娜娜", "13912345678",
    "司马光明", "司马", "光明", "sima_guangming", "wechat:",
    "诸葛亮亮", "诸葛", "亮亮", "18600001111",
    "Wilhelmina", "Quist", "wq@example.org",
)  # fmt: skip

_PARAM = re.compile(r"\{(\w+)(?::[^}]*)?\}")


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[World, dict[str, list[str]]]]:
    from datetime import datetime
    from zoneinfo import ZoneInfo

    tmp: Path = tmp_path_factory.mktemp("privacy")
    now = datetime(2026, 11, 27, 10, 0, tzinfo=ZoneInfo("Asia/Shanghai"))
    with serve(f"sqlite:///{tmp / 'ledger.db'}", tmp, lambda: now) as w:
        w.open_fund()
        w.client.put(
            f"/api/funds/{FUND}/host",
            json={"name": "示例公益基金会", "credit_code": "53100000500021676K",
                  "public_fundraising": True},
            headers=w.auth("admin"),
        )  # fmt: skip
        donations = []
        for n, donor in enumerate(DONORS):
            body = {
                "amount": "800.00",
                "received_on": "2026-10-1" + str(n),
                "channel": "bank",
                "donor": donor,
                # internal fields that name the donor: never public either
                "note": f"{donor['name']} 电话 {donor['contact']}",
                "external_ref": f"BANK-{n}",
            }
            donations.append(w.create(f"/api/funds/{FUND}/donations", body))
        w.create(
            f"/api/donations/{donations[0]['id']}/refunds",
            {"amount": "10.00", "reason": "捐赠人要求部分退回"},
        )
        grant = w.committed_grant("300.00")
        w.create(
            f"/api/grants/{grant['id']}/disbursements",
            {"amount": "100.00", "method": "bank", "reference": "TR-1"},
        )
        w.create(
            f"/api/grants/{grant['id']}/progress",
            {"on": "2026-11-27", "note": "灶具已安装", "evidence_sha256": ["a" * 64]},
            COMMITTEE[0],
        )
        expense = w.create(
            f"/api/funds/{FUND}/expenses",
            {"amount": "20.00", "category": "administration", "paid_on": "2026-11-02",
             "payee": "村委会", "description": "打印公示材料"},
        )  # fmt: skip
        params: dict[str, list[str]] = {
            "slug": [FUND],
            "grant_id": [grant["id"]],
            "donation_id": [d["id"] for d in donations],
            "receipt_no": [d["receipt_no"] for d in donations],
            "kind": list(EXPORT_KINDS),
            "tranche_no": ["1"],
            "expense_id": [expense["id"]],
            "period": ["2026-10", "2026-11", "2026-Q4"],
            "year_quarter": ["2026-Q4"],
            "size": ["1"],
        }
        yield w, params


def all_routes(routes: Any, prefix: str = "") -> Iterator[tuple[str, Route]]:
    """Every route of an app with its full path, included routers' and mounts' too."""
    for route in routes:
        included = getattr(route, "original_router", None)  # FastAPI's included router
        if included is not None:
            yield from all_routes(included.routes, prefix)
        elif isinstance(route, Route):
            yield prefix + route.path, route
        elif isinstance(route, Mount):
            yield from all_routes(route.routes, prefix + route.path)


def public_get_routes(api: Any) -> list[str]:
    """The path templates of every GET route anyone may call without a token."""
    paths = []
    for path, route in all_routes(api.routes):
        if "GET" not in (route.methods or ()):
            continue
        access = route_access(route) if hasattr(route, "dependant") else None
        if access is not None and not access.public:
            continue
        paths.append(path)
    return sorted(set(paths))


def urls_of(template: str, params: dict[str, list[str]]) -> list[str]:
    names = _PARAM.findall(template)
    missing = [n for n in names if n not in params]
    assert not missing, f"{template}: give {missing} a value in this file's params table"
    urls = []
    for values in product(*(params[n] for n in names)):
        url = template
        for name, value in zip(names, values, strict=True):
            url = re.sub(r"\{" + name + r"(?::[^}]*)?\}", value, url, count=1)
        urls.append(url)
    return urls


def leaks(text: str) -> list[str]:
    found = []
    for secret in SECRETS:
        escaped = json.dumps(secret)[1:-1]  # as a JSON string with ASCII escapes
        if secret in text or escaped in text:
            found.append(secret)
    return found


def test_every_public_route_is_free_of_donor_names_and_contacts(
    world: tuple[World, dict[str, list[str]]],
) -> None:
    w, params = world
    templates = public_get_routes(w.api)
    assert "/api/funds/{slug}/donations" in templates
    requested: set[str] = set()
    found: dict[str, list[str]] = {}
    for template in templates:
        queries: list[dict[str, str]] = [{}]
        if not template.startswith("/api") and not template.startswith("/openapi"):
            queries += [{"lang": "en"}, {"lang": "zh"}]  # the pages in both languages
        for url, query in product(urls_of(template, params), queries):
            response = w.client.get(url, params=query)
            assert response.status_code < 500, (url, response.text[:500])
            requested.add(template)
            bad = leaks(response.content.decode("utf-8", errors="replace"))
            if bad:
                found[f"{url}?{query}"] = bad
    assert requested == set(templates)
    assert found == {}


def test_the_public_sees_donors_only_as_chosen(world: tuple[World, dict[str, list[str]]]) -> None:
    w, _ = world
    donors = {d["donor"] for d in w.get(f"/api/funds/{FUND}/donations").json()["items"]}
    assert donors == set(PUBLIC_NAMES)
    # the test would see a leak: an auditor's answer does hold the names
    audited = w.get(f"/api/funds/{FUND}/donations", "auditor").text
    assert "欧阳娜娜" in leaks(audited)


@pytest.mark.parametrize(
    "url",
    [
        "/no-such-page",
        "/api/no-such-route",
        "/api/funds/no-such-fund",
        "/api/grants/no-such-grant",
        f"/api/funds/{FUND}/donations?limit=0",
        f"/api/funds/{FUND}/donations?cursor=garbage",
        f"/api/funds/{FUND}/balance?as_of=not-a-date",
        f"/api/funds/{FUND}/report?from=2026-13-01",
        f"/api/funds/{FUND}/exports/donors.csv",
    ],
)
@pytest.mark.parametrize("accept", ["application/json", "text/html"])
def test_the_404_and_422_answers_are_free_of_donor_data(
    world: tuple[World, dict[str, list[str]]], url: str, accept: str
) -> None:
    w, _ = world
    response = w.client.get(url, headers={"Accept": accept})
    assert response.status_code in (404, 422), (url, response.status_code)
    assert leaks(response.text) == []


def test_the_sweep_catches_a_leak() -> None:
    assert leaks('{"donor": "\\u6b27\\u9633\\u5a1c\\u5a1c"}') == ["欧阳娜娜", "欧阳", "娜娜"]
    assert leaks("王*明,13912345678") == ["13912345678"]
    assert leaks(" ".join(PUBLIC_NAMES)) == []


def test_a_route_without_a_value_for_its_parameter_fails_the_sweep() -> None:
    with pytest.raises(AssertionError, match="give \\['nope'\\] a value"):
        urls_of("/funds/{nope}", {})
    assert urls_of("/r/{receipt_no:path}/{kind}", {"receipt_no": ["a"], "kind": ["x", "y"]}) == [
        "/r/a/x",
        "/r/a/y",
    ]
