"""Reconciliation of what was exported with what happened (core).

The pipeline's own exports are a claim, not a fact: an ERP can reject or miss a batch, and a
day's outbox can be dropped on its way. Two reconciliations compare the claim with what the
landing zone observed and say where they disagree.

Prices. `core.pricing.price_book` is the latest exported price change per store x SKU (the price
the project believes is on the shelf from its effective date on). Landing contract v1 has no
regular-price column: `pos_sales.unit_price` is the price paid, and `on_promo` says whether a
promotion was running. So the observed regular (shelf) price of a store x SKU is its
`unit_price` on its latest day with a sale (`price_observed`) that was not a promotion day; a
promotion day never counts, in either direction. A book entry is judged only when that latest
regular observation is at least `grace_days` after the entry's effective date (before it, the
shelf rightly showed the previous price; on the effective day itself a store may relabel during
the day and a daily `unit_price` may mix both prices); it disagrees when the two differ by more
than `tolerance`. The reconciled book takes the observed price for a disagreeing entry and keeps
its effective date (the day the change was attempted: the pricing stage's minimum days between
changes then spaces out a re-try instead of re-sending a rejected change every morning).

An ERP rejects or misses whole batches more often than single lines, and a slow mover or an item
on promotion may not show its regular price for weeks. So the entries of one batch (one plan's
exported changes, one effective date) are judged together: when at least `min_batch_evidence` of
them were judged and every one still shows the price from before its change (the decision's
old_price), the batch was not applied, and its entries without an observation take their
old_price too (`basis` "batch_not_applied"). Any other entry with no regular observation since
its effective date keeps the book's price: nothing contradicts it.

Orders. An exported order line (purchase order, DC -> store replenishment, store -> store
transfer) with order date `o` must appear in the ERP: in an open-order snapshot as an order with
the same destination location, SKU and order date, or as a receipt of such an order (a receipt
whose order was never in a snapshot, e.g. delivered on its order day, counts when it is of the
same location x SKU and dated within `grace_days` of `o`). A line still absent `grace_days` after
its order date is reported as missing in the ERP. Lines are matched by (location, SKU, order
date), not by id: the ERP numbers its own orders. Lines older than `lookback_days` are no longer
judged.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .dates import as_dates
from .keys import key_codes
from .policy import ReconciliationPolicy

KEY = ["location_id", "sku_id"]
PRICE_TOLERANCE = 0.005  # currency units: prices are compared at cent precision
# the defaults of the policy file's `reconciliation` section (set there; documented in ReconciliationPolicy)
_DEFAULTS = ReconciliationPolicy()
PRICE_GRACE_DAYS = _DEFAULTS.price_grace_days
BATCH_MIN_EVIDENCE = _DEFAULTS.batch_min_evidence
ORDER_GRACE_DAYS = _DEFAULTS.order_grace_days
ORDER_LOOKBACK_DAYS = _DEFAULTS.order_lookback_days
ORDER_TYPES = ("purchase_order", "store_replenishment", "transfer")

PRICE_DISAGREEMENT_COLUMNS = [
    "location_id",
    "sku_id",
    "book_price",
    "observed_price",
    "corrected_price",
    "difference",
    "basis",
    "book_effective_date",
    "observed_date",
    "observed_since",
    "decision_id",
]
MISSING_ORDER_COLUMNS = [
    "decision_id",
    "decision_type",
    "plan_date",
    "sku_id",
    "source_id",
    "location_id",
    "units",
    "order_date",
    "days_since_order",
]


def observed_regular_prices(history: pd.DataFrame, plan_date: str) -> pd.DataFrame:
    """Per store x SKU the latest regular (non-promotion) price observed on or before `plan_date`:
    location_id, sku_id, observed_price, observed_date (that day) and observed_since (the first
    day of the latest unbroken run of regular observations at that price). `history`: rows of
    fct_daily_demand (date, location_id, sku_id, unit_price, on_promo, and price_observed where
    the price was filled in on days without a sale)."""
    cols = [
        "location_id",
        "sku_id",
        "observed_price",
        "observed_date",
        "observed_since",
    ]
    if history is None or not len(history):
        return pd.DataFrame(columns=cols)
    h = history
    when = as_dates(h["date"])
    keep = (when <= pd.Timestamp(plan_date)) & (h["on_promo"].fillna(0).astype(int) == 0) & h["unit_price"].notna()
    if "price_observed" in h:
        keep &= h["price_observed"].fillna(False).astype(bool)
    rows = np.flatnonzero(keep.to_numpy())
    if not len(rows):
        return pd.DataFrame(columns=cols)
    # integer codes and one sort of (store x SKU, date): ~3M rows at M5 scale, no string sorts or merges
    loc_codes, locs = key_codes(h["location_id"], rows, as_str=True)
    sku_codes, skus = key_codes(h["sku_id"], rows, as_str=True)
    pair = loc_codes.astype(np.int64) * len(skus) + sku_codes
    date = when.to_numpy()[rows]
    order = np.lexsort((date, pair))
    pair, date, price = pair[order], date[order], h["unit_price"].to_numpy(float)[rows][order]
    start = np.flatnonzero(np.r_[True, pair[1:] != pair[:-1]])
    end = np.r_[start[1:], len(pair)] - 1
    group = np.repeat(np.arange(len(start)), np.diff(np.r_[start, len(pair)]))
    other = np.abs(price - price[end][group]) > PRICE_TOLERANCE
    # the last day at another regular price; the run at the latest price starts the row after it
    last_other = np.full(len(start), -1)
    np.maximum.at(last_other, group[other], np.flatnonzero(other))
    since = np.where(last_other >= 0, last_other + 1, start)
    return pd.DataFrame(
        {
            "location_id": np.asarray(locs, dtype=object)[pair[end] // len(skus)],
            "sku_id": np.asarray(skus, dtype=object)[pair[end] % len(skus)],
            "observed_price": price[end],
            "observed_date": date[end],
            "observed_since": date[since],
        }
    )[cols]


def reconcile_prices(
    book: pd.DataFrame,
    observed: pd.DataFrame,
    tolerance: float = PRICE_TOLERANCE,
    grace_days: int = PRICE_GRACE_DAYS,
    min_batch_evidence: int = BATCH_MIN_EVIDENCE,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(reconciled book, disagreements). `book`: `price_book` output (location_id, sku_id, price,
    effective_date), with decision_id and old_price where the caller kept them
    (`price_book_with_ids`); `observed`: `observed_regular_prices`.

    The reconciled book has the book's rows and columns: the price of an entry the shelf
    contradicts is the observed one (`price_source` "observed"); an unobserved entry of a batch
    the ERP did not apply takes the decision's old_price ("batch_not_applied"); every other entry
    keeps the book's price ("book"). Disagreements: PRICE_DISAGREEMENT_COLUMNS, one row per
    corrected store x SKU, `basis` saying which of the two corrections it is."""
    out = book.copy()
    out["price_source"] = "book"
    if not len(book) or observed is None or not len(observed):
        return out, pd.DataFrame(columns=PRICE_DISAGREEMENT_COLUMNS)
    key = out[KEY].astype(str)
    obs = observed.assign(**{c: observed[c].astype(str) for c in KEY}).set_index(KEY)
    idx = pd.MultiIndex.from_frame(key)
    seen = obs["observed_price"].reindex(idx).to_numpy(float)
    seen_on = as_dates(obs["observed_date"].reindex(idx)).to_numpy()
    eff = as_dates(out["effective_date"]).to_numpy()
    book_price = out["price"].to_numpy(float, copy=True)
    before = out["old_price"].to_numpy(float) if "old_price" in out else np.full(len(out), np.nan)
    with np.errstate(invalid="ignore"):
        # judged only where the shelf was seen at a regular price `grace_days` after the effective date
        judged = ~np.isnan(seen) & (seen_on >= eff + np.timedelta64(grace_days, "D"))
        disagree = judged & (np.abs(seen - book_price) > tolerance)
        unchanged = judged & (np.abs(seen - before) <= tolerance)  # the shelf still shows the price before
    # a batch (the changes of one plan, one effective date) not applied: enough of its entries were
    # judged and every one of them still shows the price before the change
    batch = pd.DataFrame({"eff": eff, "judged": judged, "unchanged": unchanged}).groupby("eff")[["judged", "unchanged"]]
    tally = batch.transform("sum")
    dropped = (tally["judged"].to_numpy() >= min_batch_evidence) & (tally["unchanged"] == tally["judged"]).to_numpy()
    inferred = dropped & ~judged & ~np.isnan(before) & (np.abs(before - book_price) > tolerance)
    fixed = np.where(disagree, seen, np.where(inferred, before, book_price))
    out["price"] = fixed
    out.loc[disagree, "price_source"] = "observed"
    out.loc[inferred, "price_source"] = "batch_not_applied"
    rows = disagree | inferred
    since = as_dates(obs["observed_since"].reindex(idx)).to_numpy()
    d = pd.DataFrame(
        {
            "location_id": key["location_id"].to_numpy()[rows],
            "sku_id": key["sku_id"].to_numpy()[rows],
            "book_price": book_price[rows],
            "observed_price": np.where(disagree, seen, np.nan)[rows],
            "corrected_price": fixed[rows],
            "difference": np.round(fixed[rows] - book_price[rows], 4),
            "basis": np.where(disagree, "observed", "batch_not_applied")[rows],
            "book_effective_date": eff[rows],
            "observed_date": np.where(disagree, seen_on, np.datetime64("NaT"))[rows],
            "observed_since": np.where(disagree, since, np.datetime64("NaT"))[rows],
            "decision_id": (
                out["decision_id"].astype(str).to_numpy()[rows]
                if "decision_id" in out
                else np.full(int(rows.sum()), "", dtype=object)
            ),
        }
    )
    return out.reset_index(drop=True), d.sort_values(KEY, ignore_index=True)[PRICE_DISAGREEMENT_COLUMNS]


