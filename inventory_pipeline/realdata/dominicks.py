"""Dominick's refrigerated orange juice (real weekly scanner data): the pricing stage's elasticity
estimator on real prices.

Data: 83 stores x 11 brands x 121 weeks (Dominick's weeks 40-160), units sold (exp(logmove)),
every brand's shelf price per ounce, an in-store deal flag and the feature-ad share
(`../shared/data/dominicks_oj/`, from R's bayesm; a 6-store copy ships with the tests).

What is run (`study`):

1. **Own-price elasticity per brand** with `core.pricing.estimate_elasticities`, unchanged: the
   weekly rows become the stage's daily `fct_daily_demand` rows (each week's units spread evenly
   over its 7 days at the week's price; `on_promo` = the deal flag), every brand one SKU of one
   category. The estimator reads regular-price changes as before/after events (14 days each
   side) and deal depth across brands as the category prior, shrinks each brand toward it and
   reports a standard error. Reported: elasticity, se, 95% interval, the events used.
2. **Stability across time folds**: the same estimator on each of `folds` consecutive blocks of
   weeks, per brand (and the spread of a brand's estimates against their standard errors).
3. **Out-of-sample value of price**: expanding-window folds (train on the weeks before a block,
   test on the block). Two models of log units per store x brand x week, fitted on the training
   weeks by least squares:
     no price:   log q = a_store,brand + b_deal x deal + b_feat x feat
     with price: the same + e_brand x log(p / p_ref), with e_brand the pipeline's elasticity
                 estimated on the training weeks only (an offset, not refitted) and p_ref the
                 store x brand mean price of the training weeks.
   A third model fits the own-price slope per brand by least squares on the training weeks (the
   textbook log-log regression), for comparison. Scored on the test block: RMSE of log units and
   WAPE of units (exp of the prediction: the median forecast, which WAPE rewards).
4. **Cross-price effects** (reference, not used by the stage): a log-log regression with store x
   brand fixed effects, deal and feat, the own log price per brand and the log price of the
   other brands' average; the own-price slopes are a textbook comparison for the stage's.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

# brand numbers of bayesm's orangeJuice data (its documentation)
BRANDS = {
    1: "Tropicana Premium 64oz",
    2: "Tropicana Regular 64oz",
    3: "Florida's Natural 64oz",
    4: "Minute Maid 64oz",
    5: "Minute Maid 96oz",
    6: "Citrus Hill 64oz",
    7: "Tree Fresh 64oz",
    8: "Florida Gold 64oz",
    9: "Dominick's 64oz",
    10: "Dominick's 128oz",
    11: "Hood 64oz",
}
SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "dominicks_oj" / "orangejuice_yx.csv.gz"
FIRST_DAY = pd.Timestamp(
    "2000-01-03"
)  # day 0 of week 0: the data gives week numbers, no dates (a Monday, so weeks stay weeks)
REQUIRED = ("store", "brand", "week", "logmove", "deal", "feat", *[f"price{i}" for i in range(1, 12)])


def load_oj(path: str | Path | None = None) -> pd.DataFrame:
    """The weekly store x brand rows with units and the brand's own price (per ounce)."""
    path = Path(path) if path else SHARED
    if not path.exists():
        raise FileNotFoundError(f"{path}: Dominick's orange juice data not found (../shared/data/dominicks_oj/)")
    d = pd.read_csv(path)
    missing = [c for c in REQUIRED if c not in d]
    if missing:
        raise ValueError(f"{path}: missing column(s) {missing}")
    prices = d[[f"price{i}" for i in range(1, 12)]].to_numpy(float)
    b = d["brand"].to_numpy(int)
    d["price"] = prices[np.arange(len(d)), b - 1]
    d["units"] = np.exp(d["logmove"].to_numpy(float))
    # the other brands' mean price (the cross-price regressor)
    others = (prices.sum(axis=1) - d["price"].to_numpy()) / 10.0
    d["other_price"] = others
    return d


