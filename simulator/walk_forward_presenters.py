"""What the walk-forward pages show (:mod:`simulator.views.results`): the folds table, the in-sample and
out-of-sample statistics side by side, the parameters' stability, and the stitched curve's chart data."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from simulator.display import DASH, statistic_class, statistic_label, statistic_text
from simulator.models import WalkForward
from simulator.presenters import equity_chart_data
from trading.engine.vocabulary import STATISTICS


@dataclass(frozen=True)
class FoldRow:
    """One line of the folds table, as text."""

    number: int
    train: str
    test: str
    chosen: str
    in_sample: str
    out_of_sample_return: str
    out_of_sample_css: str
    efficiency: str
    deflated_sharpe: str = DASH


@dataclass(frozen=True)
class OverallRow:
    """One statistic, in-sample (mean over the folds) beside out-of-sample (the stitched account)."""

    key: str
    label: str
    in_sample: str
    in_sample_css: str
    out_of_sample: str
    out_of_sample_css: str


def efficiency_text(value: Any) -> str:
    """A walk-forward efficiency (a plain ratio, 0.5 = half the in-sample annual return) or a dash."""
    return DASH if value is None else f"{float(value):,.2f}"


def values_text(values: dict[str, Any]) -> str:
    """``{"params.fast": 10.0}`` -> ``params.fast = 10``."""
    return ", ".join(f"{path} = {float(value):g}" for path, value in values.items())


def fold_rows(record: WalkForward, currency: str) -> list[FoldRow]:
    """The folds table of a finished walk-forward (empty before)."""
    rows = []
    for fold in (record.result or {}).get("folds", []):
        oos = fold.get("out_of_sample_statistics") or {}
        total = oos.get("total_return_ratio")
        rows.append(
            FoldRow(
                number=int(fold["index"]) + 1,
                train=f"{fold['train']['start']} to {fold['train']['end']}",
                test=f"{fold['test']['start']} to {fold['test']['end']}",
                chosen=values_text(fold.get("chosen") or {}),
                in_sample=statistic_text(record.statistic, fold.get("in_sample_statistic"), currency),
                out_of_sample_return=statistic_text("total_return_ratio", total),
                out_of_sample_css=statistic_class("total_return_ratio", total),
                efficiency=efficiency_text(fold.get("efficiency")),
                deflated_sharpe=DASH
                if fold.get("deflated_sharpe_ratio") is None
                else f"{float(fold['deflated_sharpe_ratio']):.2f}",
            )
        )
    return rows


def overall_rows(record: WalkForward, currency: str) -> list[OverallRow]:
    """Every statistic, in-sample beside out-of-sample (empty before the walk-forward is done)."""
    statistics = (record.result or {}).get("statistics")
    if not statistics:
        return []
    rows = []
    for statistic in STATISTICS:
        key = statistic.key
        inside = statistics["in_sample"].get(key)
        outside = statistics["out_of_sample"].get(key)
        rows.append(
            OverallRow(
                key=key,
                label=statistic_label(key),
                in_sample=statistic_text(key, inside, currency),
                in_sample_css=statistic_class(key, inside),
                out_of_sample=statistic_text(key, outside, currency),
                out_of_sample_css=statistic_class(key, outside),
            )
        )
    return rows


def walk_forward_chart(record: WalkForward) -> dict[str, Any] | None:
    """The stitched out-of-sample curve for the run page's equity and drawdown charts (``json_script``
    ``chart-data``: ``{"equity": ...}``, :func:`simulator.presenters.equity_chart_data`), or None before it is
    done."""
    curve = (record.result or {}).get("curve")
    return None if not curve else {"equity": equity_chart_data(curve)}
