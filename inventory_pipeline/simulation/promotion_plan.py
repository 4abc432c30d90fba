"""The promotion plan merchandising knows each day (landing contract v1.1's `promotions.csv`).

The network's promotions are chain-wide runs of `promo_path` (T_total, S) at `sku_promo_discount`.
The plan file of day t lists every promotion that has not ended and starts within
`horizon_days` (28) of t, whatever the policy does (the plan is the world's, not the pipeline's):

- announced promotions appear `horizon_days` before they start, with their true dates, and stay
  until they end;
- `unannounced_share` (default 5%) of the true promotions are never in any plan: a store-level flash
  markdown or a vendor deal agreed too late to publish. The `promo_lifecycle` world (regimes.py)
  promotes 70% of SKUs with a post-promotion dip; it uses the same default (one share for every
  world, so worlds differ only by their regimes); set `PlanConfig(unannounced_share=...)` to change;
- late changes, `late_change_share` (default 10%) of the plan, half each:
  * date shifts: a true promotion first planned `shift_days` (3-7) earlier or later than it runs;
    its dates are corrected `late_days` (3-7) days before its true start. A shift that would make
    the early plan overlap another promotion of the SKU is not drawn (the promotion stays on time);
  * cancellations: phantom promotions (7-14 days, the SKU's usual discount) that are in the plan
    from `horizon_days` before their start until `late_days` (3-7) days before it, then disappear
    and never run: a phantom is placed where the SKU has no true promotion within 8 days, so it is
    never in `promo_path`.

So every announced promotion is in the plan with its true dates at least `min(late_days)` days
before it starts. Everything is drawn from its own stream SeedSequence([seed, 40]) (regime streams
are 20-27) and built once per network (cached on it); `known_plan(network, t)` is a mask over
that table, fast enough to call every simulated day.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import pandas as pd

PLAN_STREAM = 40
FAR = 10**9
PROMOTION_COLUMNS = [
    "promo_id",
    "sku_id",
    "category",
    "location_id",
    "start_date",
    "end_date",
    "discount_pct",
    "display",
]


@dataclass(frozen=True)
class PlanConfig:
    horizon_days: int = 28  # a promotion is in the plan from this many days before its start
    late_change_share: float = 0.10  # share of promotions changed late: half cancelled, half shifted
    late_days: tuple[int, int] = (3, 7)  # a late change lands this many days before the start (inclusive)
    shift_days: tuple[int, int] = (3, 7)  # how far a shifted promotion was first planned off its dates
    unannounced_share: float = 0.05  # true promotions never in a plan
    phantom_days: tuple[int, int] = (7, 14)  # length of a cancelled promotion


def _episodes(promo_path: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(sku, start, end) of every run of True in each column, end inclusive, ordered by sku, start."""
    p = np.asarray(promo_path, dtype=np.int8)
    z = np.zeros((1, p.shape[1]), dtype=np.int8)
    d = np.diff(np.vstack([z, p, z]), axis=0).T  # (S, T+1): sku-major so nonzero is ordered by sku, t
    s0, a = np.nonzero(d == 1)
    _, b = np.nonzero(d == -1)
    return s0, a, b - 1


def _cancelled_phantoms(network, rng, promo, sku, unann, pct, margin: int, cfg: PlanConfig) -> list[pd.DataFrame]:
    """Announced promotions that never run (cancelled before they start), as many as half the
    late-change share of the announced ones, where the SKU has no true promotion within `margin`
    days; drawn after the episodes' own draws, so the shares change only these."""
    T, S = promo.shape
    n = len(sku)
    n_ph = int(round((~unann).sum() * cfg.late_change_share / 2))
    if n_ph:
        blocked = promo.copy()
        pool = np.unique(sku) if n else np.arange(S)
        rows = []
        for _ in range(n_ph * 20):
            if len(rows) >= n_ph:
                break
            s = int(rng.choice(pool))
            length = int(rng.integers(cfg.phantom_days[0], cfg.phantom_days[1] + 1))
            st = int(rng.integers(0, max(T - length, 1)))
            k = int(rng.integers(cfg.late_days[0], cfg.late_days[1] + 1))
            lo, hi = max(st - margin, 0), min(st + length + margin, T)
            if blocked[lo:hi, s].any():
                continue
            blocked[lo:hi, s] = True
            rows.append(
                (f"PR-{network.sku_ids[s]}-{st:05d}", s, pct[s], st, st + length - 1, -FAR, st - k - 1, "cancelled")
            )
        if rows:
            cols = ["promo_id", "sku", "discount_pct", "start", "end", "visible_from", "visible_to", "kind"]
            return [pd.DataFrame(rows, columns=cols)]
    return []


