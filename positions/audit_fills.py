"""The daily audit's fills (docs/audit.md "Fills"): each live fill of a day against the engine's fill at the day's
stored candle, with the strategy's slippage and fee rate (:mod:`trading.engine.rules`, the functions the backtest
and the paper broker fill with), and the rounding of the audit's figures."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from instruments.models import InstrumentOHLC, Timeframe
from positions.models import Order, Position
from trading.engine.layout import NO_EXIT
from trading.engine.rules import buy_fill_price, fill_fee, risk_exit_code, sell_fill_price
from trading.engine.vocabulary import ExitReason
from trading.selectors import to_decimal

#: Money figures of the audit are rounded to a millionth of the quote currency (ROUND_HALF_EVEN): below it, a
#: difference is the rounding between the engine's float64 and the stored Decimal, not drift.
AMOUNT_QUANTUM = Decimal("0.000001")
#: Basis points are rounded to a ten-thousandth of a basis point.
BPS_QUANTUM = Decimal("0.0001")
BPS = Decimal(10_000)
#: The exits filled at a level crossed inside the candle (the others fill at the open).
RISK_EXITS = (ExitReason.STOP_LOSS.value, ExitReason.TAKE_PROFIT.value, ExitReason.TRAILING_STOP.value)


def audit_round(value: Decimal, quantum: Decimal = AMOUNT_QUANTUM) -> Decimal:
    """``value`` rounded half-even to ``quantum`` (:data:`AMOUNT_QUANTUM` for money, :data:`BPS_QUANTUM`)."""
    return value.quantize(quantum, rounding=ROUND_HALF_EVEN)


def _day_candles(instrument_ids: set[int], start: datetime) -> dict[int, tuple[Decimal, Decimal, Decimal]]:
    """The stored daily candle opening at ``start`` of each instrument: ``(open, high, low)``, quote currency."""
    rows = InstrumentOHLC.objects.filter(
        instrument_id__in=instrument_ids, timeframe=Timeframe.D1, open_time=start
    ).values_list("instrument_id", "open", "high", "low")
    return {pk: (o, h, low) for pk, o, h, low in rows}


def _other_fees(orders: Iterable[Order]) -> dict[str, Decimal]:
    total: dict[str, Decimal] = {}
    for order in orders:
        for currency, amount in (order.other_fees or {}).items():
            total[currency] = total.get(currency, Decimal(0)) + Decimal(str(amount))
    return total


def fills_against_model(
    positions: Sequence[Position], fee_rate: float, slippage_ratio: float, start: datetime, end: datetime
) -> list[dict[str, Any]]:
    """Each live fill of the day (an entry or an exit of a position, timed inside ``[start, end)``) against the
    engine's fill of the same quantity at the day's stored candle (docs/audit.md "Fills").

    Args:
        positions: the strategy's positions (those entered or exited inside the day are read), with instruments.
        fee_rate, slippage_ratio: the strategy's criteria (fractions: 0.001 is 0.1 %).
        start, end: the day, aware UTC midnights.

    Returns:
        One JSON-ready row per fill, entries first: ``position_id``, ``instrument`` (CoinGecko id), ``side``
        (``buy``/``sell``), ``reason`` (an exit's), ``quantity``, ``price`` and ``real_fee`` (the position's, quote),
        ``other_fees`` ({currency: amount} from its filled orders), ``modelled_raw_price``, ``modelled_price``,
        ``modelled_fee``, ``slippage_bps`` (positive: live did worse), ``slippage_cost`` and ``fee_drift`` (quote),
        all decimal strings, None when the day's candle is not stored (``note`` says so).
    """
    entered = [p for p in positions if start <= p.entry_at < end]
    exited = [p for p in positions if p.exit_at is not None and start <= p.exit_at < end]
    candles = _day_candles({p.instrument_id for p in entered + exited}, start)
    orders: dict[tuple[int, str], list[Order]] = {}
    for order in Order.objects.filter(position__in=entered + exited, filled_quantity__gt=0):
        side = "buy" if order.purpose == Order.Purpose.ENTRY else "sell"
        assert order.position_id is not None  # noqa: S101 (filtered on positions)
        orders.setdefault((order.position_id, side), []).append(order)
    fills = []
    for side, position in [("buy", p) for p in entered] + [("sell", p) for p in exited]:
        candle = candles.get(position.instrument_id)
        quantity = position.quantity
        if side == "buy":
            real_price, real_fee, reason = position.entry_price, position.entry_fee, ""
        else:
            assert position.exit_price is not None  # noqa: S101 (exited positions have their exit)
            real_price, real_fee, reason = (
                position.exit_price,
                position.exit_fee or Decimal(0),
                position.exit_reason,
            )
        row: dict[str, Any] = {
            "position_id": position.pk,
            "instrument": position.instrument.coingecko_id,
            "side": side,
            "reason": reason,
            "quantity": str(quantity),
            "price": str(real_price),
            "real_fee": str(real_fee),
            "other_fees": {
                c: str(a) for c, a in sorted(_other_fees(orders.get((position.pk, side), [])).items())
            },
            "modelled_raw_price": None,
            "modelled_price": None,
            "modelled_fee": None,
            "slippage_bps": None,
            "slippage_cost": None,
            "fee_drift": None,
            "note": "",
        }
        if candle is None:
            row["note"] = "no stored candle of the day: the model has no price"
            fills.append(row)
            continue
        raw, note = _modelled_raw(position, side, candle)
        price = float(raw)
        modelled = to_decimal(
            buy_fill_price(price, slippage_ratio) if side == "buy" else sell_fill_price(price, slippage_ratio)
        )
        modelled_fee = to_decimal(fill_fee(float(modelled), float(quantity), fee_rate))
        ratio = real_price / modelled
        bps = (ratio - 1) * BPS if side == "buy" else (1 - ratio) * BPS
        cost = (real_price - modelled) * quantity if side == "buy" else (modelled - real_price) * quantity
        row.update(
            modelled_raw_price=str(raw),
            modelled_price=str(modelled),
            modelled_fee=str(modelled_fee),
            slippage_bps=str(audit_round(bps, BPS_QUANTUM)),
            slippage_cost=str(audit_round(cost)),
            fee_drift=str(audit_round(real_fee - modelled_fee)),
            note=note,
        )
        fills.append(row)
    return fills


def _modelled_raw(
    position: Position, side: str, candle: tuple[Decimal, Decimal, Decimal]
) -> tuple[Decimal, str]:
    """The price the engine fills at before slippage: the day's open for an entry and a signal, maximum-holding or
    manual exit; for a risk exit, what :func:`trading.engine.rules.risk_exit_code` gives on the day's candle with
    the position's levels (the level, or the open when it gapped through)."""
    open_, high, low = candle
    if side == "buy" or position.exit_reason not in RISK_EXITS:
        return open_, ""
    nan = float("nan")
    levels = {
        ExitReason.STOP_LOSS.value: position.stop_loss_price,
        ExitReason.TAKE_PROFIT.value: position.take_profit_price,
        ExitReason.TRAILING_STOP.value: position.trailing_stop_price,
    }
    code, raw = risk_exit_code(
        float(open_),
        float(high),
        float(low),
        nan if levels["stop_loss"] is None else float(levels["stop_loss"]),
        nan if levels["take_profit"] is None else float(levels["take_profit"]),
        nan if levels["trailing_stop"] is None else float(levels["trailing_stop"]),
    )
    if code != NO_EXIT:
        return to_decimal(raw), ""
    level = levels.get(position.exit_reason)
    if level is None:
        return open_, f"the {position.exit_reason} has no level on the position: modelled at the open"
    return (
        level,
        f"the day's stored candle did not cross the {position.exit_reason} level: modelled at the level",
    )
