"""The split of a revaluation over a SKU's lots (shared/runs/revaluation.py `split`): exact, one-signed,
pro rata by quantity, the remainder on the last lot."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from shared.runs.revaluation import split


def test_the_hand_checked_split() -> None:
    # +25 over 5 and 10 units (scaled 10^4): 8.33333333 truncated, the rest on the last lot.
    assert split(25 * 10**8, [50_000, 100_000]) == [833_333_333, 1_666_666_667]
    assert split(-25 * 10**8, [50_000, 100_000]) == [-833_333_333, -1_666_666_667]
    assert split(7, [1]) == [7]
    assert split(1, [10_000, 10_000, 10_000]) == [0, 0, 1]


@given(
    total=st.integers(min_value=-(10**16), max_value=10**16),
    quantities=st.lists(st.integers(min_value=1, max_value=10**10), min_size=1, max_size=20),
)
def test_shares_sum_exactly_carry_the_sign_and_follow_the_quantities(total: int, quantities: list[int]) -> None:
    shares = split(total, quantities)
    assert len(shares) == len(quantities)
    assert sum(shares) == total
    assert all(share * total >= 0 for share in shares)
    base = sum(quantities)
    for share, quantity in zip(shares[:-1], quantities[:-1], strict=True):
        exact = abs(total) * quantity
        assert abs(share) * base <= exact < (abs(share) + 1) * base
