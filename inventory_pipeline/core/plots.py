"""Plots a person looks at: forecast fan charts."""

from __future__ import annotations

from pathlib import Path

import pandas as pd


def plot_forecasts(history: pd.DataFrame, forecast: pd.DataFrame, path: str | Path, n_series: int = 6, days: int = 90) -> Path:
    """History (last `days`) and the forecast mean with p10-p90 and p95 bands for the highest-volume series."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    top = forecast.groupby(["location_id", "sku_id"])["mean"].sum().nlargest(n_series).index
    fig, axes = plt.subplots(len(top), 1, figsize=(10, 2.2 * max(len(top), 1)), squeeze=False)
    h = history.copy()
    h["date"] = pd.to_datetime(h["date"])
    for ax, (loc, sku) in zip(axes[:, 0], top):
        hs = h[(h["location_id"] == loc) & (h["sku_id"] == sku)].sort_values("date").tail(days)
        fs = forecast[(forecast["location_id"] == loc) & (forecast["sku_id"] == sku)].sort_values("date")
        ax.plot(hs["date"], hs["units_sold"], color="0.3", lw=1, label="units sold")
        if "is_stockout" in hs:
            so = hs[hs["is_stockout"]]
            ax.scatter(so["date"], so["units_sold"], color="red", s=10, label="stockout day", zorder=3)
        ax.fill_between(fs["date"], fs["p10"], fs["p90"], alpha=0.3, color="tab:blue", label="p10-p90")
        ax.plot(fs["date"], fs["p95"], color="tab:blue", lw=0.8, ls="--", label="p95")
        ax.plot(fs["date"], fs["mean"], color="tab:blue", lw=1.5, label=f"mean ({fs['model'].iloc[0]})")
        ax.set_title(f"{loc} / {sku} ({fs['demand_class'].iloc[0]})", fontsize=9)
        ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path
