"""Plots a person looks at: forecast fan charts."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pandas as pd

from .dates import as_dates


def plot_forecasts(
    history: pd.DataFrame, forecast: pd.DataFrame, path: str | Path, n_series: int = 6, days: int = 90
) -> Path:
    """History (last `days`) and the forecast mean with p10-p90 and p95 bands for the highest-volume series."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    top = forecast.groupby(["location_id", "sku_id"])["mean"].sum().nlargest(n_series).index
    fig, axes = plt.subplots(len(top), 1, figsize=(10, 2.2 * max(len(top), 1)), squeeze=False)
    # the plotted series' rows first (an M5 history is ~20M rows: copying and comparing all of it
    # six times took ~7 s of the forecast stage), then the per-series filters on those
    rows = history[history["sku_id"].isin(top.get_level_values("sku_id"))]
    h = rows[rows["location_id"].isin(top.get_level_values("location_id"))].copy()
    h["date"] = as_dates(h["date"])
    f = forecast[forecast["sku_id"].isin(top.get_level_values("sku_id"))]  # likewise (~0.9 M rows at M5)
    for ax, (loc, sku) in zip(axes[:, 0], top):
        hs = h[(h["location_id"] == loc) & (h["sku_id"] == sku)].sort_values("date").tail(days)
        fs = f[(f["location_id"] == loc) & (f["sku_id"] == sku)].sort_values("date")
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


def headless_pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    fig.clf()
    return path


COLOURS = {"baseline": "tab:orange", "pipeline": "tab:blue"}


def plot_frontier(frontier: dict, path: str | Path) -> Path:
    """Stockout rate against average inventory value, one curve per policy, points labelled by
    the knob swept (baseline safety days, pipeline service level)."""
    plt = headless_pyplot()
    fig, ax = plt.subplots(figsize=(8, 5))
    labels = {
        "safety_days": lambda v: f"{v:g} d",
        "service_level": lambda v: v if isinstance(v, str) else f"{100 * v:.4g}%",
    }
    for pol, knob in (("baseline", "safety_days"), ("pipeline", "service_level")):
        pts = sorted(frontier[pol], key=lambda q: q["avg_inventory_value"])
        x = [q["avg_inventory_value"] for q in pts]
        y = [q["stockout_rate"] * 100 for q in pts]
        ax.plot(x, y, "o-", color=COLOURS[pol], label=f"{pol} ({knob.replace('_', ' ')})")
        for q, xi, yi in zip(pts, x, y):
            ax.annotate(labels[knob](q[knob]), (xi, yi), textcoords="offset points", xytext=(4, 4), fontsize=8)
    pp = frontier.get("pipeline_policy")
    if pp:  # the policy file's own service levels (per class or cost-optimal)
        ax.plot(
            [pp["avg_inventory_value"]],
            [pp["stockout_rate"] * 100],
            "*",
            ms=14,
            color=COLOURS["pipeline"],
            label=f"pipeline, {pp['service_level']}",
        )
    ax.set_xlabel("average inventory value (stores + DCs, at cost)")
    ax.set_ylabel("stockout rate (% of active store-SKU-days, log scale)")
    ax.set_yscale("log")
    ax.set_title("Trade-off frontier: lower-left is better")
    ax.grid(alpha=0.3)
    ax.legend()
    out = save_figure(fig, path)
    plt.close(fig)
    return out


def plot_inventory(daily: dict[str, pd.DataFrame], path: str | Path) -> Path:
    """Inventory value (stores, DCs) and stockout share per day, per policy."""
    plt = headless_pyplot()
    fig, axes = plt.subplots(2, 1, figsize=(10, 6), sharex=True)
    for pol, d in daily.items():
        c = COLOURS.get(pol)
        axes[0].plot(d["date"], d["store_inventory_value"], color=c, label=f"{pol} stores")
        axes[0].plot(d["date"], d["dc_inventory_value"], color=c, ls="--", label=f"{pol} DCs")
        axes[1].plot(d["date"], 100 * d["stockouts"] / d["active"].clip(lower=1), color=c, label=pol)
    axes[0].set_ylabel("inventory value at cost")
    axes[0].legend(fontsize=8, ncol=2)
    axes[1].set_ylabel("stockout share %")
    axes[1].legend(fontsize=8)
    for ax in axes:
        ax.grid(alpha=0.3)
    out = save_figure(fig, path)
    plt.close(fig)
    return out