def price_book_with_ids(decisions: pd.DataFrame | None, book: pd.DataFrame) -> pd.DataFrame:
    """`book` with the decision_id and old_price of the exported change each entry comes from (the
    decision log rows `price_book` read: same store x SKU, effective the day after their plan date)."""
    b = book.assign(effective_date=as_dates(book["effective_date"]), **{c: book[c].astype(str) for c in KEY})
    b = b.drop(columns=[c for c in ("decision_id", "old_price") if c in b])
    if decisions is None or not len(b) or "decision_id" not in decisions:
        return b.assign(decision_id="", old_price=np.nan)
    d = decisions[decisions["decision_type"] == "price_change"]
    d = d.assign(
        effective_date=as_dates(d["plan_date"]) + pd.Timedelta(days=1),
        old_price=d["old_price"].astype(float) if "old_price" in d else np.nan,
        **{c: d[c].astype(str) for c in KEY},
    )
    if "status" in d:  # the exported ones, as price_book keeps
        from .decisions import EXPORTABLE

        d = d[d["status"].isin(EXPORTABLE)]
    d = d[[*KEY, "effective_date", "decision_id", "old_price"]].drop_duplicates([*KEY, "effective_date"], keep="last")
    out = b.merge(d, on=[*KEY, "effective_date"], how="left")
    out["decision_id"] = out["decision_id"].fillna("")
    return out


