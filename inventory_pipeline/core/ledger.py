"""Inventory ledger reconciliation (core): does the landing zone's on-hand agree with the flows?

For every location x SKU on day D the stock ledger says

    expected_on_hand(D) = on_hand(D-1) + received(D) - sold(D) - shipped_out(D)

where `received` are the day's receipts (supplier -> DC, DC -> store and store -> store
deliveries), `sold` the POS units and `shipped_out` the DC -> store replenishments and
store -> store transfers that left the location on D (open orders dated D whose source is that
location: contract v1 records an inter-location move as an open order from its ship date until it
is received). A location x SKU missing from an inventory file holds 0 units.

A line whose |on_hand - expected| exceeds `abs_tolerance + rel_tolerance x expected` is a
discrepancy (shrinkage, a miscount, a lost file, a receipt booked twice); every one is listed for
reconciliation. A discrepancy on a location x SKU that a quarantined input row of the day
belongs to (its sales, count, receipt or move of D, or its count of D-1, was not read) is
*explained*: the ledger could not see that row, so the line says which file and row and is not
counted against the tolerance. The day passes when unexplained discrepancies are at most
`max_share` of the lines.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .dates import as_dates

KEY = ["location_id", "sku_id"]
LEDGER_COLUMNS = [
    "date",
    "location_id",
    "sku_id",
    "opening_on_hand",
    "received",
    "sold",
    "shipped_out",
    "expected_on_hand",
    "on_hand",
    "discrepancy",
    "tolerance",
    "flagged",
    "explained",
    "explanation",
]


@dataclass(frozen=True)
class LedgerTolerance:
    abs_units: float = 0.0
    rel: float = 0.0
    max_share: float = 0.0


def _sum(df: pd.DataFrame | None, col: str, keys=KEY) -> pd.Series:
    if df is None or not len(df):
        return pd.Series(dtype=float, index=pd.MultiIndex.from_tuples([], names=keys))
    return df.assign(**{c: df[c].astype(str) for c in keys}).groupby(keys)[col].sum().astype(float)


def reconcile_ledger(
    date: str,
    opening: pd.DataFrame | None,
    closing: pd.DataFrame,
    receipts: pd.DataFrame | None,
    sales: pd.DataFrame | None,
    open_orders: pd.DataFrame | None,
    tol: LedgerTolerance = LedgerTolerance(),
    quarantined: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """One row per location x SKU seen in any of the inputs (LEDGER_COLUMNS), for day `date`.

    `opening` is the inventory file of D-1 (None: the first day, which cannot be reconciled and
    returns an empty table), `closing` the inventory of D, `open_orders` the open-order snapshot
    of D (rows with order_date == D are the moves that left their source that day).
    `quarantined` (location_id, sku_id, note; core.ingestion.quarantined_items) are the items of
    the quarantined rows of those files: their flagged lines are `explained` by the note."""
    if opening is None:
        return pd.DataFrame(columns=LEDGER_COLUMNS)
    shipped = None
    if open_orders is not None and len(open_orders):
        oo = open_orders[as_dates(open_orders["order_date"]) == pd.Timestamp(date)]
        shipped = oo.rename(columns={"location_id": "to_location_id", "source_id": "location_id"})
    parts = {
        "opening_on_hand": _sum(opening, "on_hand"),
        "received": _sum(receipts, "units_received"),
        "sold": _sum(sales, "units_sold"),
        "shipped_out": _sum(shipped, "units"),
        "on_hand": _sum(closing, "on_hand"),
    }
    idx = parts["opening_on_hand"].index
    for s in parts.values():
        idx = idx.union(s.index)
    # an open order's source can be a supplier: only locations of the inventory files are ledgers
    known = set(opening["location_id"].astype(str)) | set(closing["location_id"].astype(str))
    idx = idx[idx.get_level_values(0).isin(known)]
    led = pd.DataFrame({k: v.reindex(idx).fillna(0.0) for k, v in parts.items()}, index=idx).reset_index()
    led["expected_on_hand"] = led["opening_on_hand"] + led["received"] - led["sold"] - led["shipped_out"]
    led["discrepancy"] = led["on_hand"] - led["expected_on_hand"]
    led["tolerance"] = tol.abs_units + tol.rel * led["expected_on_hand"].abs()
    led["flagged"] = led["discrepancy"].abs() > led["tolerance"] + 1e-9
    led["date"] = pd.Timestamp(date)
    f = led["flagged"]
    led["explained"] = False
    led["explanation"] = ""
    if not f.any():
        return led[LEDGER_COLUMNS].sort_values(KEY, ignore_index=True)
    notes = quarantine_notes(led, quarantined)
    led.loc[f, "explanation"] = (
        "on hand "
        + led.loc[f, "on_hand"].map("{:g}".format)
        + " but the ledger says "
        + led.loc[f, "expected_on_hand"].map("{:g}".format)
        + " (opening "
        + led.loc[f, "opening_on_hand"].map("{:g}".format)
        + " + received "
        + led.loc[f, "received"].map("{:g}".format)
        + " - sold "
        + led.loc[f, "sold"].map("{:g}".format)
        + " - shipped "
        + led.loc[f, "shipped_out"].map("{:g}".format)
        + "): "
        + np.where(led.loc[f, "discrepancy"] < 0, "missing ", "extra ")
        + led.loc[f, "discrepancy"].abs().map("{:g}".format)
        + " units"
    )
    ex = f & notes.ne("")
    led["explained"] = ex
    led.loc[ex, "explanation"] = "explained by " + notes[ex] + "; " + led.loc[ex, "explanation"]
    return led[LEDGER_COLUMNS].sort_values(KEY, ignore_index=True)


def quarantine_notes(led: pd.DataFrame, quarantined: pd.DataFrame | None, limit: int = 3) -> pd.Series:
    """Per line of `led` (location_id, sku_id): the notes of the quarantined rows of its item ("" if
    none). A row naming only a SKU (or only a location) concerns every location (SKU) of it."""
    out = pd.Series("", index=led.index, dtype=object)
    if quarantined is None or not len(quarantined):
        return out
    q = quarantined.reindex(columns=["location_id", "sku_id", "note"]).reset_index(drop=True)
    q["_order"] = range(len(q))
    lines = led[KEY].astype(str).assign(_line=led.index)
    has_loc, has_sku = q["location_id"].notna(), q["sku_id"].notna()
    parts = []
    for mask, on in (
        (has_loc & has_sku, KEY),
        (~has_loc & has_sku, ["sku_id"]),
        (has_loc & ~has_sku, ["location_id"]),
    ):
        if mask.any():
            sub = q.loc[mask, [*on, "note", "_order"]].astype({c: str for c in on})
            parts.append(lines.merge(sub, on=on)[["_line", "note", "_order"]])
    notes = join_notes(parts, limit)
    out.loc[notes.index] = notes.astype(str)
    return out


def join_notes(parts: list[pd.DataFrame], limit: int = 3) -> pd.Series:
    """(_line, note, _order) matches -> per line: its distinct notes in order, at most `limit`."""
    if not parts:
        return pd.Series(dtype=object)
    m = pd.concat(parts, ignore_index=True).sort_values("_order", kind="stable")
    m = m.drop_duplicates(["_line", "note"])

    def text(n: pd.Series) -> str:
        n = list(n)
        more = f" (+{len(n) - limit} more)" if len(n) > limit else ""
        return "; ".join(n[:limit]) + more

    return m.groupby("_line", sort=False)["note"].agg(text)


def ledger_summary(led: pd.DataFrame, tol: LedgerTolerance) -> dict:
    """Counts of the day's ledger: `discrepancies` are the unexplained flagged lines (what the
    tolerance judges), `explained` the flagged lines a quarantined input row accounts for."""
    n = len(led)
    explained = led["explained"].astype(bool) if n and "explained" in led else pd.Series(False, index=led.index)
    flagged = int((led["flagged"].astype(bool) & ~explained).sum()) if n else 0
    share = flagged / n if n else 0.0
    return {
        "lines": n,
        "discrepancies": flagged,
        "explained": int((led["flagged"].astype(bool) & explained).sum()) if n else 0,
        "discrepancy_share": round(share, 6),
        "units_missing": float(-led.loc[led["discrepancy"] < 0, "discrepancy"].sum()) if n else 0.0,
        "units_extra": float(led.loc[led["discrepancy"] > 0, "discrepancy"].sum()) if n else 0.0,
        "passed": share <= tol.max_share + 1e-12,
        "max_share": tol.max_share,
    }
