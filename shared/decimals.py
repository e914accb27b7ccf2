"""Exact fixed-point numbers, shared by every domain (FIFO, ledger encoding, inventory, journals): quantities
and costs as scaled integers.

Quantities and unit costs carry 4 decimal places, amounts (quantity x unit cost) carry 8, so every
product is exact. Parsing never rounds: input with more significant decimals than the scale is
rejected, and floats are never involved.
"""

from __future__ import annotations

from decimal import Decimal

QTY_SCALE = 4
COST_SCALE = 4
AMOUNT_SCALE = QTY_SCALE + COST_SCALE
CENTS_SCALE = 2

# Scaled values are stored in int64 columns; keeping inputs well below 2**63 leaves headroom for sums.
MAX_SCALED = 10**18

_POW10: tuple[int, ...] = tuple(10**i for i in range(40))


def _pow10(exponent: int) -> int:
    return _POW10[exponent] if exponent < len(_POW10) else 10**exponent


def _is_digits(text: str) -> bool:
    # str.isdigit() alone accepts other scripts' digits and superscripts, which int() would then parse
    # (or reject) differently; plain ASCII digits are the only accepted form.
    return text.isascii() and text.isdigit()


def parse_scaled(text: str, scale: int) -> int:
    """Parse a plain decimal literal into an integer scaled by ``10**scale``.

    Accepts surrounding whitespace, a leading ``+`` or ``-``, and forms like ``10``, ``10.5``, ``.5`` and
    ``10.``. Rejects exponents, thousands separators, underscores, ``nan``/``inf`` and values with more
    non-zero decimals than ``scale`` (trailing zeros beyond the scale are harmless and accepted).
    """
    s = text.strip()
    if not s:
        raise ValueError("empty number")
    negative = False
    if s[0] in "+-":
        negative = s[0] == "-"
        s = s[1:]
    whole, _, frac = s.partition(".")
    if not whole and not frac:
        raise ValueError(f"not a number: {text!r}")
    if (whole and not _is_digits(whole)) or (frac and not _is_digits(frac)):
        raise ValueError(f"not a plain decimal number: {text!r}")
    if len(frac) > scale:
        extra = frac[scale:]
        if extra.strip("0"):
            raise ValueError(f"more than {scale} decimal places: {text!r}")
        frac = frac[:scale]
    value = int(whole or "0") * _pow10(scale)
    if frac:
        value += int(frac) * _pow10(scale - len(frac))
    return -value if negative else value


def to_decimal(value: int, scale: int) -> Decimal:
    """The exact ``Decimal`` for a scaled integer, with exactly ``scale`` decimal places."""
    return Decimal(value).scaleb(-scale)


def format_scaled(value: int, scale: int) -> str:
    """Render a scaled integer with exactly ``scale`` decimals.

    ``format_scaled(12345000, 4) == "1234.5000"``; ``format_scaled(-5, 4) == "-0.0005"``.
    """
    value = int(value)
    sign = "-" if value < 0 else ""
    whole, frac = divmod(abs(value), _pow10(scale))
    if scale == 0:
        return f"{sign}{whole}"
    return f"{sign}{whole}.{frac:0{scale}d}"


def round_half_up_cents(amount_scaled: int, scale: int) -> int:
    """Round a scaled amount to whole cents, halves away from zero (``ROUND_HALF_UP``)."""
    amount_scaled = int(amount_scaled)
    if scale <= CENTS_SCALE:
        return amount_scaled * _pow10(CENTS_SCALE - scale)
    divisor = _pow10(scale - CENTS_SCALE)
    cents, remainder = divmod(abs(amount_scaled), divisor)
    if 2 * remainder >= divisor:
        cents += 1
    return -cents if amount_scaled < 0 else cents


def format_cents(cents: int) -> str:
    """Render whole cents as a money string: ``format_cents(-1234) == "-12.34"``."""
    return format_scaled(cents, CENTS_SCALE)
