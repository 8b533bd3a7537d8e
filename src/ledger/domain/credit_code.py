"""The unified social credit code (统一社会信用代码) of an organisation, GB 32100-2015.

Eighteen characters from a 31-character alphabet (the digits and the capital letters
without I, O, Z, S and V)::

    9 1 350100 M000100Y4 3
    │ │ │      │         └── check character (position 18)
    │ │ │      └── the organisation code, GB 11714 (positions 9-17)
    │ │ └── the registering authority's administrative division (positions 3-8)
    │ └── the kind of organisation (position 2)
    └── the registering department (position 1: 5 = civil affairs, where charities register)

The check character: each of the first 17 characters' value (its place in the alphabet)
times the weight 3^i mod 31 (i = 0 … 16), summed; the check is 31 − (sum mod 31), with 31
written as 0. Only the code's shape and its check character are verified here: whether a
code was ever issued is the national registry's to say.
"""

from __future__ import annotations

from ledger.domain.errors import InvalidCreditCode

CREDIT_CODE_LEN = 18
CREDIT_CODE_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_VALUE = {ch: n for n, ch in enumerate(CREDIT_CODE_ALPHABET)}
_WEIGHTS = tuple(pow(3, i, 31) for i in range(CREDIT_CODE_LEN - 1))
CREDIT_CODE_PATTERN = rf"^[{CREDIT_CODE_ALPHABET}]{{{CREDIT_CODE_LEN}}}$"


def check_character(first_17: str) -> str:
    """The check character of a code's first seventeen characters."""
    total = sum(_VALUE[ch] * w for ch, w in zip(first_17, _WEIGHTS, strict=True))
    return CREDIT_CODE_ALPHABET[(31 - total % 31) % 31]


def check_credit_code(value: object) -> str:
    """The code, if it is one; ``InvalidCreditCode`` naming what is wrong otherwise."""
    if not isinstance(value, str):
        raise InvalidCreditCode("the credit code must be text", field="credit_code")
    if len(value) != CREDIT_CODE_LEN:
        raise InvalidCreditCode(
            f"a unified social credit code has {CREDIT_CODE_LEN} characters, not {len(value)}",
            field="credit_code",
        )
    bad = sorted({ch for ch in value if ch not in _VALUE})
    if bad:
        raise InvalidCreditCode(
            f"the credit code may hold only digits and the capital letters "
            f"{CREDIT_CODE_ALPHABET[10:]} (not {''.join(bad)!r})",
            field="credit_code",
        )
    expected = check_character(value[:-1])
    if value[-1] != expected:
        raise InvalidCreditCode(
            f"the credit code's check character is {value[-1]!r}, its digits give {expected!r}",
            field="credit_code",
        )
    return value