def plot_twin_series(samples: dict[str, dict], labels: list[tuple[str, str]], path: str | Path) -> Path:
    """Per sample store x SKU: true demand, each policy's 1-day-ahead forecast and its stock."""
    plt = headless_pyplot()
    keys = list(next(iter(samples.values())).keys())
    fig, axes = plt.subplots(len(keys), 1, figsize=(10, 2.4 * max(len(keys), 1)), squeeze=False)
    for ax, key, (loc, sku) in zip(axes[:, 0], keys, labels):
        first = next(iter(samples.values()))[key]
        stock = ax.twinx()  # stock on its own axis: it is an order of magnitude above daily demand
        ax.plot(first["date"], first["demand"], color="0.3", lw=1, label="true demand")
        for pol, s in samples.items():
            d = s[key]
            ax.plot(d["date"], d["forecast_h1"], color=COLOURS.get(pol), lw=1.2, label=f"{pol} forecast (1 day ahead)")
            stock.plot(d["date"], d["on_hand"], color=COLOURS.get(pol), lw=0.8, ls=":", label=f"{pol} on hand (right)")
        ax.set_ylabel("units / day")
        stock.set_ylabel("on hand")
        ax.set_title(f"{loc} / {sku}", fontsize=9)
        h1, l1 = ax.get_legend_handles_labels()
        h2, l2 = stock.get_legend_handles_labels()
        ax.legend(h1 + h2, l1 + l2, fontsize=7, loc="upper left", ncol=3)
    out = save_figure(fig, path)
    plt.close(fig)
    return out


def plot_cv_once(points: pd.DataFrame | None, path: str | Path, drawn: str | Path) -> Path:
    """`plot_cv` at `path`, drawn once per set of CV points: each drawing is kept in the folder
    `drawn` under the points' content hash, and a plan that reuses an earlier plan's
    cross-validation (policy refit_every_days) copies it instead of drawing the same figure again
    (~0.5 s of an M5 reuse day)."""
    from .tracking import fingerprint

    kept = Path(drawn) / f"{fingerprint(points)}.png"
    if not kept.is_file():
        kept.parent.mkdir(parents=True, exist_ok=True)
        part = kept.with_name(f".{kept.stem}.{os.getpid()}.png")  # whole or absent for a concurrent run
        plot_cv(points, part)
        os.replace(part, kept)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(kept, path)
    return path


def plot_cv(points: pd.DataFrame, path: str | Path, n_series: int = 4) -> Path:
    """Cross-validation forecasts against (censoring-corrected) demand, per class: the largest
    series of each class, every CV origin."""
    plt = headless_pyplot()
    if points is None or points.empty:
        fig, ax = plt.subplots(figsize=(6, 2))
        ax.text(0.5, 0.5, "no cross-validation points", ha="center")
        out = save_figure(fig, path)
        plt.close(fig)
        return out
    pick = (
        points.groupby(["demand_class", "unique_id"])["demand"]
        .sum()
        .reset_index()
        .sort_values("demand", ascending=False)
        .groupby("demand_class")
        .head(1)["unique_id"]
        .head(n_series)
    )
    fig, axes = plt.subplots(len(pick), 1, figsize=(10, 2.3 * max(len(pick), 1)), squeeze=False)
    for ax, uid in zip(axes[:, 0], pick):
        s = points[points["unique_id"] == uid].sort_values("ds")
        ax.plot(s["ds"], s["demand"], color="0.3", lw=1, label="demand (corrected)")
        for c, g in s.groupby("cutoff"):
            ax.plot(g["ds"], g["forecast"], color="tab:blue", lw=1.4)
            ax.axvline(c, color="tab:blue", lw=0.5, ls=":")
        ax.set_title(f"{uid} ({s['demand_class'].iloc[0]}, {s['model'].iloc[0]}): rolling-origin CV", fontsize=9)
        ax.legend(fontsize=7, loc="upper left")
    out = save_figure(fig, path)
    plt.close(fig)
    return out
