"""The global model carried between refits (policy `forecast.refit_every_days`; families
`mlforecast` and `combined`).

Training the global model is the expensive part of those families (LightGBM on every series of a
category); predicting with a trained model is cheap. On a refit day the stage trains one model
per category and keeps, per category, the trained trees (LightGBM's model text), the day it was
trained, the configuration it was trained under, its feature list, and the vocabulary its
static codes were drawn from (the SKUs, stores and categories behind `item`, `store` and
`category_code`). On the days between it does not retrain: it computes the day's features from
the day's series (so the new days move the lags, rolling means and the per-series scaling) and
predicts with the kept trees. The reused forecast equals what the refit day's model,
`MLForecast.fit(D).predict(new_df=series of D+1)`, forecasts (tested).

The static codes are integers a plan assigns from its own frame (sorted labels); a SKU that
appears or leaves shifts them. So a reused model's frame is re-coded with the vocabulary the
model was trained on, and a category whose series name a SKU, store or category outside that
vocabulary is trained afresh, as is one whose kept model is too old, was trained under another
configuration or on other features.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .dates import as_dates

GLOBAL_FIT_COLUMNS = [
    "category",  # the chunk the model was trained on (one model per category)
    "fitted_on",  # the plan date it was trained on
    "settings",  # `global_settings_key`: the configuration it was trained under
    "features",  # JSON list: the feature columns, in training order
    "vocabulary",  # JSON {"item": [sku ids], "store": [location ids], "category_code": [categories]}
    "factor",  # the category's level correction from the CV (1 when off)
    "model",  # LightGBM's model text; None on a row that points at the day it was trained (`fitted_on`)
]
# the static codes and the label column each one encodes
CODED = {"item": "sku_id", "store": "location_id", "category_code": "category"}


def empty_global_fits() -> pd.DataFrame:
    return pd.DataFrame(columns=GLOBAL_FIT_COLUMNS)


def global_settings_key(fingerprint: str, mode: dict, lgb_params: dict) -> str:
    """The configuration a kept model must match: the forecast's fingerprint, the global model's
    settings and LightGBM's (less its thread count, which changes where, not what)."""
    params = {k: v for k, v in lgb_params.items() if k != "n_jobs"}
    blob = json.dumps([fingerprint, mode, params], sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


class KeptBooster:
    """A kept model's trees as the estimator mlforecast predicts with (`predict(X)`)."""

    def __init__(self, model_text: str) -> None:
        import lightgbm as lgb

        self.booster = lgb.Booster(model_str=model_text)

    def predict(self, X):
        return self.booster.predict(X)


def model_text(estimator) -> str:
    """A trained LGBMRegressor's trees as LightGBM's model text (what `KeptBooster` reads)."""
    return estimator.booster_.model_to_string()


def recode(train: pd.DataFrame, vocab: dict, kept_vocab: dict) -> pd.DataFrame | None:
    """`train`'s static codes (drawn from `vocab`, today's labels by code) re-drawn from the kept
    model's vocabulary; None when a label of `train` is not in it (the model never saw it)."""
    out = train.copy()
    for code_col in CODED:
        known = pd.Index(kept_vocab[code_col]).get_indexer(np.asarray(vocab[code_col], dtype=object))
        new = known[train[code_col].to_numpy()]
        if (new < 0).any():
            return None
        out[code_col] = new.astype(train[code_col].dtype)
    return out


@dataclass
class GlobalCarry:
    """Models carried between refits: the kept table of the last plan (model texts resolved),
    what this plan keeps, and how many category models were reused / trained."""

    plan_date: str
    every_days: int
    settings: str
    kept: pd.DataFrame | None = None
    rows: list = field(default_factory=list)
    reused: int = 0
    trained: int = 0

    def usable(self, category: str, features: list[str]) -> pd.Series | None:
        """The kept model of `category` this plan predicts with, or None to train one."""
        k = self.kept
        if k is None or k.empty or self.every_days <= 1:
            return None
        k = k[(k["category"] == category) & (k["settings"] == self.settings)]
        k = k[k["features"] == json.dumps(list(features))]
        if k.empty or k["model"].isna().any():
            return None
        row = k.iloc[-1]
        age = (pd.Timestamp(self.plan_date) - pd.Timestamp(row["fitted_on"])).days
        return row if 0 <= age < self.every_days else None

    def keep(self, category: str, features: list[str], vocab: dict, factor: float, text: str) -> None:
        """A model trained on this plan."""
        self.trained += 1
        labels = {c: [str(x) for x in vocab[c]] for c in CODED}
        self.rows.append(
            {
                "category": category,
                "fitted_on": pd.Timestamp(self.plan_date),
                "settings": self.settings,
                "features": json.dumps(list(features)),
                "vocabulary": json.dumps(labels),
                "factor": float(factor),
                "model": text,
            }
        )

    def carry(self, row: pd.Series) -> None:
        """A kept model this plan predicted with: kept again, as it was."""
        self.reused += 1
        self.rows.append({c: row[c] for c in GLOBAL_FIT_COLUMNS})

    def table(self) -> pd.DataFrame:
        return pd.DataFrame(self.rows, columns=GLOBAL_FIT_COLUMNS) if self.rows else empty_global_fits()


def stored_global_fits(table: pd.DataFrame, plan_date: str) -> pd.DataFrame:
    """`table` as a plan stores it: a model trained on an earlier day keeps only its pointer
    (`fitted_on`), the text stays in that day's partition (`resolve_global_fits`)."""
    if table.empty:
        return table
    earlier = as_dates(table["fitted_on"]) < pd.Timestamp(plan_date)
    return table.assign(model=table["model"].where(~earlier.to_numpy(), None))


def resolve_global_fits(table: pd.DataFrame, read_partition) -> pd.DataFrame:
    """A stored table with every model text filled in from the partition of the day it was
    trained (`read_partition(day) -> that day's stored table`); a row whose text cannot be found
    keeps None (and is trained afresh)."""
    if table.empty or table["model"].notna().all():
        return table
    out = table.copy()
    missing = out["model"].isna()
    for day, rows in out[missing].groupby(as_dates(out.loc[missing, "fitted_on"])):
        src = read_partition(day.date().isoformat())
        if src is None or src.empty:
            continue
        src = src[as_dates(src["fitted_on"]) == day].drop_duplicates("category").set_index("category")["model"]
        out.loc[rows.index, "model"] = rows["category"].map(src).to_numpy(object)
    return out
