"""What a run's risk limits did (docs/criteria.md "Risk limits"), as the JSON a simulation keeps in
``statistics["limits"]`` and its page shows: the entry signals each limit refused, and the halts."""

from __future__ import annotations

from collections import Counter
from typing import Any

from trading.engine.backtest import BacktestResult
from trading.selectors import from_seconds, to_decimal

#: The most refused entry signals kept row by row (a halt over a year of minutes refuses many); the counts per
#: limit always cover every one.
MAX_REFUSAL_ROWS = 1_000


def limits_as_json(result: BacktestResult, names: dict[str, str]) -> dict[str, Any]:
    """The refusals and halts of ``result``.

    Args:
        result: a backtest's result.
        names: symbol -> CoinGecko id of the run's instruments.

    Returns:
        ``{"refused": {limit: count}, "refusals": [{"at", "symbol", "instrument", "limit"}, ...] (at most
        MAX_REFUSAL_ROWS, time order), "refusals_total": int, "halts": [{"at", "limit", "began", "equity",
        "reference_equity"}, ...]}``; times are ISO datetimes (UTC), amounts decimal strings (quote currency).
        Empty lists and counts when the criteria have no limits.
    """
    return {
        "refused": dict(Counter(refusal.limit.value for refusal in result.refusals)),
        "refusals_total": len(result.refusals),
        "refusals": [
            {
                "at": from_seconds(refusal.boundary_seconds).isoformat(),
                "symbol": refusal.symbol,
                "instrument": names.get(refusal.symbol, refusal.symbol),
                "limit": refusal.limit.value,
            }
            for refusal in result.refusals[:MAX_REFUSAL_ROWS]
        ],
        "halts": [
            {
                "at": from_seconds(halt.boundary_seconds).isoformat(),
                "limit": halt.limit.value,
                "began": halt.began,
                "equity": format(to_decimal(halt.equity).normalize(), "f"),
                "reference_equity": format(to_decimal(halt.reference_equity).normalize(), "f"),
            }
            for halt in result.halts
        ],
    }
