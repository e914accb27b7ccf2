"""A plain Decimal implementation of each costing method, written from docs/costing.md and nothing else: one
SKU at a time, one event at a time, lists and Decimals, no scaling. The engines are checked against it."""

from __future__ import annotations

import decimal
from dataclasses import dataclass, field
from decimal import ROUND_HALF_EVEN, Decimal

from shared.costing.fifo import LotsBatch, SalesBatch

Q4 = Decimal("0.0001")
CONTEXT = decimal.Context(prec=60)


@dataclass
class Books:
    """What a method made of the inputs: every figure as an exact Decimal."""

    short: set[int] = field(default_factory=set)  # input indices of the sales short of stock
    slices: list[tuple[int, int, Decimal, Decimal]] = field(default_factory=list)  # sale, lot, quantity, amount
    sale_cogs: dict[int, Decimal] = field(default_factory=dict)
    lot_consumed: dict[int, Decimal] = field(default_factory=dict)
    closing_value: dict[str, Decimal] = field(default_factory=dict)  # per SKU: value left on hand
    closing_quantity: dict[str, Decimal] = field(default_factory=dict)


def _dec(scaled: int, scale: int) -> Decimal:
    return Decimal(scaled).scaleb(-scale, CONTEXT)


def cost(method: str, sales: SalesBatch, lots: LotsBatch, opening: dict[str, Decimal] | None = None) -> Books:
    books = Books()
    sale_at = sales.sale_date.astype("datetime64[us]").tolist()
    lot_at = lots.received_date.astype("datetime64[us]").tolist()
    for sku in sorted(set(sales.sku) | set(lots.sku)):
        sku_lots = sorted(
            (j for j in range(len(lots)) if lots.sku[j] == sku), key=lambda j: (lot_at[j], lots.lot_id[j], j)
        )
        sku_sales = sorted(
            (i for i in range(len(sales)) if sales.sku[i] == sku), key=lambda i: (sale_at[i], sales.sale_id[i], i)
        )
        # (lot index, remaining) in the order received; LIFO takes from the end, FIFO and moving average from
        # the start.
        layers: list[list[object]] = []
        value = (opening or {}).get(sku, Decimal(0))
        quantity = Decimal(0)
        unit = Decimal(0)
        received = demand = Decimal(0)
        lots_left = list(sku_lots)
        for i in sku_sales:
            while lots_left and lot_at[lots_left[0]] <= sale_at[i]:
                j = lots_left.pop(0)
                q, c = _dec(int(lots.quantity[j]), 4), _dec(int(lots.unit_cost[j]), 4)
                if q:
                    layers.append([j, q])
                received += q
                quantity += q
                value += q * c
                unit = (value / quantity).quantize(Q4, ROUND_HALF_EVEN, CONTEXT) if quantity else Decimal(0)
            want = _dec(int(sales.quantity[i]), 4)
            demand += want
            if demand > received:
                books.short.add(i)
                continue
            if books.short:
                continue  # a file with a short sale is not costed: only the short set is compared
            sale_amount = value if want == quantity else want * unit
            if method == "moving_average":
                quantity -= want
                value -= sale_amount
            taken: list[tuple[int, Decimal]] = []
            while want:
                layer = layers[-1] if method == "lifo" else next(x for x in layers if x[1])
                lot, left = layer[0], layer[1]
                assert isinstance(lot, int) and isinstance(left, Decimal)
                take = min(want, left)
                layer[1] = left - take
                want -= take
                taken.append((lot, take))
                if method == "lifo" and not layer[1]:
                    layers.pop()
            amounts = [
                take * (unit if method == "moving_average" else _dec(int(lots.unit_cost[j]), 4)) for j, take in taken
            ]
            if method == "moving_average":
                amounts[-1] += sale_amount - sum(amounts, Decimal(0))
            for (j, take), amount in zip(taken, amounts, strict=True):
                books.slices.append((i, j, take, amount))
                books.sale_cogs[i] = books.sale_cogs.get(i, Decimal(0)) + amount
                books.lot_consumed[j] = books.lot_consumed.get(j, Decimal(0)) + take
        for j in lots_left:  # lots after the SKU's last sale join the pool too
            q, c = _dec(int(lots.quantity[j]), 4), _dec(int(lots.unit_cost[j]), 4)
            layers.append([j, q])
            quantity += q
            value += q * c
        if method != "moving_average":
            value = sum(
                (
                    _dec(int(lots.unit_cost[j]), 4) * left
                    for j, left in layers
                    if isinstance(j, int) and isinstance(left, Decimal)
                ),
                Decimal(0),
            )
            quantity = sum((left for _, left in layers if isinstance(left, Decimal)), Decimal(0))
        books.closing_value[sku] = value
        books.closing_quantity[sku] = quantity
    return books
