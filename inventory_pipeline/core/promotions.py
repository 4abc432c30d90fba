"""Planned promotions (landing contract v1.1): the plan known at a date, and its daily expansion.

`daily/D/promotions.csv` is the promotion plan as merchandising knows it at the close of D, future
weeks included. Point in time:

- `promotion_plan(raw_promotions_by_file_date, plan_date)`: the plan for plan date D is the file of
  the latest daily folder <= D. A later file may change or cancel a promotion (a promotion missing
  from the later file is cancelled); a day without the file keeps the last plan; a backfill of D
  sees what was known at D, never a later revision. A file whose every row was quarantined is an
  empty plan (the quarantine check of `raw_promotions` reports it).
- `expand_promotions(plan, stores, products, start, end)`: one row per store x SKU x day inside
  [start, end] (DAILY_COLUMNS), a category row expanded to the category's SKUs, a blank location to
  every store; where two rows cover the same store x SKU x day the deeper discount wins (ties: the
  lower promo_id). This daily frame is the interface the forecast stage consumes.

Plain Python (no Dagster): the ingestion assets, dbt's `marts.fct_promotion_plan` and the in-memory
twin give the same answer.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np
import pandas as pd

from .dates import as_dates

PLAN_COLUMNS = ["promo_id", "sku_id", "category", "location_id", "start_date", "end_date", "discount_pct", "display"]
DAILY_COLUMNS = ["location_id", "sku_id", "date", "discount_pct", "display", "promo_id"]


def _day(x) -> pd.Timestamp:
    return pd.Timestamp(x).normalize()


def _plan_frame(df: pd.DataFrame | None) -> pd.DataFrame:
    """`df` with every PLAN_COLUMNS column (an absent optional one as null), typed; extra columns kept."""
    df = pd.DataFrame(columns=PLAN_COLUMNS) if df is None else df.copy()
    for c in PLAN_COLUMNS:
        if c not in df.columns:
            df[c] = None
    for c in ("start_date", "end_date"):
        df[c] = as_dates(df[c]).dt.normalize()
    for c in ("promo_id", "sku_id", "category", "location_id"):
        s = df[c].astype(object)
        df[c] = s.where(s.notna() & s.astype(str).str.strip().ne(""), None)
    df["discount_pct"] = pd.to_numeric(df["discount_pct"]).astype(float)
    df["display"] = pd.to_numeric(df["display"]).fillna(0).astype(int)
    return df


def plans_by_file_date(raw: pd.DataFrame, file_dates: Iterable[str] | None = None) -> dict[str, pd.DataFrame]:
    """The raw promotions table (rows with their file's `landing_date`, or `file_date`) as
    {file date: that file's rows}. `file_dates` are the days that had a file (IngestResult's
    `dates_by_file` values, `raw_promotions_files`): a file with no kept row is an empty plan, a day
    not listed keeps the previous plan. Without `file_dates`, the dates present in `raw`."""
    col = "landing_date" if "landing_date" in raw.columns else "file_date"
    keys = raw[col].map(lambda x: _day(x).date().isoformat()) if len(raw) else pd.Series(dtype=object)
    days = sorted({_day(d).date().isoformat() for d in file_dates} if file_dates is not None else set(keys))
    groups = dict(tuple(raw.groupby(keys.to_numpy(), sort=True))) if len(raw) else {}
    return {d: groups.get(d, raw.iloc[0:0]).drop(columns=[col]) for d in days}


def promotion_plan(
    raw_promotions_by_file_date: Mapping[str, pd.DataFrame] | pd.DataFrame,
    plan_date,
    file_dates: Iterable[str] | None = None,
) -> pd.DataFrame:
    """The promotion plan known at `plan_date` D: the rows of the latest file dated <= D.

    `raw_promotions_by_file_date` is {file date: that file's rows} (a day without the file is not a
    key) or the raw table itself (`landing_date` per row, see `plans_by_file_date` for
    `file_dates`). Returns PLAN_COLUMNS plus `file_date` (the folder the plan was read from; extra
    columns of the file are kept); no rows when no file is dated <= D."""
    by_date = (
        plans_by_file_date(raw_promotions_by_file_date, file_dates)
        if isinstance(raw_promotions_by_file_date, pd.DataFrame)
        else {_day(k).date().isoformat(): v for k, v in raw_promotions_by_file_date.items()}
    )
    d = _day(plan_date).date().isoformat()
    known = [k for k in by_date if k <= d]
    if not known:
        return _plan_frame(None).assign(file_date=pd.Series(dtype="datetime64[ns]"))
    k = max(known)
    out = _plan_frame(by_date[k]).drop(columns=["landing_date"], errors="ignore")
    out["file_date"] = _day(k)
    return out.reset_index(drop=True)


def expand_promotions(plan: pd.DataFrame, stores: pd.DataFrame, products: pd.DataFrame, start, end) -> pd.DataFrame:
    """One row per store x SKU x day of `plan` inside [start, end] (DAILY_COLUMNS: location_id,
    sku_id, date, discount_pct, display, promo_id).

    `stores` is the locations frame (only `location_type == "store"` rows are used when the column
    is there); `products` gives each SKU's category. A category row covers every SKU of the
    category, a blank location every store; a row naming a location that is not a store, or a SKU
    not in `products`, covers nothing. Two rows on one store x SKU x day: the deeper discount."""
    start, end = _day(start), _day(end)
    p = _plan_frame(plan)
    p["a"] = p["start_date"].clip(lower=start)
    p["b"] = p["end_date"].clip(upper=end)
    p = p[p["a"].notna() & p["b"].notna() & (p["a"] <= p["b"])]
    st = stores
    if "location_type" in st.columns:
        st = st[st["location_type"].astype(str) == "store"]
    store_ids = pd.Series(st["location_id"].astype(str).unique(), name="location_id")
    prod = products[["sku_id", "category"]].astype(str).drop_duplicates("sku_id")
    if not len(p) or not len(store_ids):
        return _empty_daily()
    keep = ["promo_id", "location_id", "discount_pct", "display", "a", "b"]
    by_sku = p[p["sku_id"].notna()][keep + ["sku_id"]]
    by_sku = by_sku[by_sku["sku_id"].astype(str).isin(prod["sku_id"])]
    by_cat = p[p["sku_id"].isna() & p["category"].notna()][keep + ["category"]].merge(prod, on="category")
    rows = pd.concat([by_sku, by_cat.drop(columns=["category"])], ignore_index=True)
    everywhere = rows["location_id"].isna()
    rows = pd.concat(
        [
            rows[~everywhere & rows["location_id"].astype(str).isin(store_ids)],
            rows[everywhere].drop(columns=["location_id"]).merge(store_ids, how="cross"),
        ],
        ignore_index=True,
    )
    if not len(rows):
        return _empty_daily()
    n = ((rows["b"] - rows["a"]).dt.days + 1).to_numpy()
    idx = np.repeat(np.arange(len(rows)), n)
    offset = np.arange(n.sum()) - np.repeat(np.cumsum(n) - n, n)
    out = rows.iloc[idx].reset_index(drop=True)
    out["date"] = out["a"].to_numpy() + pd.to_timedelta(offset, unit="D")
    out = out.sort_values(["discount_pct", "promo_id"], ascending=[False, True], kind="mergesort")
    out = out.drop_duplicates(["location_id", "sku_id", "date"], keep="first")
    out = out.astype({"location_id": str, "sku_id": str, "promo_id": str, "discount_pct": float, "display": int})
    return out[DAILY_COLUMNS].sort_values(["location_id", "sku_id", "date"], ignore_index=True)


def _empty_daily() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "location_id": pd.Series(dtype=object),
            "sku_id": pd.Series(dtype=object),
            "date": pd.Series(dtype="datetime64[ns]"),
            "discount_pct": pd.Series(dtype=float),
            "display": pd.Series(dtype=int),
            "promo_id": pd.Series(dtype=object),
        }
    )


def planned_promotion_days(forecast: pd.DataFrame, promotions: pd.DataFrame | None) -> np.ndarray:
    """Boolean mask over `forecast` rows (location_id, sku_id, date): the day is inside a planned
    promotion of the daily frame `promotions` (DAILY_COLUMNS). None or empty: nothing planned."""
    if promotions is None or not len(promotions) or not len(forecast):
        return np.zeros(len(forecast), dtype=bool)
    key = ["location_id", "sku_id", "date"]
    planned = promotions[key].assign(date=as_dates(promotions["date"]).dt.normalize(), _p=True)
    planned = planned.astype({"location_id": str, "sku_id": str}).drop_duplicates(key)
    f = forecast[key].assign(date=as_dates(forecast["date"]).dt.normalize()).astype({"location_id": str, "sku_id": str})
    # a left join marks the unplanned days NaN; eq(True) reads them as False without a downcast
    return f.merge(planned, on=key, how="left")["_p"].eq(True).to_numpy(bool)
