"""``GET /api/funds/{slug}/360giving.json``: a fund's awarded grants as a 360Giving 1.4.3
package, validated offline against the vendored schema (tests/data/360giving)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator, FormatChecker
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012
from test_api_support import COMMITTEE, FUND, World, serve

from projections.exports.giving360 import dumps, grantee_org_id, number

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

SCHEMAS = Path(__file__).resolve().parents[1] / "data" / "360giving"
GRANT_SCHEMA_IDS = (
    "https://raw.githubusercontent.com/ThreeSixtyGiving/standard/1.4.2/schema/360-giving-schema.json",
    "https://raw.githubusercontent.com/ThreeSixtyGiving/standard/1.4.3/schema/360-giving-schema.json",
)
HOST = {"name": "示例公益基金会", "credit_code": "53100000500021676K", "public_fundraising": True}
GRANTEE_CODE = "91350100M000100Y43"


def validator() -> Draft202012Validator:
    grant = json.loads((SCHEMAS / "360-giving-schema.json").read_text(encoding="utf-8"))
    package = json.loads((SCHEMAS / "360-giving-package-schema.json").read_text(encoding="utf-8"))
    resource = Resource.from_contents(grant, default_specification=DRAFT202012)
    registry: Registry[Any] = Registry().with_resources((uri, resource) for uri in GRANT_SCHEMA_IDS)
    return Draft202012Validator(package, registry=registry, format_checker=FormatChecker())


def errors_of(package: Any) -> list[str]:
    return [f"{list(e.absolute_path)}: {e.message}" for e in validator().iter_errors(package)]


@pytest.fixture
def world(sqlite_url: str, tmp_path: Path, clock: Any) -> Iterator[World]:
    with serve(sqlite_url, tmp_path, clock.now) as w:
        w.open_fund()
        w.donate("5000.00", donor={"name": "欧阳娜娜", "contact": "13912345678"})
        yield w


def seed(w: World) -> dict[str, Any]:
    paid = w.committed_grant("300.50", grantee={"name": "老年协会", "id": GRANTEE_CODE})
    for amount, ref in (("100.25", "TR-1"), ("50.00", "TR-2")):
        w.create(
            f"/api/grants/{paid['id']}/disbursements",
            {"amount": amount, "method": "bank", "reference": ref},
        )
    w.post(f"/api/grants/{paid['id']}/disbursements/2/reversal", {"reason": "退票"})
    closed = w.committed_grant("200.00", description="村小图书角", grantee={"name": "牌坊村小学"})
    w.post(f"/api/grants/{closed['id']}/closure", {"reason": "完成"}, COMMITTEE[0])
    proposed = w.create(
        f"/api/funds/{FUND}/grants", {"title": "待批", "grantee": {"name": "g"}, "amount": "1.00"}
    )
    return {"paid": paid, "closed": closed, "proposed": proposed}


def package(w: World) -> Any:
    response = w.get(f"/api/funds/{FUND}/360giving.json")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    return response.json(parse_float=Decimal)


def test_the_package_is_valid_360giving_1_4_3(world: World) -> None:
    world.client.put(f"/api/funds/{FUND}/host", json=HOST, headers=world.auth("admin"))
    seed(world)
    got = package(world)
    assert errors_of(got) == []
    assert len(got["grants"]) == 2
    assert got["version"] == "1.4"


def test_the_mapping_of_a_grant(world: World) -> None:
    world.client.put(f"/api/funds/{FUND}/host", json=HOST, headers=world.auth("admin"))
    grants = seed(world)
    by_id = {g["id"]: g for g in package(world)["grants"]}
    paid = by_id[f"360G-ledger-{grants['paid']['id']}"]
    assert paid["amountAwarded"] == Decimal("300.50")
    assert paid["amountDisbursed"] == Decimal("100.25")
    assert paid["currency"] == "CNY"
    assert paid["awardDate"] == "2026-11-27"
    assert paid["plannedDates"] == [{"startDate": "2026-11-27"}]
    assert paid["description"] == paid["title"] == "老年食堂灶具"  # no description: the title
    assert paid["fundingOrganization"] == [
        {"id": "CN-USCI-53100000500021676K", "name": "示例公益基金会", "department": "茶乡振兴基金"}
    ]
    assert paid["recipientOrganization"] == [{"id": f"CN-USCI-{GRANTEE_CODE}", "name": "老年协会"}]
    # the reversed tranche is not a disbursement
    assert paid["disbursementTransaction"] == [
        {
            "id": f"360G-ledger-{grants['paid']['id']}-tranche-1",
            "transactionDate": "2026-11-27",
            "currency": "CNY",
            "value": Decimal("100.25"),
        }
    ]
    closed = by_id[f"360G-ledger-{grants['closed']['id']}"]
    assert closed["plannedDates"] == [{"startDate": "2026-11-27", "endDate": "2026-11-27"}]
    assert closed["description"] == "村小图书角"
    assert closed["recipientOrganization"][0]["id"] == grantee_org_id(
        "牌坊村小学", None, "360G-ledger"
    )
    assert f"360G-ledger-{grants['proposed']['id']}" not in by_id


def test_without_a_credit_code_the_host_has_the_publishers_own_id(world: World) -> None:
    seed(world)
    got = package(world)
    assert errors_of(got) == []
    funder = got["grants"][0]["fundingOrganization"][0]
    assert funder == {
        "id": f"360G-ledger-host-{FUND}",
        "name": "示例公益基金会",
        "department": "茶乡振兴基金",
    }
    assert got["publisher"] == {"name": "示例公益基金会", "identifier": f"360G-ledger-host-{FUND}"}


def test_the_prefix_is_a_setting(world: World) -> None:
    seed(world)
    services = world.services
    services.settings = services.settings.model_copy(
        update={"threesixty_giving_prefix": "360G-tea"}
    )
    got = package(world)
    assert all(g["id"].startswith("360G-tea-") for g in got["grants"])
    assert errors_of(got) == []


def test_a_prefix_not_of_360giving_is_refused_by_the_settings() -> None:
    from pydantic import ValidationError

    from ledger.settings import Settings

    with pytest.raises(ValidationError):
        Settings(threesixty_giving_prefix="GB-tea")
    assert Settings(threesixty_giving_prefix="360G-tea-2").threesixty_giving_prefix == "360G-tea-2"


def test_no_donor_data_is_in_the_package(world: World) -> None:
    seed(world)
    text = world.get(f"/api/funds/{FUND}/360giving.json").text
    for secret in ("欧阳", "13912345678", "张三", "13800000000", "欧*"):
        assert secret not in text


def test_a_grantee_id_that_is_not_a_credit_code_is_never_published() -> None:
    # e.g. a person's national id number given as the grantee's id
    org = grantee_org_id("王大爷", "110101195001011234", "360G-ledger")
    assert "110101195001011234" not in org
    assert org.startswith("360G-ledger-grantee-")


def test_a_fund_that_awarded_nothing_has_an_empty_list(world: World) -> None:
    got = package(world)
    assert got["grants"] == []
    assert errors_of(got) != []  # the standard asks for at least one grant


def test_the_offline_validator_catches_an_invalid_package() -> None:
    bad = {"grants": [{"id": "360G-x-1", "title": "t", "description": "d", "currency": "CNY",
                       "amountAwarded": "1.00", "awardDate": "2026-13-01",
                       "recipientOrganization": [{"id": "x", "name": "n"}],
                       "fundingOrganization": [{"id": "y", "name": "m"}]}]}  # fmt: skip
    assert len(errors_of(bad)) >= 2  # a string amount, a 13th month


def test_amounts_are_exact_json_numbers() -> None:
    text = dumps({"a": number(100_000_000_000_001, "CNY"), "b": [number(5, "CNY")], "c": "x"})
    assert text == '{"a":1000000000000.01,"b":[0.05],"c":"x"}'
    assert json.loads(text, parse_float=Decimal)["a"] == Decimal("1000000000000.01")