def to_history(d: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The pricing stage's inputs: daily fct_daily_demand rows (units spread over the week) and a
    product master (one category)."""
    n = len(d)
    rep = np.repeat(np.arange(n), 7)
    day = d["week"].to_numpy(int)[rep] * 7 + np.tile(np.arange(7), n)
    hist = pd.DataFrame(
        {
            "location_id": "S" + d["store"].astype(str).str.zfill(3).to_numpy()[rep],
            "sku_id": "OJ" + d["brand"].astype(str).str.zfill(2).to_numpy()[rep],
            "date": FIRST_DAY + pd.to_timedelta(day, unit="D"),
            "units_sold": d["units"].to_numpy(float)[rep] / 7.0,
            "unit_price": np.round(d["price"].to_numpy(float)[rep] * 64, 4),  # $ per 64 oz carton-equivalent
            "price_observed": True,
            "on_promo": d["deal"].to_numpy(int)[rep],
            "is_stockout": False,
        }
    )
    brands = sorted(d["brand"].unique())
    base = d.groupby("brand")["price"].median() * 64
    products = pd.DataFrame(
        {
            "sku_id": [f"OJ{b:02d}" for b in brands],
            "category": "refrigerated_orange_juice",
            "base_price": [float(base[b]) for b in brands],
            "unit_cost": [float(base[b]) * 0.7 for b in brands],
        }
    )
    return hist, products


def elasticities(d: pd.DataFrame, cfg=None) -> pd.DataFrame:
    """estimate_elasticities on the rows of `d`, one row per brand."""
    from ..core.policy import PricingPolicy
    from ..core.pricing import estimate_elasticities

    hist, products = to_history(d)
    e = estimate_elasticities(hist, products, cfg or PricingPolicy())
    e["brand"] = e["sku_id"].str[2:].astype(int)
    e["brand_name"] = e["brand"].map(BRANDS)
    e["lo95"], e["hi95"] = e["elasticity"] - 1.96 * e["se"], e["elasticity"] + 1.96 * e["se"]
    return e[
        ["brand", "brand_name", "elasticity", "se", "lo95", "hi95", "n_events", "n_promotions", "own_weight", "source"]
    ]


def week_folds(d: pd.DataFrame, folds: int) -> list[np.ndarray]:
    return list(np.array_split(np.sort(d["week"].unique()), folds))


def _design(d: pd.DataFrame, keys: pd.Index) -> tuple[np.ndarray, np.ndarray]:
    """Columns: one-hot store x brand (in `keys` order), deal, feat."""
    k = keys.get_indexer(pd.MultiIndex.from_arrays([d["store"], d["brand"]]))
    X = np.zeros((len(d), len(keys) + 2))
    ok = k >= 0
    X[np.flatnonzero(ok), k[ok]] = 1.0
    X[:, -2], X[:, -1] = d["deal"].to_numpy(float), d["feat"].to_numpy(float)
    return X, ok


def _own_price_columns(frame: pd.DataFrame, pref: pd.Series) -> np.ndarray:
    """log(p / p_ref) in the column of the row's brand (brands 1..11), zero elsewhere."""
    ref = pref.reindex(pd.MultiIndex.from_arrays([frame["store"], frame["brand"]])).to_numpy()
    x = np.log(frame["price"].to_numpy() / ref)
    out = np.zeros((len(frame), len(BRANDS)))
    out[np.arange(len(frame)), frame["brand"].to_numpy(int) - 1] = x
    return out


def out_of_sample(d: pd.DataFrame, folds: int = 4, cfg=None) -> pd.DataFrame:
    """Expanding-window comparison of the no-price and with-price models (module docstring, 3)."""
    blocks = week_folds(d, folds)
    rows = []
    for i in range(1, folds):
        train = d[d["week"].isin(np.concatenate(blocks[:i]))]
        test = d[d["week"].isin(blocks[i])]
        e = elasticities(train, cfg).set_index("brand")["elasticity"]
        keys = pd.MultiIndex.from_frame(train[["store", "brand"]].drop_duplicates())
        pref = train.groupby(["store", "brand"])["price"].apply(lambda s: np.exp(np.log(s).mean()))
        X, _ = _design(train, keys)
        Xt, ok = _design(test, keys)
        test = test[ok]
        Xt = Xt[ok]
        y, yt = train["logmove"].to_numpy(), test["logmove"].to_numpy()

        def offset(frame, pref=pref, e=e):  # this fold's reference prices and elasticities
            ref = pref.reindex(pd.MultiIndex.from_arrays([frame["store"], frame["brand"]])).to_numpy()
            return frame["brand"].map(e).to_numpy() * np.log(frame["price"].to_numpy() / ref)

        X_lp = np.column_stack([X, _own_price_columns(train, pref)])
        Xt_lp = np.column_stack([Xt, _own_price_columns(test, pref)])
        for name, A, At, off, off_t in (
            ("no price", X, Xt, np.zeros(len(train)), np.zeros(len(test))),
            ("with price: the pipeline's elasticity", X, Xt, offset(train), offset(test)),
            ("with price: OLS own-price slope per brand", X_lp, Xt_lp, np.zeros(len(train)), np.zeros(len(test))),
        ):
            beta, *_ = np.linalg.lstsq(A, y - off, rcond=None)
            pred = At @ beta + off_t
            units, units_hat = np.exp(yt), np.exp(pred)  # the median forecast (what WAPE rewards)
            rows.append(
                {
                    "fold": i,
                    "train_weeks": int(sum(len(b) for b in blocks[:i])),
                    "test_weeks": int(len(blocks[i])),
                    "model": name,
                    "rmse_log_units": float(np.sqrt(np.mean((yt - pred) ** 2))),
                    "wape_units": float(np.abs(units - units_hat).sum() / units.sum()),
                    "test_rows": int(len(test)),
                }
            )
    return pd.DataFrame(rows)


def cross_price(d: pd.DataFrame) -> pd.DataFrame:
    """Reference log-log regression (module docstring, 4): per brand, own- and cross-price slopes
    with OLS standard errors (fixed effects absorbed by demeaning within store x brand)."""
    g = d.groupby(["store", "brand"])
    cols = {
        "y": d["logmove"],
        "lp": np.log(d["price"]),
        "lo": np.log(d["other_price"]),
        "deal": d["deal"].astype(float),
        "feat": d["feat"].astype(float),
    }
    dm = pd.DataFrame({k: v - v.groupby([d["store"], d["brand"]]).transform("mean") for k, v in cols.items()})
    dm["brand"] = d["brand"].to_numpy()
    rows = []
    for b, x in dm.groupby("brand"):
        X = x[["lp", "lo", "deal", "feat"]].to_numpy()
        y = x["y"].to_numpy()
        beta, *_ = np.linalg.lstsq(X, y, rcond=None)
        resid = y - X @ beta
        dof = len(y) - X.shape[1] - g.ngroups / d["brand"].nunique()
        cov = np.linalg.inv(X.T @ X) * (resid @ resid) / max(dof, 1)
        se = np.sqrt(np.diag(cov))
        rows.append(
            {
                "brand": int(b),
                "brand_name": BRANDS.get(int(b), str(b)),
                "own_price": beta[0],
                "own_se": se[0],
                "cross_price": beta[1],
                "cross_se": se[1],
                "deal": beta[2],
                "feat": beta[3],
            }
        )
    return pd.DataFrame(rows)


def study(path: str | Path | None = None, folds: int = 3, oos_folds: int = 4, progress=None) -> dict:
    """The whole study (module docstring): full-sample elasticities, per-fold elasticities,
    out-of-sample comparison, cross-price reference."""
    say = progress or (lambda m: None)
    d = load_oj(path)
    say(
        f"Dominick's OJ: {len(d):,} rows, {d['store'].nunique()} stores, {d['brand'].nunique()} brands, "
        f"{d['week'].nunique()} weeks"
    )
    full = elasticities(d)
    say("full-sample elasticities done")
    per_fold = []
    for i, w in enumerate(week_folds(d, folds), 1):
        e = elasticities(d[d["week"].isin(w)]).assign(fold=i, weeks=f"{int(w.min())}-{int(w.max())}")
        per_fold.append(e)
    per_fold = pd.concat(per_fold, ignore_index=True)
    say("per-fold elasticities done")
    oos = out_of_sample(d, oos_folds)
    say("out-of-sample comparison done")
    cp = cross_price(d)
    stab = (
        per_fold.groupby("brand")
        .agg(
            fold_min=("elasticity", "min"),
            fold_max=("elasticity", "max"),
            fold_sd=("elasticity", "std"),
            mean_se=("se", "mean"),
        )
        .reset_index()
    )
    return {
        "elasticities": full,
        "folds": per_fold,
        "stability": stab,
        "out_of_sample": oos,
        "cross_price": cp,
        "meta": {
            "rows": int(len(d)),
            "stores": int(d["store"].nunique()),
            "brands": int(d["brand"].nunique()),
            "weeks": int(d["week"].nunique()),
            "folds": folds,
            "oos_folds": oos_folds,
        },
    }


def markdown(res: dict) -> str:
    e, f, oos, cp = res["elasticities"], res["folds"], res["out_of_sample"], res["cross_price"]
    fw = f.pivot_table(index="brand", columns="fold", values="elasticity")
    lines = [
        "| brand | elasticity | se | 95% interval | price changes | "
        + " | ".join(f"fold {c} (weeks {f.loc[f['fold'] == c, 'weeks'].iloc[0]})" for c in fw.columns)
        + " | OLS own | OLS cross |",
        "|---|---:|---:|---|---:|" + "---:|" * len(fw.columns) + "---:|---:|",
    ]
    cpi = cp.set_index("brand")
    for _, r in e.sort_values("brand").iterrows():
        b = r["brand"]
        lines.append(
            f"| {b} {r['brand_name']} | {r['elasticity']:.2f} | {r['se']:.2f} | [{r['lo95']:.2f}, {r['hi95']:.2f}] "
            f"| {int(r['n_events'])} | "
            + " | ".join(f"{fw.loc[b, c]:.2f}" for c in fw.columns)
            + f" | {cpi.loc[b, 'own_price']:.2f} ± {cpi.loc[b, 'own_se']:.2f} "
            f"| {cpi.loc[b, 'cross_price']:.2f} ± {cpi.loc[b, 'cross_se']:.2f} |"
        )
    lines += [
        "",
        "| test fold | train weeks | test weeks | model | RMSE log units | WAPE units |",
        "|---|---:|---:|---|---:|---:|",
    ]
    for _, r in oos.iterrows():
        lines.append(
            f"| {r['fold']} | {r['train_weeks']} | {r['test_weeks']} | {r['model']} | {r['rmse_log_units']:.3f} "
            f"| {r['wape_units']:.1%} |"
        )
    return "\n".join(lines)


def write_study(res: dict, out: str | Path) -> dict:
    import json

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / "dominicks_oj.json", "md": out / "dominicks_oj.md"}
    doc = {k: (v.to_dict(orient="records") if isinstance(v, pd.DataFrame) else v) for k, v in res.items()}
    paths["json"].write_text(json.dumps(doc, indent=2, default=float) + "\n")
    paths["md"].write_text(markdown(res) + "\n")
    return paths