def plan_schedule(network, cfg: PlanConfig | None = None) -> pd.DataFrame:
    """Every version of every planned promotion of `network`, one row each: promo_id, sku (position),
    start, end (day indexes as planned in this version), discount_pct, visible_from, visible_to
    (the days whose file may list this version), kind (on_time | shifted_early | shifted_final |
    cancelled | unannounced; an unannounced row is never visible). Cached on the network."""
    cfg = cfg or PlanConfig()
    promo = np.asarray(network.promo_path, dtype=bool)
    fp = (cfg, hashlib.sha1(np.packbits(promo).tobytes() + str(promo.shape).encode()).hexdigest())
    cached = network.__dict__.get("_promotion_plan_cache")
    if cached is not None and cached[0] == fp:
        return cached[1]
    T, S = promo.shape
    rng = np.random.default_rng(np.random.SeedSequence([int(network.config.seed), PLAN_STREAM]))
    sku, a, b = _episodes(promo)
    n = len(sku)
    disc = np.asarray(network.sku_promo_discount if network.sku_promo_discount is not None else np.zeros(S), float)
    pct = np.round(np.where(disc > 0, disc, 0.2) * 100, 1)
    # draws per episode (all drawn, whatever the shares: a share changes which, not the other draws)
    u_unann, u_change = rng.random(n), rng.random(n)
    late = rng.integers(cfg.late_days[0], cfg.late_days[1] + 1, n)
    delta = rng.integers(cfg.shift_days[0], cfg.shift_days[1] + 1, n) * rng.choice([-1, 1], n)
    unann = u_unann < cfg.unannounced_share
    shifted = ~unann & (u_change < cfg.late_change_share / 2)
    # a shift must keep the early plan clear of the SKU's other promotions (which may shift too)
    same_prev = np.r_[False, sku[1:] == sku[:-1]]
    same_next = np.r_[sku[:-1] == sku[1:], False]
    prev_end = np.where(same_prev, np.r_[-FAR, b[:-1]], -FAR)
    next_start = np.where(same_next, np.r_[a[1:], FAR], FAR)
    margin = cfg.shift_days[1] + 1
    shifted &= (a + delta > prev_end + margin) & (b + delta < next_start - margin)
    change = a - late
    base = dict(sku=sku, discount_pct=pct[sku])
    ids = np.array([f"PR-{network.sku_ids[s]}-{t:05d}" for s, t in zip(sku, a, strict=True)], dtype=object)
    on_time = ~unann & ~shifted
    parts = [
        pd.DataFrame(
            {
                "promo_id": ids,
                **base,
                "start": a,
                "end": b,
                "visible_from": -FAR,
                "visible_to": FAR,
                "kind": np.where(unann, "unannounced", "on_time"),
            }
        )[unann | on_time],
        pd.DataFrame(
            {
                "promo_id": ids,
                **base,
                "start": a + delta,
                "end": b + delta,
                "visible_from": -FAR,
                "visible_to": change - 1,
                "kind": "shifted_early",
            }
        )[shifted],
        pd.DataFrame(
            {
                "promo_id": ids,
                **base,
                "start": a,
                "end": b,
                "visible_from": change,
                "visible_to": FAR,
                "kind": "shifted_final",
            }
        )[shifted],
    ]
    # cancelled phantoms: where the SKU has no true promotion within `margin` days
    parts += _cancelled_phantoms(network, rng, promo, sku, unann, pct, margin, cfg)
    table = pd.concat(parts, ignore_index=True).sort_values(["start", "sku", "kind"], ignore_index=True)
    first = pd.Timestamp(network.config.start) - pd.Timedelta(days=int(network.config.burn_in_days))
    table["start_date"] = (first + pd.to_timedelta(table["start"], unit="D")).dt.strftime("%Y-%m-%d")
    table["end_date"] = (first + pd.to_timedelta(table["end"], unit="D")).dt.strftime("%Y-%m-%d")
    table["sku_id"] = np.asarray(network.sku_ids).astype(str)[table["sku"].to_numpy()]
    network.__dict__["_promotion_plan_cache"] = (fp, table)
    return table


def known_plan(network, t: int, cfg: PlanConfig | None = None) -> pd.DataFrame:
    """The promotion plan known at the close of day index t (the index into `promo_path`, burn-in
    included, as `DayRecord.t`), in the columns of `promotions.csv` (PROMOTION_COLUMNS): every
    promotion not ended by t that starts within `horizon_days` of t. Chain-wide SKU promotions:
    category and location_id are blank; display is 0 (the simulated world has no display effect)."""
    cfg = cfg or PlanConfig()
    s = plan_schedule(network, cfg)
    m = (
        (s["visible_from"] <= t)
        & (s["visible_to"] >= t)
        & (s["end"] >= t)
        & (s["start"] <= t + cfg.horizon_days)
        & (s["kind"] != "unannounced")
    ).to_numpy()
    v = s[m]
    return pd.DataFrame(
        {
            "promo_id": v["promo_id"].to_numpy(),
            "sku_id": v["sku_id"].to_numpy(),
            "category": None,
            "location_id": None,
            "start_date": v["start_date"].to_numpy(),
            "end_date": v["end_date"].to_numpy(),
            "discount_pct": v["discount_pct"].to_numpy(),
            "display": 0,
        },
        columns=PROMOTION_COLUMNS,
    )


def known_daily_promotions(network, t: int, start, end, cfg: PlanConfig | None = None) -> pd.DataFrame:
    """The plan known at the close of day index t, expanded to store x SKU x day rows inside
    [start, end] (core.promotions.DAILY_COLUMNS): what the in-memory twin hands the forecast, the
    same frame the landing path gives (`promotion_plan` of the file of that day, `expand_promotions`)."""
    from ..core.promotions import expand_promotions

    return expand_promotions(known_plan(network, t, cfg), network.locations, network.products, start, end)
