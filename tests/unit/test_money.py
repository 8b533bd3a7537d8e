"""Money: decimal strings at the edge, exact integer minor units inside, never silent rounding."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.domain.errors import (
    AmountNotPositive,
    InvalidAmount,
    TooManyDecimals,
    UnknownCurrency,
)
from ledger.domain.money import (
    AMOUNT_MINOR_MAX,
    exponent_of,
    format_amount,
    parse_amount,
)

# One currency per exponent a fund may hold: yuan/fen, yen, dinar/fils.
CURRENCY_BY_EXPONENT = {2: "CNY", 0: "JPY", 3: "BHD"}
PROPERTY_SETTINGS = settings(max_examples=200, deadline=None)


def raises_exactly(error: type[Exception], call: object, *args: object, **kwargs: object) -> None:
    """Subclasses of InvalidAmount are other rules; a test of one must not pass on another."""
    assert callable(call)
    with pytest.raises(error) as excinfo:
        call(*args, **kwargs)
    assert type(excinfo.value) is error


# -- currencies ------------------------------------------------------------------------------


@pytest.mark.parametrize(("currency", "exponent"), [("CNY", 2), ("JPY", 0), ("BHD", 3)])
def test_each_currency_has_its_iso_4217_exponent(currency: str, exponent: int) -> None:
    assert exponent_of(currency) == exponent


@pytest.mark.parametrize("currency", ["XYZ", "cny", "", "RMB"])
def test_an_unknown_currency_is_refused(currency: str) -> None:
    with pytest.raises(UnknownCurrency) as excinfo:
        parse_amount("1", currency=currency)
    assert excinfo.value.facts["currency"] == currency


def test_formatting_in_an_unknown_currency_is_refused() -> None:
    with pytest.raises(UnknownCurrency):
        format_amount(100, currency="XYZ")


# -- parsing ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "currency", "amount_minor"),
    [
        ("1234.50", "CNY", 123_450),
        ("1234.5", "CNY", 123_450),
        ("1234", "CNY", 123_400),
        ("0.01", "CNY", 1),
        ("1500", "JPY", 1500),
        ("1", "JPY", 1),
        ("1.234", "BHD", 1234),
        ("0.001", "BHD", 1),
        ("12", "BHD", 12_000),
    ],
)
def test_a_decimal_string_becomes_minor_units_of_its_currency(
    text: str, currency: str, amount_minor: int
) -> None:
    assert parse_amount(text, currency=currency) == amount_minor


@pytest.mark.parametrize(
    ("text", "currency"),
    [("1.001", "CNY"), ("1.000", "CNY"), ("1.50", "JPY"), ("1.0", "JPY"), ("0.0001", "BHD")],
)
def test_more_fractional_digits_than_the_currency_has_is_refused(text: str, currency: str) -> None:
    with pytest.raises(TooManyDecimals) as excinfo:
        parse_amount(text, currency=currency)
    assert excinfo.value.facts["exponent"] == exponent_of(currency)


@pytest.mark.parametrize(("text", "currency"), [("1.00", "CNY"), ("1", "JPY"), ("1.000", "BHD")])
def test_exactly_as_many_fractional_digits_as_the_currency_has_is_accepted(
    text: str, currency: str
) -> None:
    assert parse_amount(text, currency=currency) == 10 ** exponent_of(currency)


@pytest.mark.parametrize("text", ["0", "0.00", "-0.01", "-1"])
def test_a_zero_or_negative_amount_is_refused(text: str) -> None:
    raises_exactly(AmountNotPositive, parse_amount, text, currency="CNY")


@pytest.mark.parametrize("text", ["0", "0.00", "-0"])
def test_zero_is_accepted_where_zero_is_allowed(text: str) -> None:
    assert parse_amount(text, currency="CNY", allow_zero=True) == 0


def test_a_negative_amount_is_refused_even_where_zero_is_allowed() -> None:
    raises_exactly(AmountNotPositive, parse_amount, "-0.01", currency="CNY", allow_zero=True)


def test_the_smallest_positive_amount_is_accepted() -> None:
    assert parse_amount("0.01", currency="CNY") == 1


@pytest.mark.parametrize(
    "value",
    [
        1.5,
        0.1,
        float("nan"),
        float("inf"),
        Decimal("NaN"),
        Decimal("sNaN"),
        Decimal("Infinity"),
        Decimal("-Infinity"),
        True,
        False,
        None,
        b"1.00",
        ["1"],
    ],
    ids=repr,
)
def test_a_value_that_is_not_an_exact_decimal_is_refused(value: object) -> None:
    raises_exactly(InvalidAmount, parse_amount, value, currency="CNY")


@pytest.mark.parametrize(
    "text",
    [
        "",
        " 1",
        "1 ",
        "1\n",
        "\n1",
        "1e3",
        "1E3",
        "１",
        "1.",
        ".5",
        "+1",
        "--1",
        "1,000.00",
        "1_000",
        "NaN",
        "Infinity",
        "0x10",
        "١",
    ],
    ids=repr,
)
def test_a_string_that_is_not_a_plain_decimal_is_refused(text: str) -> None:
    raises_exactly(InvalidAmount, parse_amount, text, currency="CNY")


def test_an_exact_int_is_taken_as_whole_units() -> None:
    assert parse_amount(12, currency="CNY") == 1200


def test_an_exact_decimal_is_accepted_and_checked_like_a_string() -> None:
    assert parse_amount(Decimal("12.30"), currency="CNY") == 1230
    assert parse_amount(Decimal("1E+3"), currency="JPY") == 1000
    with pytest.raises(TooManyDecimals):
        parse_amount(Decimal("12.301"), currency="CNY")


@pytest.mark.parametrize(("exponent", "currency"), sorted(CURRENCY_BY_EXPONENT.items()))
def test_the_largest_amount_an_entry_may_carry_is_accepted(exponent: int, currency: str) -> None:
    text = format_amount(AMOUNT_MINOR_MAX, currency=currency)
    assert parse_amount(text, currency=currency) == AMOUNT_MINOR_MAX


@pytest.mark.parametrize(("exponent", "currency"), sorted(CURRENCY_BY_EXPONENT.items()))
def test_one_minor_unit_over_the_largest_amount_is_refused(exponent: int, currency: str) -> None:
    text = format_amount(AMOUNT_MINOR_MAX + 1, currency=currency)
    raises_exactly(InvalidAmount, parse_amount, text, currency=currency)


def test_the_largest_amount_is_ten_trillion_yuan() -> None:
    assert format_amount(AMOUNT_MINOR_MAX, currency="CNY") == "10000000000000.00"


# -- formatting ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("amount_minor", "currency", "text"),
    [
        (123_450, "CNY", "1234.50"),
        (1, "CNY", "0.01"),
        (0, "CNY", "0.00"),
        (-5, "CNY", "-0.05"),
        (1500, "JPY", "1500"),
        (0, "JPY", "0"),
        (1234, "BHD", "1.234"),
        (1, "BHD", "0.001"),
        (-12_000, "BHD", "-12.000"),
    ],
)
def test_minor_units_format_as_the_canonical_decimal_string(
    amount_minor: int, currency: str, text: str
) -> None:
    assert format_amount(amount_minor, currency=currency) == text


# -- properties ------------------------------------------------------------------------------

exponents = st.sampled_from(sorted(CURRENCY_BY_EXPONENT))


@st.composite
def canonical_amounts(draw: st.DrawFn) -> tuple[str, str]:
    """A canonical decimal string (no leading zeros, exactly ``exponent`` fractional digits)
    of a positive amount no larger than the limit, and its currency."""
    exponent = draw(exponents)
    amount_minor = draw(st.integers(min_value=1, max_value=AMOUNT_MINOR_MAX))
    whole, frac = divmod(amount_minor, 10**exponent)
    text = f"{whole}.{frac:0{exponent}d}" if exponent else str(whole)
    return text, CURRENCY_BY_EXPONENT[exponent]


@PROPERTY_SETTINGS
@given(canonical_amounts())
def test_a_canonical_amount_round_trips_through_parse_and_format(
    amount: tuple[str, str],
) -> None:
    text, currency = amount
    assert format_amount(parse_amount(text, currency=currency), currency=currency) == text


@PROPERTY_SETTINGS
@given(
    exponent=exponents,
    whole=st.integers(min_value=0, max_value=10**9),
    frac=st.text(alphabet="0123456789", max_size=3),
)
def test_a_short_amount_parses_to_the_same_value_it_formats_back_to(
    exponent: int, whole: int, frac: str
) -> None:
    currency = CURRENCY_BY_EXPONENT[exponent]
    frac = frac[:exponent]
    text = f"{whole}.{frac}" if frac else str(whole)
    if Decimal(text) == 0:
        raises_exactly(AmountNotPositive, parse_amount, text, currency=currency)
        return
    formatted = format_amount(parse_amount(text, currency=currency), currency=currency)
    assert Decimal(formatted) == Decimal(text)
    assert len(formatted.partition(".")[2]) == exponent


@PROPERTY_SETTINGS
@given(exponent=exponents, amount_minor=st.integers(min_value=1, max_value=AMOUNT_MINOR_MAX))
def test_parsing_a_formatted_amount_gives_back_the_minor_units(
    exponent: int, amount_minor: int
) -> None:
    currency = CURRENCY_BY_EXPONENT[exponent]
    text = format_amount(amount_minor, currency=currency)
    assert parse_amount(text, currency=currency) == amount_minor
    assert parse_amount(Decimal(text), currency=currency) == amount_minor


@PROPERTY_SETTINGS
@given(
    exponent=exponents,
    amount_minor=st.integers(min_value=1, max_value=AMOUNT_MINOR_MAX),
    extra=st.integers(min_value=1, max_value=9),
)
def test_one_digit_more_than_the_exponent_is_always_refused(
    exponent: int, amount_minor: int, extra: int
) -> None:
    currency = CURRENCY_BY_EXPONENT[exponent]
    text = format_amount(amount_minor, currency=currency)
    text = f"{text}{extra}" if exponent else f"{text}.{extra}"
    raises_exactly(TooManyDecimals, parse_amount, text, currency=currency)


@PROPERTY_SETTINGS
@given(
    exponent=exponents,
    a=st.integers(min_value=-AMOUNT_MINOR_MAX, max_value=AMOUNT_MINOR_MAX),
    b=st.integers(min_value=-AMOUNT_MINOR_MAX, max_value=AMOUNT_MINOR_MAX),
    c=st.integers(min_value=-AMOUNT_MINOR_MAX, max_value=AMOUNT_MINOR_MAX),
)
def test_sums_of_minor_units_format_exactly(exponent: int, a: int, b: int, c: int) -> None:
    currency = CURRENCY_BY_EXPONENT[exponent]

    def decimal(amount_minor: int) -> Decimal:
        return Decimal(format_amount(amount_minor, currency=currency))

    assert decimal(a + b) == decimal(a) + decimal(b)
    assert decimal((a + b) + c) == decimal(a) + decimal(b) + decimal(c)
    assert decimal(a - b) == decimal(a) - decimal(b)