def reconcile_orders(
    exported: pd.DataFrame,
    open_orders: pd.DataFrame | None,
    receipts: pd.DataFrame | None,
    as_of: str,
    grace_days: int = ORDER_GRACE_DAYS,
    lookback_days: int = ORDER_LOOKBACK_DAYS,
) -> pd.DataFrame:
    """Exported order lines the ERP does not show (MISSING_ORDER_COLUMNS), judged on `as_of`.

    `exported`: decision-log rows of exported decisions (decision_id, decision_type, plan_date,
    sku_id, source_id, location_id, units, order_date; other types are ignored); `open_orders`:
    the ERP's open-order snapshots of the days up to `as_of` (order_id, order_date, location_id,
    sku_id); `receipts`: its receipts over the same days (date, order_id, location_id, sku_id)."""
    if exported is None or not len(exported):
        return pd.DataFrame(columns=MISSING_ORDER_COLUMNS)
    day = pd.Timestamp(as_of)
    e = exported[exported["decision_type"].isin(ORDER_TYPES)]
    e = e.assign(
        order_date=as_dates(e["order_date"]).dt.normalize(),
        **{c: e[c].astype(str) for c in KEY},
    )
    e = e[
        (e["order_date"] <= day - pd.Timedelta(days=grace_days))
        & (e["order_date"] > day - pd.Timedelta(days=lookback_days))
    ]
    if not len(e):
        return pd.DataFrame(columns=MISSING_ORDER_COLUMNS)
    seen = []  # (location, sku, order date) keys the ERP shows
    oo = None
    if open_orders is not None and len(open_orders):
        oo = open_orders.assign(
            order_date=as_dates(open_orders["order_date"]).dt.normalize(),
            order_id=open_orders["order_id"].astype(str),
            **{c: open_orders[c].astype(str) for c in KEY},
        ).drop_duplicates("order_id")
        seen.append(oo[[*KEY, "order_date"]])
    if receipts is not None and len(receipts):
        r = receipts.assign(
            date=as_dates(receipts["date"]).dt.normalize(),
            order_id=receipts["order_id"].astype(str),
            **{c: receipts[c].astype(str) for c in KEY},
        )
        known = r["order_id"].isin(oo["order_id"]) if oo is not None else pd.Series(False, index=r.index)
        # a receipt of an order no snapshot showed: it matches an exported line of its location x
        # SKU ordered on its day or up to `grace_days` before
        unk = r.loc[~known, [*KEY, "date"]].drop_duplicates()
        cand = e[[*KEY, "order_date"]].drop_duplicates().merge(unk, on=KEY)
        lag = (cand["date"] - cand["order_date"]).dt.days
        seen.append(cand.loc[(lag >= 0) & (lag <= grace_days), [*KEY, "order_date"]])
    if seen:
        shown = pd.concat(seen, ignore_index=True).drop_duplicates().assign(_shown=True)
        e = e.merge(shown, on=[*KEY, "order_date"], how="left")
        e = e[e["_shown"].isna()]
    out = e.assign(days_since_order=(day - e["order_date"]).dt.days)
    return out.sort_values(["order_date", "decision_id"], ignore_index=True)[MISSING_ORDER_COLUMNS]


def disagreement_markdown(df: pd.DataFrame, n: int = 20) -> str:
    """The first `n` lines as a markdown table (dates as ISO days), or "none"."""
    if not len(df):
        return "none"
    h = df.head(n).copy()
    for c in h.columns:
        if pd.api.types.is_datetime64_any_dtype(h[c]):
            h[c] = h[c].dt.strftime("%Y-%m-%d")
    more = f"\n\n… and {len(df) - n} more" if len(df) > n else ""
    return h.to_markdown(index=False) + more
