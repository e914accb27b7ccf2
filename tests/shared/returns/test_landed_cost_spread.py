"""`spread`, the pure arithmetic of a landed cost: exact, never negative, the remainder on the last sale."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from shared.landed_costs.models import Target
from shared.landed_costs.service import spread

UNIT = 10**4  # quantities and costs are scaled 10^4, amounts 10^8


def test_half_on_hand_half_issued():
    rate, shares = spread(10 * UNIT, 5 * UNIT, [("r1", "S1", 3 * UNIT), ("r1", "S2", 2 * UNIT)])
    assert rate == 1 * UNIT
    assert [(s.target, s.sale_id, s.amount) for s in shares] == [
        (Target.ON_HAND, None, 5 * 10**8),
        (Target.SALES, "S1", 3 * 10**8),
        (Target.SALES, "S2", 2 * 10**8),
    ]


def test_the_remainder_goes_to_the_last_sale():
    rate, shares = spread(10 * UNIT, 0, [("r1", "S1", UNIT), ("r1", "S2", UNIT), ("r2", "S3", UNIT)])
    assert rate == 33_333  # 3.3333, rounded down
    assert [s.amount for s in shares] == [333_333_333, 333_333_333, 333_333_334]


def test_nothing_issued_leaves_only_the_rounding_remainder_to_cogs():
    rate, shares = spread(UNIT, 3 * UNIT, [])
    assert rate == 3_333
    assert [(s.target, s.amount) for s in shares] == [(Target.ON_HAND, 99_990_000), (Target.ROUNDING, 10_000)]


def test_an_even_rate_leaves_no_rounding_line():
    rate, shares = spread(UNIT, 4 * UNIT, [])
    assert rate == 2_500
    assert [(s.target, s.amount) for s in shares] == [(Target.ON_HAND, 10**8)]


quantities = st.integers(min_value=1, max_value=10**14)


@given(
    amount=st.integers(min_value=1, max_value=10**13),
    on_hand=st.integers(min_value=0, max_value=10**14),
    sold=st.lists(quantities, max_size=20),
)
def test_shares_sum_exactly_and_none_is_negative(amount, on_hand, sold):
    if on_hand == 0 and not sold:
        sold = [1]
    sales = [("run", f"S{n}", q) for n, q in enumerate(sold)]
    rate, shares = spread(amount, on_hand, sales)
    assert sum(s.amount for s in shares) == amount * 10**4
    assert all(s.amount >= 0 for s in shares)
    assert rate >= 0
    on_hand_share = [s for s in shares if s.target == Target.ON_HAND]
    assert sum(s.amount for s in on_hand_share) == on_hand * rate  # the lot is revalued by exactly R x u
    # each sale's share is its pro-rata part, rounded down, but for the last which takes the remainder
    issued = amount * 10**4 - on_hand * rate
    sale_shares = [s for s in shares if s.target == Target.SALES]
    for share, (_, _, quantity) in zip(sale_shares[:-1], sales[:-1], strict=True):
        assert share.amount == issued * quantity // sum(sold)
