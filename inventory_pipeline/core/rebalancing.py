"""Rebalancing transfers (core): store -> store moves that fix what replenishment cannot fix in time.

Inputs (one row per store x SKU, `targets`, from the replenishment stage's `store_targets`):
on_hand, on_order, mu_P / sigma_P (demand over the protection period P, normal),
protection_days P (= DC->store lead time L + review period R), lead_time_days L, reorder_point
(mu_P + z sigma_P), shortage_cost (per lost unit), ...; today's replenishment `orders`; the
`lanes`; the `locations` (type, region, capacity).

Economics, per store s and SKU i (all vectorised):

    position      y    = on_hand + on_order + units of today's store replenishment (arriving)
    need          n    = ceil(reorder_point)                       (whole units)
    donor keeps   K    = ceil(max(order_up_to, reorder_point))     (its S: see `donor_keep`)
    donor excess  E    = max(0, floor(min(on_hand, y - K)))        (never below its S, never
                                                                    more than it holds)
    receiver gap  G    = max(0, ceil(n - y))                       (what lifts it to its need)
    expected lost units before the next replenishment can arrive, D ~ N(mu_P, sigma_P):
                  LS(y) = E[(D - y)^+] = sigma (phi(k) - k (1 - Phi(k))),  k = (y - mu_P) / sigma
    receiver saving of X units received   g(X) = LS(y) - LS(y + X)       (concave, increasing)
    donor's added loss of X units sent    h(X) = LS(y - X) - LS(y)       (convex, increasing)

A store with E > 0 is a donor of the SKU, one with G > 0 a receiver; E > 0 needs y > n and G > 0
needs y < n, so no store is both (by construction; `transfer_violations` checks it).

Timing. A plan for day D ships on D+1 (day 0). The receiver's replenishment ordered today is in
its position and arrives on day L; the next one it can order (next review, day R) arrives on day
R + L = P. LS(y) counts the demand of days [0, P). A transfer on a lane of lead time tau arrives
on day tau; it is useful only if tau < P (strictly): arriving on day P or later it comes no sooner
than a replenishment the receiver can order itself. The saving g assumes the receiver does not run
dry before the transfer arrives (the receiver's expected loss over [0, tau) is not subtracted: the
credit is overstated by at most E[(D_tau - y)^+], small for tau << P).

Transport problem (one problem for every SKU that has a donor and a receiver on a usable lane):

    maximise  sum_r sc_r g^(X_r) - sum_d sc_d h^(X_d) - sum_a c_a x_a
    s.t.      X_d = sum of x_a out of donor d <= E_d,  X_r = sum of x_a into receiver r <= G_r,
              x_a = 0 or min_transfer_units <= x_a <= max_units_per_line (binary b_a per arc),
              sum of units a store receives (all SKUs) <= its capacity headroom (the
              replenishment stage's `capacity_room`: space when deliveries land),
              x integral,

over arcs a = (SKU, store->store lane inside a region, lead time < the receiver's P). g^ and h^
are piecewise-linear interpolations of g and h on `breakpoints` integer breakpoints (segments with
decreasing gains / increasing costs, so the LP fills them in order; g^ <= g and h^ >= h, so the
true value of a plan is at least the value the solver sees). Without a minimum quantity the
problem is a min-cost flow with integer capacities: its LP has integral vertices and no binaries
are needed ("lp"). With one, it is a MILP solved by HiGHS through cvxpy ("milp"); above
`milp_max_variables` binaries the LP relaxation is solved and rounded down, lines below the
minimum dropped -- feasible, possibly short of the MILP optimum ("lp_relaxation", said in every
line's binding_constraint and rationale). A MILP that fails falls back to the LP relaxation; if
that fails too no transfer is proposed and the summary says why. Nothing raises on solver trouble.

Arcs that cannot pay for their first `min_transfer_units` even alone are dropped before the solve
(exact g, h). After the solve every line is valued with the exact g and h, pro rata on its
receiver's and donor's totals: expected_shortage_saved (units) = x / X_r g(X_r); the donor's
added loss x / X_d h(X_d); net value = sc_r saved - sc_d added - c x. An optimal plan has no line
of negative value (g concave, h convex: a line's pro rata value is at least what removing it would
lose); any line at or below zero (solver gap, time limit, rounding) is dropped all the same, which
only raises the others' values.

`plan_transfers` returns a `TransferPlan`: the lines with `TRANSFER_COLUMNS` + `DETAIL_COLUMNS`
and a run summary (status, reason, method, solver status and time, counts, totals).
`transfer_violations` re-derives every rule from the inputs, independently of the optimiser.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .policy import RebalancingPolicy
from .replenishment import capacity_room, cycle_service, expected_shortage

TRANSFER_COLUMNS = [
    "sku_id",
    "from_location_id",
    "to_location_id",
    "units",
    "ship_date",
    "expected_date",
    "lead_time_days",
    "cost_per_unit",
    "expected_shortage_saved",
    "binding_constraint",
    "rationale",
]
DETAIL_COLUMNS = [
    "transfer_cost",
    "expected_cost_saved",
    "net_value",
    "donor_on_hand",
    "donor_position",
    "donor_need",
    "donor_excess",
    "donor_position_after",
    "donor_service_before",
    "donor_service_after",
    "donor_added_shortage",
    "receiver_position",
    "receiver_need",
    "receiver_gap",
    "receiver_position_after",
    "receiver_protection_days",
    "receiver_expected_lost_before",
    "receiver_expected_lost_after",
    "receiver_service_before",
    "receiver_service_after",
    "shortage_cost",
    "method",
    "min_transfer_units",
]
TARGET_COLUMNS = [
    "location_id",
    "sku_id",
    "on_hand",
    "on_order",
    "mu_P",
    "sigma_P",
    "protection_days",
    "reorder_point",
    "shortage_cost",
]
METHODS = ("lp", "milp", "lp_relaxation")
_TOL = 1e-6


DEFAULTS = RebalancingPolicy()  # the policy file's defaults (frozen: safe to share)


# ---- the economics ------------------------------------------------------------------------------


def donor_keep(targets: pd.DataFrame) -> np.ndarray:
    """What a donor keeps, in whole units: its order-up-to level S (its reorder point where the
    targets have no S). Stock between s and S is not surplus: taking it brings the donor's next
    replenishment forward and only moves the DC's stock around (measured in the twin: with the
    reorder point as the limit, transfers raised the stockout rate under slow suppliers)."""
    s_ = pd.to_numeric(targets["reorder_point"], errors="coerce").fillna(0).to_numpy(float)
    S_ = (
        pd.to_numeric(targets["order_up_to"], errors="coerce").fillna(0).to_numpy(float)
        if "order_up_to" in targets
        else s_
    )
    return np.maximum(np.ceil(np.maximum(s_, S_) - 1e-9), 0)


def _todays_units(orders: pd.DataFrame | None) -> pd.Series:
    if orders is None or not len(orders) or "units" not in orders:
        return pd.Series(dtype=float)
    o = orders
    if "decision_type" in o:
        o = o[o["decision_type"] == "store_replenishment"]
    o = o.assign(location_id=o["location_id"].astype(str), sku_id=o["sku_id"].astype(str))
    return o.groupby(["location_id", "sku_id"])["units"].sum().astype(float)


def store_positions(targets: pd.DataFrame, orders: pd.DataFrame | None = None) -> pd.DataFrame:
    """targets + position (with today's replenishment), need, donor excess and receiver gap."""
    missing = [c for c in TARGET_COLUMNS if c not in targets]
    if missing:
        raise ValueError(
            f"rebalancing: targets lack column(s) {missing} (expected the replenishment stage's "
            f"store_targets: {TARGET_COLUMNS})"
        )
    t = targets.reset_index(drop=True).copy()
    t["location_id"], t["sku_id"] = t["location_id"].astype(str), t["sku_id"].astype(str)
    dup = t.duplicated(["location_id", "sku_id"])
    if dup.any():
        raise ValueError(
            f"rebalancing: targets must have one row per store x SKU; {int(dup.sum())} duplicate(s), e.g. "
            f"{t.loc[dup, ['location_id', 'sku_id']].head(3).to_dict('records')}"
        )
    today = _todays_units(orders)
    if len(today):
        t["todays_units"] = today.reindex(pd.MultiIndex.from_frame(t[["location_id", "sku_id"]])).fillna(0).to_numpy()
    else:
        t["todays_units"] = 0.0
    num = ["on_hand", "on_order", "mu_P", "sigma_P", "protection_days", "reorder_point", "shortage_cost"]
    vals = t[num].apply(pd.to_numeric, errors="coerce")
    t["valid"] = (
        np.isfinite(vals.to_numpy(float)).all(axis=1)
        & (vals["sigma_P"] >= 0).to_numpy()
        & (vals["shortage_cost"] >= 0).to_numpy()
    )
    t[num] = vals
    on_hand = np.maximum(t["on_hand"].fillna(0).to_numpy(float), 0)
    t["position"] = on_hand + t["on_order"].fillna(0).to_numpy(float) + t["todays_units"].to_numpy(float)
    t["need"] = np.maximum(np.ceil(t["reorder_point"].fillna(0).to_numpy(float) - 1e-9), 0)
    t["keep"] = donor_keep(t)
    v = t["valid"].to_numpy()
    t["excess"] = np.where(v, np.maximum(np.floor(np.minimum(on_hand, t["position"] - t["keep"]) + 1e-9), 0), 0).astype(
        np.int64
    )
    t["gap"] = np.where(v, np.maximum(np.ceil(t["need"] - t["position"] - 1e-9), 0), 0).astype(np.int64)
    return t


# ---- the transport problem ---------------------------------------------------------------------


def _segments(cap: np.ndarray, k: int):
    """Integer breakpoints 0 = u_0 < ... <= cap per owner (k segments at most): (owner, lo, hi)."""
    grid = np.round(cap[:, None].astype(float) * np.linspace(0, 1, k + 1)[None, :]).astype(np.int64)
    lo, hi = grid[:, :-1], grid[:, 1:]
    keep = hi > lo
    owner = np.broadcast_to(np.arange(len(cap))[:, None], lo.shape)[keep]
    return owner, lo[keep], hi[keep]


def _store_lanes(lanes: pd.DataFrame, locations: pd.DataFrame) -> pd.DataFrame:
    """Store -> store lanes inside a region, one per (from, to): the cheapest, then the fastest."""
    cols = ["from_location_id", "to_location_id", "lead_time_days", "cost_per_unit"]
    if lanes is None or not len(lanes):
        return pd.DataFrame(columns=cols)
    loc = locations.assign(location_id=locations["location_id"].astype(str))
    stores = loc[loc["location_type"].astype(str) == "store"].set_index("location_id")
    ln = lanes[cols].copy()
    ln["from_location_id"], ln["to_location_id"] = ln["from_location_id"].astype(str), ln["to_location_id"].astype(str)
    ln["lead_time_days"] = pd.to_numeric(ln["lead_time_days"], errors="coerce")
    ln["cost_per_unit"] = pd.to_numeric(ln["cost_per_unit"], errors="coerce")
    ok = (
        ln["from_location_id"].isin(stores.index)
        & ln["to_location_id"].isin(stores.index)
        & (ln["from_location_id"] != ln["to_location_id"])
        & (ln["lead_time_days"] >= 0)
        & (ln["cost_per_unit"] >= 0)
    )
    ln = ln[ok]
    reg = stores["region"].astype(str)
    ln = ln[ln["from_location_id"].map(reg).to_numpy() == ln["to_location_id"].map(reg).to_numpy()]
    return ln.sort_values(cols).drop_duplicates(["from_location_id", "to_location_id"]).reset_index(drop=True)


def _capacity_headroom(t: pd.DataFrame, locations: pd.DataFrame) -> pd.Series:
    """Units a store may still receive: the replenishment stage's `capacity_room` (capacity_units
    minus the stock expected when deliveries land, today's replenishment included), whole units;
    stores without a capacity are not listed (no limit)."""
    pos = t[["location_id", "sku_id", "on_hand"]].assign(on_order=t["position"] - t["on_hand"])
    sales = t[["location_id", "sku_id"]].assign(units=t["sales_until_arrival"]) if "sales_until_arrival" in t else None
    room = capacity_room(pos, locations, sales)
    return np.maximum(np.floor(room[np.isfinite(room)]), 0)


def _shortage_curves(don: pd.DataFrame, rec: pd.DataFrame, breakpoints: int):
    """Piecewise-linear curves of the expected shortage cost over the units moved: each donor's
    loss (convex, rising slopes) and each receiver's saving (concave), as (owner, lower, upper,
    slope) per segment."""
    do, dlo, dhi = _segments(don["cap"].to_numpy(), breakpoints)
    y, mu, sg = don["position"].to_numpy(float), don["mu_P"].to_numpy(float), don["sigma_P"].to_numpy(float)
    dslope = (
        don["shortage_cost"].to_numpy(float)[do]
        * (expected_shortage(mu[do], sg[do], y[do] - dhi) - expected_shortage(mu[do], sg[do], y[do] - dlo))
        / (dhi - dlo)
    )
    ro, rlo, rhi = _segments(rec["cap"].to_numpy(), breakpoints)
    y, mu, sg = rec["position"].to_numpy(float), rec["mu_P"].to_numpy(float), rec["sigma_P"].to_numpy(float)
    rslope = (
        rec["shortage_cost"].to_numpy(float)[ro]
        * (expected_shortage(mu[ro], sg[ro], y[ro] + rlo) - expected_shortage(mu[ro], sg[ro], y[ro] + rhi))
        / (rhi - rlo)
    )
    return (do, dlo, dhi, dslope), (ro, rlo, rhi, rslope)


def _solve(
    arcs: pd.DataFrame, don: pd.DataFrame, rec: pd.DataFrame, headroom: pd.Series, cfg: RebalancingPolicy, method: str
) -> tuple[np.ndarray | None, dict]:
    """One cvxpy problem over all arcs; returns whole units per arc (None on failure) and info."""
    import cvxpy as cp
    import scipy.sparse as sp

    n, nd, nr = len(arcs), len(don), len(rec)
    di, ri = arcs["d"].to_numpy(), arcs["r"].to_numpy()
    ub = arcs["cap"].to_numpy(float)
    cost = arcs["cost_per_unit"].to_numpy(float)
    # piecewise-linear curves: donor loss (convex, rising slopes), receiver saving (concave)
    (do, dlo, dhi, dslope), (ro, rlo, rhi, rslope) = _shortage_curves(don, rec, cfg.pwl_breakpoints)
    ns, nv = len(do), len(ro)
    a_out = sp.csr_matrix((np.ones(n), (di, np.arange(n))), shape=(nd, n))
    a_in = sp.csr_matrix((np.ones(n), (ri, np.arange(n))), shape=(nr, n))
    s_d = sp.csr_matrix((np.ones(ns), (do, np.arange(ns))), shape=(nd, ns))
    s_r = sp.csr_matrix((np.ones(nv), (ro, np.arange(nv))), shape=(nr, nv))
    # simple bounds as column bounds (not rows): a third of the rows, and HiGHS's presolve sees them
    x = cp.Variable(n, name="units", bounds=[np.zeros(n), ub])
    s = cp.Variable(ns, name="donor_segments", bounds=[np.zeros(ns), (dhi - dlo).astype(float)])
    v = cp.Variable(nv, name="receiver_segments", bounds=[np.zeros(nv), (rhi - rlo).astype(float)])
    cons = [a_out @ x == s_d @ s, a_in @ x == s_r @ v]
    # capacity: a store's receipts over all SKUs, where the headroom could bind
    store = rec["location_id"].to_numpy()[ri]
    if len(headroom):
        inflow = pd.Series(ub).groupby(store).sum()
        room = headroom.reindex(inflow.index)
        tight = room[room < inflow].index
        if len(tight):
            codes = pd.Index(tight).get_indexer(store)
            m = codes >= 0
            cap_m = sp.csr_matrix((np.ones(int(m.sum())), (codes[m], np.flatnonzero(m))), shape=(len(tight), n))
            cons.append(cap_m @ x <= room.loc[tight].to_numpy(float))
    b = None
    if method == "milp":
        b = cp.Variable(n, boolean=True, name="on")
        cons += [x <= cp.multiply(ub, b), x >= cfg.min_transfer_units * b]
    obj = cp.Maximize(rslope @ v - dslope @ s - cost @ x)
    prob = cp.Problem(obj, cons)
    info = {"method": method, "arcs": n, "binaries": n if method == "milp" else 0, "segments": ns + nv}
    t0 = time.perf_counter()
    try:
        kw = {"time_limit": float(cfg.solver_seconds)}
        if method == "milp":
            kw["mip_rel_gap"] = float(cfg.mip_rel_gap)
        prob.solve(solver=cp.HIGHS, **kw)
    except Exception as e:  # noqa: BLE001 -- a solver failure must not end the stage
        info.update(
            solver_status="error",
            solve_seconds=round(time.perf_counter() - t0, 3),
            reason=f"{method}: HiGHS raised {type(e).__name__}: {e}",
        )
        return None, info
    info.update(solver_status=str(prob.status), solve_seconds=round(time.perf_counter() - t0, 3))
    xv = x.value
    if xv is None or prob.status not in cp.settings.SOLUTION_PRESENT or not np.all(np.isfinite(xv)):
        info["reason"] = f"{method}: HiGHS returned {prob.status} without a usable solution"
        return None, info
    units = np.floor(np.clip(np.asarray(xv, float), 0, ub) + _TOL).astype(np.int64)
    units = np.where(units >= cfg.min_transfer_units, units, 0)
    # the rounded plan must respect every bound (it does whenever the solver did)
    out_ok = np.all(np.bincount(di, units, nd) <= don["cap"].to_numpy() + _TOL)
    in_ok = np.all(np.bincount(ri, units, nr) <= rec["cap"].to_numpy() + _TOL)
    if not (out_ok and in_ok):
        info["reason"] = f"{method}: the solution returned ({prob.status}) breaks a donor or receiver bound"
        return None, info
    info["objective_pwl"] = round(float(prob.value), 4) if prob.value is not None else None
    return units, info


# ---- the stage -----------------------------------------------------------------------------------


def _empty(extra: bool = True) -> pd.DataFrame:
    cols = TRANSFER_COLUMNS + (DETAIL_COLUMNS if extra else [])
    out = pd.DataFrame({c: pd.Series(dtype="object") for c in cols})
    out["units"] = out["units"].astype("int64")
    out["ship_date"] = pd.Series(dtype="datetime64[ns]")
    out["expected_date"] = pd.Series(dtype="datetime64[ns]")
    for c in ["lead_time_days", "cost_per_unit", "expected_shortage_saved"] + [
        c for c in DETAIL_COLUMNS if c not in ("method",)
    ]:
        out[c] = pd.Series(dtype="float64")
    return out


@dataclass(frozen=True)
class TransferPlan:
    """`plan_transfers`' result: the transfer lines and the run's summary."""

    transfers: pd.DataFrame  # TRANSFER_COLUMNS + DETAIL_COLUMNS, one row per (sku, from, to)
    summary: dict  # status, reason, method, solver status and time, counts and totals


def _finish(out: pd.DataFrame, summary: dict, t0: float) -> TransferPlan:
    summary["seconds"] = round(time.perf_counter() - t0, 3)
    summary["lines"] = int(len(out))
    summary["units"] = int(out["units"].sum()) if len(out) else 0
    for k, c in [
        ("transfer_cost", "transfer_cost"),
        ("expected_shortage_saved", "expected_shortage_saved"),
        ("expected_cost_saved", "expected_cost_saved"),
        ("net_value", "net_value"),
    ]:
        summary[k] = round(float(out[c].sum()), 4) if len(out) else 0.0
    return TransferPlan(out, summary)


def _candidate_arcs(t: pd.DataFrame, lanes, locations, m: int, line_cap: int, summary: dict) -> pd.DataFrame:
    """Donor -> receiver arcs of one SKU along a store lane faster than the receiver's next
    replenishment, with room for at least `m` units, whose first `m` units pay for themselves
    (`summary` counts donors, receivers and SKUs with both)."""
    don = t[t["excess"] >= m]
    rec = t[t["gap"] >= 1]
    summary["donors"], summary["receivers"] = int(len(don)), int(len(rec))
    both = np.intersect1d(don["sku_id"].unique(), rec["sku_id"].unique())
    summary["skus_with_both"] = int(len(both))
    don, rec = don[don["sku_id"].isin(both)], rec[rec["sku_id"].isin(both)]
    ln = _store_lanes(lanes, locations)
    cols_d = ["location_id", "sku_id", "on_hand", "position", "keep", "excess", "mu_P", "sigma_P", "shortage_cost"]
    cols_r = cols_d[:4] + ["need", "gap", "mu_P", "sigma_P", "shortage_cost", "protection_days"]
    arcs = (
        don[cols_d]
        .rename(columns=lambda c: "d_" + c if c != "sku_id" else c)
        .merge(ln, left_on="d_location_id", right_on="from_location_id")
        .merge(
            rec[cols_r].rename(columns=lambda c: "r_" + c if c != "sku_id" else c),
            left_on=["to_location_id", "sku_id"],
            right_on=["r_location_id", "sku_id"],
        )
    )
    arcs = arcs[arcs["lead_time_days"] < arcs["r_protection_days"]].copy()
    arcs["cap"] = np.minimum(np.minimum(arcs["d_excess"], arcs["r_gap"]), line_cap).astype(np.int64)
    arcs = arcs[arcs["cap"] >= m]
    # an arc that cannot pay for its first m units on its own never carries a line of positive value
    q = float(m)
    first = (
        arcs["r_shortage_cost"]
        * (
            expected_shortage(arcs["r_mu_P"], arcs["r_sigma_P"], arcs["r_position"])
            - expected_shortage(arcs["r_mu_P"], arcs["r_sigma_P"], arcs["r_position"] + q)
        )
        - arcs["d_shortage_cost"]
        * (
            expected_shortage(arcs["d_mu_P"], arcs["d_sigma_P"], arcs["d_position"] - q)
            - expected_shortage(arcs["d_mu_P"], arcs["d_sigma_P"], arcs["d_position"])
        )
        - arcs["cost_per_unit"] * q
    )
    arcs = arcs[first.to_numpy() > _TOL].reset_index(drop=True)
    return arcs


def _endpoint_tables(arcs: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Compact donor and receiver tables of the arcs (columns d_* and r_*, `d` / `r` numbering
    them on `arcs`), each with the units it can give or take over all its arcs."""
    dkey = arcs["d_location_id"] + "\x1f" + arcs["sku_id"]
    rkey = arcs["r_location_id"] + "\x1f" + arcs["sku_id"]
    arcs["d"] = pd.factorize(dkey)[0]
    arcs["r"] = pd.factorize(rkey)[0]
    dt = arcs.groupby("d").first()[[c for c in arcs if c.startswith("d_")] + ["sku_id"]]
    dt.columns = [c[2:] if c.startswith("d_") else c for c in dt.columns]
    rt = arcs.groupby("r").first()[[c for c in arcs if c.startswith("r_")] + ["sku_id"]]
    rt.columns = [c[2:] if c.startswith("r_") else c for c in rt.columns]
    dt["cap"] = np.minimum(dt["excess"].to_numpy(), arcs.groupby("d")["cap"].sum().to_numpy())
    rt["cap"] = np.minimum(rt["gap"].to_numpy(), arcs.groupby("r")["cap"].sum().to_numpy())
    return dt, rt


def _solve_with_fallback(arcs, dt, rt, headroom, cfg: RebalancingPolicy, m: int, summary: dict):
    """The LP when lines may be single units, else the MILP (the LP relaxation rounded down past
    `milp_max_variables`, or when the MILP fails). Returns units per arc (None: every method
    failed), the last method's info and why earlier methods failed."""
    if m <= 1:
        methods = ["lp"]
    elif len(arcs) <= cfg.milp_max_variables:
        methods = ["milp", "lp_relaxation"]
    else:
        methods = ["lp_relaxation"]
    units, info, reasons = None, {}, []
    for method in methods:
        units, info = _solve(arcs, dt, rt, headroom, cfg, method)
        summary["solve_seconds"] = round(summary["solve_seconds"] + info.get("solve_seconds", 0.0), 3)
        if units is not None:
            break
        reasons.append(info["reason"])
    return units, info, reasons


def _new_summary(targets: pd.DataFrame, cfg: RebalancingPolicy) -> dict:
    """The run's summary before anything is planned (plan_transfers' docstring lists its keys)."""
    return {
        "status": "ok",
        "reason": "",
        "method": None,
        "solver_status": None,
        "solve_seconds": 0.0,
        "store_skus": int(len(targets)),
        "donors": 0,
        "receivers": 0,
        "skus_with_both": 0,
        "skus_solved": 0,
        "arcs": 0,
        "binaries": 0,
        "lines_dropped_nonpositive": 0,
        "invalid_target_rows": 0,
        "config": cfg.model_dump(),
    }


def plan_transfers(
    targets: pd.DataFrame,
    lanes: pd.DataFrame,
    locations: pd.DataFrame,
    plan_date: str,
    cfg: RebalancingPolicy = DEFAULTS,
    orders: pd.DataFrame | None = None,
) -> TransferPlan:
    """Store -> store transfers shipping on plan_date + 1 (see the module docstring for the maths).

    Returns the transfers, one row per (sku, from, to) with `TRANSFER_COLUMNS` + `DETAIL_COLUMNS`,
    and the run's summary: status ("ok" | "disabled" | "no_candidates" |
    "solver_failed"), reason, method ("lp" | "milp" | "lp_relaxation" | None), solver_status,
    solve_seconds, seconds, store_skus, donors, receivers, skus_with_both, skus_solved, arcs,
    binaries, lines, units, transfer_cost, expected_shortage_saved, expected_cost_saved, net_value,
    lines_dropped_nonpositive, invalid_target_rows, objective_pwl, config. Never raises on solver
    trouble (it raises ValueError only for targets without the expected columns or with duplicates)."""
    t0 = time.perf_counter()
    summary = _new_summary(targets, cfg)
    if not cfg.enabled:
        summary.update(status="disabled", reason="rebalancing is disabled in the policy (rebalancing.enabled: false)")
        return _finish(_empty(), summary, t0)
    t = store_positions(targets, orders)
    summary["invalid_target_rows"] = int((~t["valid"]).sum())
    m = max(int(cfg.min_transfer_units), 1)
    line_cap = cfg.max_units_per_line or np.iinfo(np.int64).max
    arcs = _candidate_arcs(t, lanes, locations, m, line_cap, summary)
    summary["arcs"] = int(len(arcs))
    if not len(arcs):
        summary.update(
            status="no_candidates",
            reason=(
                f"no store x SKU pair can gain from a transfer: {summary['skus_with_both']} SKU(s) have both a donor "
                f"and a receiver, but none on a store->store lane inside a region that is faster than the receiver's "
                f"next replenishment, large enough for {m} unit(s) and worth more than its cost"
            ),
        )
        return _finish(_empty(), summary, t0)
    summary["skus_solved"] = int(arcs["sku_id"].nunique())
    dt, rt = _endpoint_tables(arcs)
    headroom = _capacity_headroom(t, locations)
    units, info, reasons = _solve_with_fallback(arcs, dt, rt, headroom, cfg, m, summary)
    summary.update(
        method=info.get("method"),
        solver_status=info.get("solver_status"),
        binaries=info.get("binaries", 0),
        objective_pwl=info.get("objective_pwl"),
    )
    if units is None:
        summary.update(status="solver_failed", method=None, reason="no transfers proposed: " + "; ".join(reasons))
        return _finish(_empty(), summary, t0)
    method = info["method"]
    if reasons:
        summary["reason"] = "fell back to the LP relaxation: " + "; ".join(reasons)
    elif info.get("solver_status") == "user_limit":
        summary["reason"] = f"HiGHS stopped at its time limit ({cfg.solver_seconds:g} s): the best plan found is used"
    elif method == "lp_relaxation":
        summary["reason"] = (
            f"{len(arcs):,} binaries > milp_max_variables {cfg.milp_max_variables:,}: "
            "LP relaxation rounded down, lines below min_transfer_units dropped"
        )
    arcs["units"] = units
    lines = _value_lines(arcs, dt, rt)
    bad = lines["net_value"] <= _TOL
    if bad.any():
        summary["lines_dropped_nonpositive"] = int(bad.sum())
        arcs.loc[lines.index[bad], "units"] = 0
        lines = _value_lines(arcs, dt, rt)
    out = _describe(lines, dt, rt, headroom, cfg, method, plan_date)
    return _finish(out, summary, t0)


def _value_lines(arcs: pd.DataFrame, dt: pd.DataFrame, rt: pd.DataFrame) -> pd.DataFrame:
    """The arcs that carry units, valued with the exact curves, pro rata on their store totals."""
    a = arcs[arcs["units"] > 0].copy()
    xd = np.bincount(a["d"], a["units"], len(dt))
    xr = np.bincount(a["r"], a["units"], len(rt))
    y, mu, sg = dt["position"].to_numpy(float), dt["mu_P"].to_numpy(float), dt["sigma_P"].to_numpy(float)
    d_added = expected_shortage(mu, sg, y - xd) - expected_shortage(mu, sg, y)
    y, mu, sg = rt["position"].to_numpy(float), rt["mu_P"].to_numpy(float), rt["sigma_P"].to_numpy(float)
    r_before, r_after = expected_shortage(mu, sg, y), expected_shortage(mu, sg, y + xr)
    x = a["units"].to_numpy(float)
    di, ri = a["d"].to_numpy(), a["r"].to_numpy()
    a["X_d"], a["X_r"] = xd[di], xr[ri]
    a["expected_shortage_saved"] = x / xr[ri] * (r_before - r_after)[ri]
    a["donor_added_shortage"] = x / xd[di] * d_added[di]
    a["receiver_expected_lost_before"], a["receiver_expected_lost_after"] = r_before[ri], r_after[ri]
    a["transfer_cost"] = x * a["cost_per_unit"].to_numpy(float)
    a["expected_cost_saved"] = (
        a["r_shortage_cost"] * a["expected_shortage_saved"] - a["d_shortage_cost"] * a["donor_added_shortage"]
    )
    a["net_value"] = a["expected_cost_saved"] - a["transfer_cost"]
    return a


def _describe(
    a: pd.DataFrame,
    dt: pd.DataFrame,
    rt: pd.DataFrame,
    headroom: pd.Series,
    cfg: RebalancingPolicy,
    method: str,
    plan_date: str,
) -> pd.DataFrame:
    if not len(a):
        return _empty()
    ship = pd.Timestamp(plan_date).normalize() + pd.Timedelta(days=1)
    x = a["units"].to_numpy(np.int64)
    d_after = a["d_position"].to_numpy(float) - a["X_d"].to_numpy(float)
    r_after = a["r_position"].to_numpy(float) + a["X_r"].to_numpy(float)
    # what stopped the line from growing
    recv_store = a.groupby("r_location_id")["units"].transform("sum")
    room = headroom.reindex(a["r_location_id"]).to_numpy(float) if len(headroom) else np.full(len(a), np.inf)
    conds = [
        (cfg.max_units_per_line > 0) & (x >= cfg.max_units_per_line),
        a["X_d"].to_numpy() >= a["d_excess"].to_numpy(),
        a["X_r"].to_numpy() >= a["r_gap"].to_numpy(),
        recv_store.to_numpy(float) >= np.nan_to_num(room, nan=np.inf),
        (cfg.min_transfer_units > 1) & (x == cfg.min_transfer_units),
    ]
    names = ["max_units_per_line", "donor_excess", "receiver_need", "store_capacity", "min_transfer_units"]
    binding = np.select(conds, names, "marginal_value")
    if method == "lp_relaxation":
        binding = np.char.add(binding.astype(str), "+lp_relaxation")
    out = pd.DataFrame(
        {
            "sku_id": a["sku_id"].to_numpy(),
            "from_location_id": a["from_location_id"].to_numpy(),
            "to_location_id": a["to_location_id"].to_numpy(),
            "units": x,
            "ship_date": ship,
            "expected_date": ship + pd.to_timedelta(a["lead_time_days"].to_numpy(float), unit="D"),
            "lead_time_days": a["lead_time_days"].to_numpy(float),
            "cost_per_unit": a["cost_per_unit"].to_numpy(float),
            "expected_shortage_saved": a["expected_shortage_saved"].to_numpy(float),
            "binding_constraint": binding,
            "transfer_cost": a["transfer_cost"].to_numpy(float),
            "expected_cost_saved": a["expected_cost_saved"].to_numpy(float),
            "net_value": a["net_value"].to_numpy(float),
            "donor_on_hand": a["d_on_hand"].to_numpy(float),
            "donor_position": a["d_position"].to_numpy(float),
            "donor_need": a["d_keep"].to_numpy(float),
            "donor_excess": a["d_excess"].to_numpy(float),
            "donor_position_after": d_after,
            "donor_service_before": cycle_service(a["d_mu_P"], a["d_sigma_P"], a["d_position"]),
            "donor_service_after": cycle_service(a["d_mu_P"], a["d_sigma_P"], d_after),
            "donor_added_shortage": a["donor_added_shortage"].to_numpy(float),
            "receiver_position": a["r_position"].to_numpy(float),
            "receiver_need": a["r_need"].to_numpy(float),
            "receiver_gap": a["r_gap"].to_numpy(float),
            "receiver_position_after": r_after,
            "receiver_protection_days": a["r_protection_days"].to_numpy(float),
            "receiver_expected_lost_before": a["receiver_expected_lost_before"].to_numpy(float),
            "receiver_expected_lost_after": a["receiver_expected_lost_after"].to_numpy(float),
            "receiver_service_before": cycle_service(a["r_mu_P"], a["r_sigma_P"], a["r_position"]),
            "receiver_service_after": cycle_service(a["r_mu_P"], a["r_sigma_P"], r_after),
            "shortage_cost": a["r_shortage_cost"].to_numpy(float),
            "method": method,
            "min_transfer_units": int(cfg.min_transfer_units),
        }
    )
    out["rationale"] = _rationale(out, method)
    out = out[TRANSFER_COLUMNS + DETAIL_COLUMNS]
    return out.sort_values(["sku_id", "from_location_id", "to_location_id"], ignore_index=True)


def _fmt(s: pd.Series, nd: int = 0) -> pd.Series:
    s = pd.Series(s).astype(float).round(nd)
    return (s.astype(np.int64) if nd == 0 else s).astype(str)


def _rationale(o: pd.DataFrame, method: str) -> pd.Series:
    """One planner-facing sentence per line, from its numbers."""
    text = (
        "move "
        + o["units"].astype(str)
        + " from "
        + o["from_location_id"]
        + " (position "
        + _fmt(o["donor_position"])
        + " vs need "
        + _fmt(o["donor_need"])
        + ", "
        + _fmt(o["donor_position_after"])
        + " after) to "
        + o["to_location_id"]
        + " (position "
        + _fmt(o["receiver_position"])
        + " vs need "
        + _fmt(o["receiver_need"])
        + ", "
        + _fmt(o["receiver_expected_lost_before"], 1)
        + " units expected lost in the "
        + _fmt(o["receiver_protection_days"])
        + " days before its next replenishment can arrive); arrives in "
        + _fmt(o["lead_time_days"])
        + " day(s), avoids "
        + _fmt(o["expected_shortage_saved"], 1)
        + " expected lost units worth "
        + _fmt(o["expected_cost_saved"], 2)
        + " for "
        + _fmt(o["transfer_cost"], 2)
        + " transfer cost"
    )
    if method == "lp_relaxation":
        text = text + " (large problem: LP relaxation rounded down)"
    return text


# ---- the independent checker ---------------------------------------------------------------------

VIOLATION_COLUMNS = ["rule", "sku_id", "from_location_id", "to_location_id", "detail"]


class _Violations:
    """Rule violations of the transfer lines `tr`: one row per rule per line, in the order found."""

    def __init__(self, tr: pd.DataFrame) -> None:
        self.tr, self.found = tr, []

    def add(self, rule: str, mask, detail) -> None:
        mask = np.asarray(mask, bool)
        if mask.any():
            tr = self.tr
            d = tr.loc[mask, ["sku_id", "from_location_id", "to_location_id"]].copy()
            d.insert(0, "rule", rule)
            d["detail"] = pd.Series(detail, index=tr.index)[mask] if not isinstance(detail, str) else detail
            self.found.append(d)

    def frame(self) -> pd.DataFrame:
        if not self.found:
            return pd.DataFrame(columns=VIOLATION_COLUMNS)
        return pd.concat(self.found, ignore_index=True)[VIOLATION_COLUMNS]


def transfer_violations(
    transfers: pd.DataFrame,
    targets: pd.DataFrame,
    lanes: pd.DataFrame,
    cfg: RebalancingPolicy = DEFAULTS,
    orders: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Every transfer line that breaks a rule, one row per rule per line (empty = all rules hold).

    Re-derived from the inputs, not from the optimiser: units are whole and > 0 (and within
    min_transfer_units / max_units_per_line); the line runs along an existing lane between two
    different stores of `targets` with the lane's lead time; the donor keeps its order-up-to level
    (position - sent >= `donor_keep`) and sends at most its on hand (conservation: every
    unit sent comes out of one store's stock and arrives at another); no store both sends and
    receives a SKU; a receiver is not lifted above its need; the lane's lead time is shorter than
    the receiver's protection period (it arrives before the receiver's next replenishment could)."""
    if transfers is None or not len(transfers):
        return pd.DataFrame(columns=VIOLATION_COLUMNS)
    tr = transfers.reset_index(drop=True).copy()
    for c in ("sku_id", "from_location_id", "to_location_id"):
        tr[c] = tr[c].astype(str)
    v = _Violations(tr)
    u = pd.to_numeric(tr["units"], errors="coerce").to_numpy(float)
    _unit_rules(v, u, cfg)
    # stores and their positions, from the targets and today's orders
    tg = targets.copy()
    tg["location_id"], tg["sku_id"] = tg["location_id"].astype(str), tg["sku_id"].astype(str)
    _lane_rules(v, tg, lanes)
    _stock_rules(v, u, tg, orders)
    return v.frame()


def _unit_rules(v: _Violations, u: np.ndarray, cfg: RebalancingPolicy) -> None:
    """Whole units > 0, the line's minimum and cap, one line per SKU and lane."""
    tr = v.tr
    whole = np.isfinite(u) & (np.abs(u - np.round(np.nan_to_num(u))) < 1e-9)
    v.add("units_positive_integer", ~whole | ~(u > 0), "units " + tr["units"].astype(str))
    v.add(
        "min_transfer_units",
        whole & (u > 0) & (u < cfg.min_transfer_units),
        "units " + tr["units"].astype(str) + f" < min_transfer_units {cfg.min_transfer_units}",
    )
    if cfg.max_units_per_line:
        v.add(
            "max_units_per_line",
            u > cfg.max_units_per_line,
            "units " + tr["units"].astype(str) + f" > max_units_per_line {cfg.max_units_per_line}",
        )
    v.add(
        "duplicate_line",
        tr.duplicated(["sku_id", "from_location_id", "to_location_id"], keep=False),
        "more than one line for this SKU and lane",
    )


def _lane_rules(v: _Violations, tg: pd.DataFrame, lanes: pd.DataFrame | None) -> None:
    """Between two different stores of the targets, along an existing lane, at its lead time."""
    tr = v.tr
    stores = set(tg["location_id"])
    v.add("lane", tr["from_location_id"] == tr["to_location_id"], "from and to are the same store")
    v.add(
        "lane",
        ~tr["from_location_id"].isin(stores) | ~tr["to_location_id"].isin(stores),
        "from or to is not a store of the targets",
    )
    ln = (
        lanes.copy()
        if lanes is not None
        else pd.DataFrame(columns=["from_location_id", "to_location_id", "lead_time_days", "cost_per_unit"])
    )
    ln["from_location_id"], ln["to_location_id"] = ln["from_location_id"].astype(str), ln["to_location_id"].astype(str)
    pair = (
        tr[["from_location_id", "to_location_id"]]
        .merge(ln[["from_location_id", "to_location_id"]].drop_duplicates(), how="left", indicator=True)["_merge"]
        .to_numpy()
    )
    v.add("lane", pair != "both", "no lane from " + tr["from_location_id"] + " to " + tr["to_location_id"])
    if "lead_time_days" in tr:
        lt = ln.groupby(["from_location_id", "to_location_id"])["lead_time_days"].agg(["min", "max"])
        k = pd.MultiIndex.from_frame(tr[["from_location_id", "to_location_id"]])
        lo, hi = lt["min"].reindex(k).to_numpy(float), lt["max"].reindex(k).to_numpy(float)
        ltv = pd.to_numeric(tr["lead_time_days"], errors="coerce").to_numpy(float)
        v.add(
            "lane",
            (pair == "both") & ~((ltv >= lo - 1e-9) & (ltv <= hi + 1e-9)),
            "lead time " + tr["lead_time_days"].astype(str) + " is not the lane's",
        )


def _store_stock(tg: pd.DataFrame, orders: pd.DataFrame | None):
    """Per store x SKU of the targets: on hand, position (with today's replenishments), the need
    a receiver may be lifted to and what a donor keeps."""
    key = pd.MultiIndex.from_frame(tg[["location_id", "sku_id"]])
    on_hand = pd.Series(pd.to_numeric(tg["on_hand"], errors="coerce").fillna(0).clip(lower=0).to_numpy(), index=key)
    today = pd.Series(0.0, index=key)
    if orders is not None and len(orders):
        o = orders[orders["decision_type"] == "store_replenishment"] if "decision_type" in orders else orders
        o = o.assign(location_id=o["location_id"].astype(str), sku_id=o["sku_id"].astype(str))
        s = o.groupby(["location_id", "sku_id"])["units"].sum()
        today = s.reindex(key).fillna(0).astype(float)
        today.index = key
    position = on_hand + pd.to_numeric(tg["on_order"], errors="coerce").fillna(0).to_numpy() + today.to_numpy()
    need = pd.Series(
        np.maximum(np.ceil(pd.to_numeric(tg["reorder_point"], errors="coerce").fillna(0).to_numpy() - 1e-9), 0),
        index=key,
    )
    keep = pd.Series(donor_keep(tg), index=key)
    return key, on_hand, position, need, keep


def _stock_rules(v: _Violations, u: np.ndarray, tg: pd.DataFrame, orders: pd.DataFrame | None) -> None:
    """In time for the receiver; the donor keeps its need and sends at most its on hand; the
    receiver is not lifted above its need; no store both sends and receives a SKU."""
    tr = v.tr
    key, on_hand, position, need, keep = _store_stock(tg, orders)

    fk = pd.MultiIndex.from_frame(tr[["from_location_id", "sku_id"]])
    tk = pd.MultiIndex.from_frame(tr[["to_location_id", "sku_id"]])
    if "lead_time_days" in tr:  # timing: the lane must beat the receiver's next replenishment
        prot = pd.Series(pd.to_numeric(tg["protection_days"], errors="coerce").to_numpy(float), index=key)
        p_t = prot.reindex(tk).to_numpy()
        ltv = pd.to_numeric(tr["lead_time_days"], errors="coerce").to_numpy(float)
        v.add(
            "lane_too_slow",
            ~(ltv < p_t),
            "lane lead time "
            + tr["lead_time_days"].astype(str)
            + " >= receiver's protection period "
            + pd.Series(p_t).astype(str)
            + " days",
        )
    v.add("unknown_store_sku", ~fk.isin(key) | ~tk.isin(key), "store x SKU not in the targets")
    uu = np.nan_to_num(u)
    sent = pd.Series(uu, index=fk).groupby(level=[0, 1]).sum()
    got = pd.Series(uu, index=tk).groupby(level=[0, 1]).sum()
    s_line = sent.reindex(fk).to_numpy()
    pos_f, need_f, oh_f = position.reindex(fk).to_numpy(), keep.reindex(fk).to_numpy(), on_hand.reindex(fk).to_numpy()
    v.add(
        "donor_on_hand",
        s_line > oh_f + 1e-9,
        "donor sends " + pd.Series(s_line).astype(str) + " in total, holds " + pd.Series(oh_f).astype(str),
    )
    v.add(
        "donor_below_need",
        pos_f - s_line < need_f - 1e-9,
        "donor position "
        + pd.Series(pos_f).astype(str)
        + " - "
        + pd.Series(s_line).astype(str)
        + " sent < need "
        + pd.Series(need_f).astype(str),
    )
    g_line = got.reindex(tk).to_numpy()
    pos_t, need_t = position.reindex(tk).to_numpy(), need.reindex(tk).to_numpy()
    v.add(
        "receiver_above_need",
        g_line > np.maximum(np.ceil(need_t - pos_t - 1e-9), 0) + 1e-9,
        "receiver position "
        + pd.Series(pos_t).astype(str)
        + " + "
        + pd.Series(g_line).astype(str)
        + " received > need "
        + pd.Series(need_t).astype(str),
    )
    both = sent.index.intersection(got.index)
    v.add("sends_and_receives", fk.isin(both) | tk.isin(both), "a store both sends and receives this SKU")
