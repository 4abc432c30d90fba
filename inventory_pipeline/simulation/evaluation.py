"""Policy evaluation on the digital twin: the pipeline against the rule a retailer runs today.

Protocol (identical for every run):
  * the network is the one that generated the landing zone (rebuilt from
    `_simulation/network.json`: same seed, same hidden demand). A landing zone imported from real
    data (`inventory-pipeline import-m5`) is rebuilt as a *replayed* network: every policy faces
    the recorded daily demand at the recorded prices. There the pricing stage is held (a recorded
    day has no answer to a price the retailer did not set) and the stress scenarios, which perturb
    the simulator's demand model, are skipped;
  * days before the evaluation window run the baseline rule, so both policies start the window
    from the same stock, the same open orders and the same history (`SwitchingPolicy`);
  * from the switch day on, each policy runs `days` days against the same demand draws (common
    random numbers), and KPIs are accumulated over exactly those days;
  * the pipeline re-forecasts every `cadence_days` and plans prices, orders and transfers daily.

What it produces: headline KPIs of both policies and their relative change, the same by ABC
class (revenue under the baseline) and by store, a trade-off frontier (baseline safety days vs
pipeline service level: stockout rate against average inventory value), and KPIs under four
stress scenarios. When the pipeline's pricing is enabled (the policy file's `pricing` section,
or `EvaluationConfig.pricing_enabled`), one more run, `pipeline/static_prices`, is the same
pipeline at the same service level with prices held, and `report["pricing"]` compares the
dynamic prices against it (margin, revenue, service, carrying cost, overstock, price changes,
guardrail violations); the guardrail violations of every pipeline run are summed into
`guardrail_violations_total`. Runs are independent and go to a process pool (`jobs`).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from multiprocessing import get_context
from pathlib import Path

import numpy as np
import pandas as pd

from ..core.kpis import ORDER_STABILITY_KPIS, abc_classes, relative_change, twin_kpis
from ..core.policy import load_policy
from .engine import FORECAST_HORIZONS, SimulationResult, simulate
from .floor import FloorRecorder
from .network import Network, NetworkConfig, build_network
from .policies import BaselinePolicy, SwitchingPolicy
from .scenarios import BASE, Scenario, stress_scenarios

HEADLINE = (
    "stockout_rate",
    "fill_rate",
    "lost_sales_units",
    "avg_inventory_value",
    "carrying_cost",
    "carrying_cost_pct_inventory_value",
    "carrying_cost_pct_revenue",
    "inventory_turns",
    "revenue",
    "gross_margin",
    "wape_h1",
    "wape_h7",
    "wape_h14",
    "mase_h7",
    "mape_h7",
    "bias_h7",
    "wape_sum14",
    "snaive_wape_h14",
    "snaive_wape_sum14",
    "oracle_wape_h14",
    "oracle_wape_sum14",
    "overstock_units",
    "overstock_value",
    "network_overstock_units",
    "network_overstock_value",
    "orders",
    "transfers",
    "price_changes",
    "price_decreases",
    *ORDER_STABILITY_KPIS,  # orders should not oscillate on noise
)
# the static- vs dynamic-price comparison (report["pricing"])
PRICING_KPIS = (
    "gross_margin",
    "gross_margin_pct",
    "revenue",
    "demand_units",
    "sales_units",
    "stockout_rate",
    "fill_rate",
    "carrying_cost",
    "avg_inventory_value",
    "overstock_units",
    "overstock_value",
    "network_overstock_units",
    "network_overstock_value",
    "price_changes",
    "price_decreases",
    "guardrail_violations",
)


@dataclass(frozen=True)
class EvaluationConfig:
    days: int = 90  # length of the evaluation window (the last `days` days of the network)
    cadence_days: int = 7  # the pipeline re-forecasts every this many days
    service_level: float | None = None  # the pipeline's (None: the policy file's)
    baseline_safety_days: float = 7.0
    frontier_safety_days: tuple[float, ...] = (0.0, 3.5, 7.0, 10.5, 14.0, 21.0)
    frontier_service_levels: tuple[float, ...] = (0.80, 0.90, 0.95, 0.98, 0.995, 0.999, 0.9999)
    frontier: bool = True
    scenarios: bool = True
    jobs: int = 2
    n_samples: int = 4  # store x SKU series whose trajectories are plotted
    pricing_enabled: bool | None = None  # the pipeline's pricing optimisation (None: the policy file's)
    takeover: str = "rule"  # the state both policies take over at the switch (TAKEOVERS)

    def __post_init__(self) -> None:
        if self.takeover not in TAKEOVERS:
            raise ValueError(f"unknown takeover {self.takeover!r}: {' | '.join(TAKEOVERS)}")
        if self.days < 7:
            raise ValueError(f"evaluation days must be >= 7, got {self.days}")
        if self.cadence_days < 1:
            raise ValueError(f"cadence_days must be >= 1, got {self.cadence_days}")


STATIC_PRICES = "pipeline/static_prices"  # run key of the pipeline with prices held


class EvaluationError(ValueError):
    pass


def _build(config) -> Network:
    return config.build() if hasattr(config, "build") else build_network(config)


@dataclass(frozen=True)
class RunSpec:
    """One simulation run: picklable, so it can go to a worker process."""

    key: str
    policy: str  # baseline | pipeline
    network: NetworkConfig
    policy_path: str
    switch_day: int
    safety_days: float = 7.0
    service_level: float | None = None
    cadence_days: int = 7
    scenario: Scenario = BASE
    samples: tuple[tuple[int, int], ...] = field(default_factory=tuple)
    pricing_enabled: bool | None = None  # pipeline only: None = the policy file's pricing switch
    takeover: str = "rule"  # the state the window starts from: a key of TAKEOVERS


# The rule that runs before the switch day, by takeover state, at the stores and at the DCs. Both
# policies of a comparison warm up under the same one (same draws), so they take over the identical
# stock and open orders; after the switch the baseline is the normal rule again (RunSpec.safety_days).
# "overstock" is what a previous, cautious store rule leaves behind: 4 weeks of safety stock,
# ordering up to 6 more weeks. Its DCs keep the normal rule, yet fill up too (on the 4 x 40 network
# about 100 days of supply against the rule's 28): the rule's moving average chases the stores' big
# batches. The cautious rule at the DCs as well left 300-600 days there, more than any retailer
# would inherit. "understock" is a lean rule everywhere, no safety stock and 3 days per order, so
# stores and DCs start the window thin (3 and 6 days of supply) and the sales history is more censored.
TAKEOVERS: dict[str, dict[str, dict]] = {
    "rule": {"store": dict(safety_days=7.0, order_up_days=14.0), "dc": dict(safety_days=7.0, order_up_days=14.0)},
    "overstock": {"store": dict(safety_days=28.0, order_up_days=42.0), "dc": dict(safety_days=7.0, order_up_days=14.0)},
    "understock": {"store": dict(safety_days=0.0, order_up_days=3.0), "dc": dict(safety_days=0.0, order_up_days=3.0)},
}


@dataclass
class EchelonRule:
    """The baseline rule with its own parameters at the stores (`store`) and at the DCs (`dc`)."""

    store: BaselinePolicy
    dc: BaselinePolicy
    name: str = "baseline"

    def decide(self, obs):
        return replace(self.store.decide(obs), dc=self.dc.decide(obs).dc)


def takeover_warmup(takeover: str, review_period_days: int):
    """The warm-up rule of a takeover state (see TAKEOVERS): the plain rule where both echelons
    share its parameters."""
    if takeover not in TAKEOVERS:
        raise ValueError(f"unknown takeover {takeover!r}: {' | '.join(TAKEOVERS)}")
    store, dc = (
        BaselinePolicy(review_period_days=review_period_days, **TAKEOVERS[takeover][e]) for e in ("store", "dc")
    )
    return store if store == dc else EchelonRule(store, dc)


def takeover_state(obs, unit_cost: np.ndarray) -> dict:
    """What a policy takes over at its first decision: stock and open orders at stores and DCs
    (units, and stock at cost), and a digest of the four arrays, equal only for identical states."""
    arrays = [
        np.ascontiguousarray(a, dtype=np.int64)
        for a in (obs.store_on_hand, obs.store_on_order, obs.dc_on_hand, obs.dc_on_order)
    ]
    digest = hashlib.sha256(b"".join(a.tobytes() for a in arrays)).hexdigest()[:16]
    return {
        "day": int(obs.t),
        "store_units": int(arrays[0].sum()),
        "store_on_order_units": int(arrays[1].sum()),
        "dc_units": int(arrays[2].sum()),
        "dc_on_order_units": int(arrays[3].sum()),
        "store_value": float((arrays[0] * unit_cost[None, :]).sum()),
        "dc_value": float((arrays[2] * unit_cost[None, :]).sum()),
        "digest": digest,
    }


@dataclass
class _NoteTakeover:
    """The main policy of a run, noting the state it takes over at its first decision."""

    main: object
    unit_cost: np.ndarray
    state: dict | None = None

    @property
    def name(self) -> str:
        return self.main.name

    def decide(self, obs):
        if self.state is None:
            self.state = takeover_state(obs, self.unit_cost)
        return self.main.decide(obs)


def run_spec(spec: RunSpec, network: Network | None = None) -> dict:
    """Simulate one spec and return its accumulators (a worker's whole job)."""
    t0 = time.perf_counter()
    net = network if network is not None else _build(spec.network)
    if spec.policy == "baseline":
        main = BaselinePolicy(review_period_days=spec.network.review_period_days, safety_days=spec.safety_days)
    elif spec.policy == "pipeline":
        from .pipeline_policy import PipelinePolicy

        main = PipelinePolicy(
            net,
            load_policy(spec.policy_path),
            service_level=spec.service_level,
            cadence_days=spec.cadence_days,
            pricing_enabled=spec.pricing_enabled,
        )
    else:
        raise ValueError(f"unknown policy {spec.policy!r}: baseline | pipeline")
    warmup = takeover_warmup(spec.takeover, spec.network.review_period_days)
    noted = _NoteTakeover(main, np.asarray(net.unit_cost, float))
    # the rule's run records the window's inventory floor (floor.py): its demand is at regular prices
    floor = FloorRecorder(spec.switch_day, len(net.sku_ids)) if spec.policy == "baseline" else None
    res: SimulationResult = simulate(
        net,
        SwitchingPolicy(warmup, noted, spec.switch_day),
        sink=floor,
        scenario=spec.scenario,
        measure_from=spec.switch_day,
        samples=list(spec.samples),
    )
    return {
        "key": spec.key,
        "store": res.store,
        "dc": res.dc,
        "days": res.measured_days,
        "daily": res.daily,
        "samples": res.samples,
        "seconds": time.perf_counter() - t0,
        # the engine's extras (e.g. margin_by_reason, expedited_units) and the state taken over
        "extra": dict(res.extra),
        "takeover": spec.takeover,
        "takeover_state": noted.state,
        "inventory_floor": None if floor is None else floor.daily_value(net.unit_cost),
        "forecasts_made": getattr(main, "forecasts_made", None),
        # pipeline runs: pricing as run, and the recommendations outside a guardrail (None: baseline)
        "pricing_enabled": main.policy.pricing.enabled if spec.policy == "pipeline" else None,
        "guardrail_violations": getattr(main, "guardrail_violations", None),
        "guardrail_violations_by": dict(getattr(main, "guardrail_violations_by", {})),
        "price_changes_recommended": getattr(main, "price_changes_recommended", None),
        "pricing_infeasible_days": getattr(main, "pricing_infeasible_days", None),
        "pricing_error": getattr(main, "last_pricing_error", ""),
        # pipeline runs: order and transfer lines breaking a rule of the blocking checks (None: baseline)
        "constraint_violations_by": (dict(main.constraint_violations_by) if spec.policy == "pipeline" else None),
        # pipeline runs: decisions and those that would wait for a planner, by type
        "decisions_by": dict(getattr(main, "decisions_by", {})),
        "review_by": dict(getattr(main, "review_by", {})),
    }


def _pick_samples(network: Network, n: int) -> tuple[tuple[int, int], ...]:
    """A fast mover, a medium one and slow movers from the largest store, for the plots."""
    l = int(np.argmax(network.store_factor))
    order = np.argsort(-network.sku_base_rate)
    idx = np.linspace(0, len(order) - 1, max(n, 1)).round().astype(int)
    return tuple((l, int(order[i])) for i in dict.fromkeys(idx))


def _run_all(specs: list, network: Network, jobs: int, say) -> dict:
    """Every run of `specs`, keyed by run name: in `jobs` spawned worker processes, or here."""
    t0 = time.perf_counter()
    runs = {}
    if jobs > 1 and len(specs) > 1:
        # spawn: a clean interpreter per worker, safe inside Dagster's multi-threaded processes
        with ProcessPoolExecutor(max_workers=jobs, mp_context=get_context("spawn")) as ex:
            futures = {ex.submit(run_spec, s): s.key for s in specs}
            for i, fut in enumerate(futures, 1):
                r = fut.result()
                runs[r["key"]] = r
                say(f"  [{i}/{len(specs)}] {r['key']}: {r['seconds']:.1f} s ({time.perf_counter() - t0:.0f} s elapsed)")
    else:
        for i, s in enumerate(specs, 1):
            runs[s.key] = run_spec(s, network)
            say(f"  [{i}/{len(specs)}] {s.key}: {runs[s.key]['seconds']:.1f} s")
    return runs


def evaluate(
    network: Network,
    policy_path: str | Path,
    ecfg: EvaluationConfig = EvaluationConfig(),
    progress: Callable[[str], None] | None = None,
) -> dict:
    """Run every comparison of the evaluation and return the report (see the module docstring)."""
    say = progress or (lambda m: None)
    cfg = network.config
    total = cfg.burn_in_days + cfg.days
    warm = total - ecfg.days - cfg.burn_in_days
    if warm < 70:
        raise EvaluationError(
            f"the network has {cfg.days} days; an evaluation of {ecfg.days} days leaves {warm} days "
            "of history for the forecast (needs >= 70): use fewer --days or a longer network"
        )
    pol = load_policy(policy_path)
    switch = total - ecfg.days
    rate = pol.costs.annual_holding_rate
    sl = ecfg.service_level  # None: the policy file's service levels (per class, cost-optimal or fixed)
    replayed = network.replay_demand is not None
    if replayed:  # recorded demand: prices stay as recorded, no demand-model stress tests
        if ecfg.pricing_enabled:
            raise EvaluationError(
                "a replayed (real-data) network cannot price: recorded demand has no answer to a "
                "new price; run it with --no-pricing"
            )
        ecfg = replace(ecfg, pricing_enabled=False, scenarios=False)
    pricing_on = pol.pricing.enabled if ecfg.pricing_enabled is None else bool(ecfg.pricing_enabled)
    base = dict(
        network=cfg,
        policy_path=str(policy_path),
        switch_day=switch,
        cadence_days=ecfg.cadence_days,
        takeover=ecfg.takeover,
    )
    pipe = dict(base, pricing_enabled=ecfg.pricing_enabled)  # every pipeline run prices as configured
    samples = _pick_samples(network, ecfg.n_samples)
    specs = [
        RunSpec("baseline", "baseline", safety_days=ecfg.baseline_safety_days, samples=samples, **base),
        RunSpec("pipeline", "pipeline", service_level=sl, samples=samples, **pipe),
    ]
    if pricing_on:  # the same pipeline with prices held: what the pricing stage adds
        specs.append(RunSpec(STATIC_PRICES, "pipeline", service_level=sl, **dict(base, pricing_enabled=False)))
    if ecfg.frontier:
        specs += [
            RunSpec(f"frontier/baseline/{sd:g}", "baseline", safety_days=sd, **base)
            for sd in ecfg.frontier_safety_days
            if sd != ecfg.baseline_safety_days
        ]
        specs += [
            RunSpec(f"frontier/pipeline/{x:g}", "pipeline", service_level=x, **pipe)
            for x in ecfg.frontier_service_levels
            if x != sl
        ]  # one fixed level for every item
    scenarios = stress_scenarios(network, ecfg.days) if ecfg.scenarios else []
    for sc in scenarios:
        specs += [
            RunSpec(
                f"scenario/{sc.name}/baseline", "baseline", safety_days=ecfg.baseline_safety_days, scenario=sc, **base
            ),
            RunSpec(f"scenario/{sc.name}/pipeline", "pipeline", service_level=sl, scenario=sc, **pipe),
        ]
    say(
        f"evaluation: {len(specs)} simulation runs of {ecfg.days} days ({len(network.store_ids)} stores x "
        f"{len(network.sku_ids)} SKUs), "
        f"{ecfg.jobs} worker(s)"
    )
    t0 = time.perf_counter()
    runs = _run_all(specs, network, ecfg.jobs, say)
    return _report(network, ecfg, pol, sl, switch, runs, scenarios, rate, samples, time.perf_counter() - t0, pricing_on)


def run_kpis(run: dict, rate: float, ls_mask=None, ds_mask=None, store_only: bool = False) -> dict:
    st = {k: (v[ls_mask] if ls_mask is not None else v) for k, v in run["store"].items()}
    dc = None if store_only else {k: (v[ds_mask] if ds_mask is not None else v) for k, v in run["dc"].items()}
    return twin_kpis(st, dc, run["days"], rate, FORECAST_HORIZONS)


def _compare(b: dict, p: dict) -> dict:
    return {"baseline": b, "pipeline": p, "change": relative_change(b, p)}


def pricing_section(runs: dict, rate: float, enabled: bool) -> dict:
    """`report["pricing"]`: the pipeline with dynamic prices (`runs["pipeline"]`) against the same
    pipeline with prices held (`runs[STATIC_PRICES]`), on `PRICING_KPIS`; and the guardrail
    violations of every pipeline run (`guardrail_violations_total`, by run and by guardrail)."""
    by_run = {k: int(r["guardrail_violations"]) for k, r in runs.items() if r.get("guardrail_violations") is not None}
    by_guardrail: dict = {}
    for r in runs.values():
        for g, n in (r.get("guardrail_violations_by") or {}).items():
            by_guardrail[g] = by_guardrail.get(g, 0) + int(n)
    infeasible = {k: int(r["pricing_infeasible_days"]) for k, r in runs.items() if r.get("pricing_infeasible_days")}
    out = {
        "enabled": bool(enabled),
        "guardrail_violations_total": int(sum(by_run.values())),
        "guardrail_violations_by_run": by_run,
        "guardrail_violations_by_guardrail": by_guardrail,
        # days a pipeline run could not solve the pricing problem and held prices (the asset would fail)
        "pricing_infeasible_days": infeasible,
        "pricing_errors": {k: r["pricing_error"] for k, r in runs.items() if r.get("pricing_error")},
    }
    if not enabled or STATIC_PRICES not in runs:
        out["note"] = (
            "pricing optimisation disabled (policy file `pricing.enabled`): the pipeline holds prices, "
            "no static-price run was made"
        )
        return out

    def kp(run):
        k = run_kpis(run, rate)
        return {
            **{x: k[x] for x in PRICING_KPIS if x in k},
            "guardrail_violations": float(run["guardrail_violations"] or 0),
        }

    static, dynamic = kp(runs[STATIC_PRICES]), kp(runs["pipeline"])
    out.update(
        static=static,
        dynamic=dynamic,
        change=relative_change(static, dynamic),
        difference={k: dynamic[k] - static[k] for k in static},
        note="the same pipeline at the same service level, prices held vs prices from the pricing stage; "
        "same demand draws",
    )
    return out


def _breakdowns(network, b: dict, p: dict, rate: float) -> tuple[dict, dict]:
    """The comparison per ABC class (by the baseline's revenue per SKU: both policies are judged
    on the same items) and per store."""
    cls = abc_classes(b["store"]["revenue"].sum(axis=0))
    by_abc, by_store = {}, {}
    for c in ("A", "B", "C"):
        m = cls == c
        if m.any():
            ls, ds = (
                np.broadcast_to(m, b["store"]["demand"].shape),
                np.broadcast_to(m, b["dc"]["inventory_value_days"].shape),
            )
            by_abc[c] = {
                "skus": int(m.sum()),
                **_compare(run_kpis(b, rate, ls, ds), run_kpis(p, rate, ls, ds)),
            }
    for l, sid in enumerate(network.store_ids):
        ls = np.zeros(b["store"]["demand"].shape, bool)
        ls[l] = True
        by_store[str(sid)] = _compare(run_kpis(b, rate, ls, store_only=True), run_kpis(p, rate, ls, store_only=True))
    return by_abc, by_store


def _frontier(runs: dict, ecfg, pol, sl, rate: float) -> dict:
    """Stockout rate against inventory of the baseline's safety-days sweep and the pipeline's
    service-level sweep, which dominates, and the inventory targets read off them."""

    def point(run, **kw):
        k = run_kpis(run, rate)
        return {
            **kw,
            "stockout_rate": k["stockout_rate"],
            "fill_rate": k["fill_rate"],
            "avg_inventory_value": k["avg_inventory_value"],
            "carrying_cost": k["carrying_cost"],
        }

    fb = [
        point(
            runs["baseline"] if sd == ecfg.baseline_safety_days else runs[f"frontier/baseline/{sd:g}"],
            safety_days=sd,
        )
        for sd in ecfg.frontier_safety_days
    ]
    fp = [
        point(runs["pipeline"] if x == sl else runs[f"frontier/pipeline/{x:g}"], service_level=x)
        for x in sorted(set(ecfg.frontier_service_levels) | ({sl} if sl is not None else set()))
    ]
    frontier = {
        "baseline": fb,
        "pipeline": fp,
        "dominance": frontier_dominance(fb, fp),
        "pipeline_policy": point(runs["pipeline"], service_level=_sl_label(pol, sl)),
    }
    frontier["targets"] = replenishment_targets(fb, fp, frontier["pipeline_policy"], ecfg.baseline_safety_days)
    return frontier


def _meta(network, ecfg, pol, sl, switch, runs, seconds, pricing_on, b, p) -> dict:
    """What was evaluated: the network, the evaluation settings and window, the policy, the runs."""
    dates = b["daily"]["date"]
    return {
        "network": {
            **network.config.to_dict(),
            "source": getattr(network.config, "source", "simulated"),
            "stores": int(len(network.store_ids)),
            "skus": int(len(network.sku_ids)),
            "store_ids": [str(x) for x in network.store_ids],
        },
        "evaluation": {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(ecfg).items()},
        "window": [str(dates.iloc[0].date()), str(dates.iloc[-1].date())],
        "switch_day": switch,
        "takeover": ecfg.takeover,
        "service_level": _sl_label(pol, sl),
        "policy_version": pol.tag,
        "pricing_enabled": bool(pricing_on),
        "pipeline_forecasts_made": p["forecasts_made"],
        "runs": len(runs),
        "seconds": round(seconds, 1),
        "run_seconds": {k: round(v["seconds"], 1) for k, v in runs.items()},
    }


def _report(network, ecfg, pol, sl, switch, runs, scenarios, rate, samples, seconds, pricing_on=False) -> dict:
    b, p = runs["baseline"], runs["pipeline"]
    report = _compare(run_kpis(b, rate), run_kpis(p, rate))
    report["by_abc"], report["by_store"] = _breakdowns(network, b, p, rate)
    if ecfg.frontier:
        report["frontier"] = _frontier(runs, ecfg, pol, sl, rate)
    report["scenarios"] = {}
    for sc in scenarios:
        r = _compare(
            run_kpis(runs[f"scenario/{sc.name}/baseline"], rate), run_kpis(runs[f"scenario/{sc.name}/pipeline"], rate)
        )
        report["scenarios"][sc.name] = {
            "description": sc.description,
            "window_days": [sc.start, sc.start + sc.days],
            **r,
        }
    report["pricing"] = pricing_section(runs, rate, pricing_on)
    report["replenishment"] = replenishment_section(runs)
    by_reason = margin_by_reason(runs)
    if by_reason:  # only when the engine reports it
        report["margin_by_reason"] = by_reason
    report["governance"] = {
        "twin_review_load": review_load(runs.get("pipeline", {}), runs.get("pipeline", {}).get("days"))
    }
    report["meta"] = _meta(network, ecfg, pol, sl, switch, runs, seconds, pricing_on, b, p)
    report["_runs"] = {"baseline": b, "pipeline": p}  # trajectories for the plots (not written to JSON)
    report["_samples"] = [(str(network.store_ids[l]), str(network.sku_ids[s])) for l, s in samples]
    return report


def margin_by_reason(runs: dict, keys=("baseline", "pipeline", STATIC_PRICES)) -> dict:
    """Gross margin by reason of the price in force, per run that reports it (the engine's
    `extra["margin_by_reason"]`: reason -> revenue, cogs, units, store_sku_days), with the margin
    and its share of revenue added. Runs without it are left out; {} when none has it."""
    out = {}
    for k in keys:
        by = ((runs.get(k) or {}).get("extra") or {}).get("margin_by_reason")
        if by:
            out[k] = {
                reason: {
                    **{f: float(v) for f, v in d.items()},
                    "gross_margin": float(d["revenue"] - d["cogs"]),
                    "gross_margin_pct": float((d["revenue"] - d["cogs"]) / d["revenue"])
                    if d["revenue"]
                    else float("nan"),
                }
                for reason, d in by.items()
            }
    return out


def margin_by_reason_table(by_reason: dict) -> pd.DataFrame:
    """`margin_by_reason` as one table: a row per run x reason."""
    rows = [{"run": run, "reason": reason, **d} for run, by in by_reason.items() for reason, d in by.items()]
    return pd.DataFrame(rows)


def _sl_label(pol, sl: float | None) -> str | float:
    """The pipeline's service level as run: a fixed level, or the policy file's mode."""
    return sl if sl is not None else f"policy file ({pol.replenishment.service_mode})"


def replenishment_targets(baseline: list[dict], pipeline: list[dict], policy_point: dict, safety_days: float) -> dict:
    """Issue #6's targets against the baseline rule at its default safety days, on the pipeline's
    frontier (one fixed service level per point, interpolated, no extrapolation) and at the
    policy-file point:
      * at the baseline's average inventory value or less, stockout rate >= 40% lower;
      * at the baseline's stockout rate or less, carrying cost (= inventory value x rate) >= 20% lower."""
    b = next(q for q in baseline if q.get("safety_days") == safety_days)
    pts = [*pipeline, policy_point]
    px = np.array([q["avg_inventory_value"] for q in pts])
    py = np.array([q["stockout_rate"] for q in pts])
    so_at_inv = _interp(b["avg_inventory_value"], px[:-1], py[:-1])  # on the frontier at the baseline's inventory
    inv_at_so = _interp(b["stockout_rate"], py[:-1], px[:-1])
    # the best point holding at most the baseline's inventory (stockout rate), or its stockout rate (inventory)
    so = [v for v in [so_at_inv, *py[px <= b["avg_inventory_value"]]] if np.isfinite(v)]
    inv = [v for v in [inv_at_so, *px[py <= b["stockout_rate"]]] if np.isfinite(v)]
    so_red = 1 - min(so) / b["stockout_rate"] if so and b["stockout_rate"] > 0 else float("nan")
    inv_red = 1 - min(inv) / b["avg_inventory_value"] if inv and b["avg_inventory_value"] > 0 else float("nan")
    pp = policy_point
    return {
        "baseline": {"avg_inventory_value": b["avg_inventory_value"], "stockout_rate": b["stockout_rate"]},
        "stockout_reduction_at_baseline_inventory": so_red,
        "stockout_target": 0.40,
        "stockout_target_met": bool(so_red >= 0.40),
        "carrying_cost_reduction_at_baseline_stockout": inv_red,
        "carrying_cost_target": 0.20,
        "carrying_cost_target_met": bool(inv_red >= 0.20),
        "policy_point": {
            "avg_inventory_value": pp["avg_inventory_value"],
            "stockout_rate": pp["stockout_rate"],
            "inventory_change": pp["avg_inventory_value"] / b["avg_inventory_value"] - 1,
            "stockout_change": pp["stockout_rate"] / b["stockout_rate"] - 1 if b["stockout_rate"] else float("nan"),
        },
    }


def _interp(x: float, xs: np.ndarray, ys: np.ndarray) -> float:
    """Linear interpolation inside the sampled range only (nan outside: no extrapolation)."""
    o = np.argsort(xs)
    xs, ys = xs[o], ys[o]
    return float(np.interp(x, xs, ys)) if len(xs) and xs[0] <= x <= xs[-1] else float("nan")


def frontier_dominance(baseline: list[dict], pipeline: list[dict]) -> dict:
    """Compare the two frontiers where they overlap, both ways, without extrapolating:

    * `at_baseline_points`: at each baseline point's inventory value, the pipeline's stockout
      rate interpolated on its own frontier;
    * `at_pipeline_points`: for each pipeline point, the inventory value the baseline needs for
      the same stockout rate (interpolated on the baseline frontier), and the saving;
    * `pipeline_dominates`: True when every comparable point favours the pipeline, False when one
      does not, None when the frontiers do not overlap at all;
    * Pareto dominance, which needs no interpolation: a baseline point is `dominated` when some
      pipeline point holds no more inventory and stocks out less (`pipeline_best_at_or_below`: the
      lowest stockout rate of the pipeline points at or below its inventory);
      `dominates_every_baseline_point` is True when every baseline point is.
    """
    bx = np.array([q["avg_inventory_value"] for q in baseline])
    by = np.array([q["stockout_rate"] for q in baseline])
    px = np.array([q["avg_inventory_value"] for q in pipeline])
    py = np.array([q["stockout_rate"] for q in pipeline])
    at_b = []
    for x, y in zip(bx, by):
        yp = _interp(x, px, py)
        below = py[px <= x]
        best = float(below.min()) if len(below) else float("nan")
        at_b.append(
            {
                "avg_inventory_value": float(x),
                "baseline_stockout_rate": float(y),
                "pipeline_stockout_rate": yp,
                "pipeline_better": bool(yp < y) if np.isfinite(yp) else None,
                "pipeline_best_at_or_below": best,
                "dominated": bool(best < y),
            }
        )
    at_p = []
    for x, y in zip(px, py):
        xb = _interp(y, by, bx)  # the baseline's inventory at the pipeline's stockout rate
        at_p.append(
            {
                "pipeline_stockout_rate": float(y),
                "pipeline_inventory_value": float(x),
                "baseline_inventory_value_same_stockout": xb,
                "inventory_saving": (xb - x) / xb if np.isfinite(xb) else float("nan"),
                "pipeline_better": bool(x < xb) if np.isfinite(xb) else None,
            }
        )
    verdicts = [v["pipeline_better"] for v in at_b + at_p if v["pipeline_better"] is not None]
    return {
        "at_baseline_points": at_b,
        "at_pipeline_points": at_p,
        "pipeline_dominates": (all(verdicts) if verdicts else None),
        "comparable_points": len(verdicts),
        "baseline_points_dominated": sum(v["dominated"] for v in at_b),
        "dominates_every_baseline_point": bool(at_b) and all(v["dominated"] for v in at_b),
    }


# ---- writing the report -----------------------------------------------------------------------


def _fmt(k: str, v: float) -> str:
    if v is None or (isinstance(v, float) and not np.isfinite(v)):
        return "n/a"
    if (
        k
        in (
            "stockout_rate",
            "fill_rate",
            "gross_margin_pct",
            "order_days_share",
            "consecutive_order_share",
            "consecutive_po_share",
        )
        or k.split("_")[0] in ("wape", "mape", "bias")
        or k.startswith(("snaive_wape", "snaive_mape", "snaive_bias", "oracle_wape", "carrying_cost_pct"))
    ):
        return f"{v:.2%}"
    if k in ("overstock_units", "network_overstock_units"):
        return f"{v:,.1f}"
    if "mase" in k or k == "inventory_turns" or k.startswith(("bullwhip", "order_lines_per_item_week")):
        return f"{v:.2f}"
    return f"{v:,.0f}"


def kpi_table(report: dict, keys=HEADLINE) -> pd.DataFrame:
    rows = []
    for k in keys:
        if k in report["baseline"]:
            c = report["change"].get(k)
            c = float("nan") if c is None else c  # a kpis.json read back has null for nan
            rows.append(
                {
                    "kpi": k,
                    "baseline": _fmt(k, report["baseline"][k]),
                    "pipeline": _fmt(k, report["pipeline"][k]),
                    "change": f"{c:+.1%}" if np.isfinite(c) else "n/a",
                }
            )
    return pd.DataFrame(rows)


def pricing_table(report: dict) -> pd.DataFrame:
    """Static vs dynamic prices (empty when pricing was not enabled)."""
    pr = report.get("pricing") or {}
    if "static" not in pr:
        return pd.DataFrame(columns=["kpi", "static_prices", "dynamic_prices", "change"])
    rows = []
    for k in PRICING_KPIS:
        if k in pr["static"]:
            c = pr["change"].get(k)
            c = float("nan") if c is None else c
            rows.append(
                {
                    "kpi": k,
                    "static_prices": _fmt(k, pr["static"][k]),
                    "dynamic_prices": _fmt(k, pr["dynamic"][k]),
                    "change": f"{c:+.1%}" if np.isfinite(c) else "n/a",
                }
            )
    return pd.DataFrame(rows)


def replenishment_section(runs: dict) -> dict:
    """`report["replenishment"]`: order and transfer lines breaking a rule of the blocking checks
    (`order_rules`, `transfer_rules`), summed over every simulated day of every pipeline run."""
    by_run = {
        k: int(sum(r["constraint_violations_by"].values()))
        for k, r in runs.items()
        if r.get("constraint_violations_by") is not None
    }
    by_rule: dict = {}
    for r in runs.values():
        for g, n in (r.get("constraint_violations_by") or {}).items():
            by_rule[g] = by_rule.get(g, 0) + int(n)
    return {
        "constraint_violations_total": int(sum(by_run.values())),
        "constraint_violations_by_run": by_run,
        "constraint_violations_by_rule": by_rule,
        "pipeline_runs": len(by_run),
    }


def review_load(run: dict, days: int | None) -> list[dict]:
    """Per decision type (and all): decisions of the headline run, those the approval rules would
    send to a planner, and the share — the review workload the policy file implies."""
    dec, rev = run.get("decisions_by") or {}, run.get("review_by") or {}
    rows = [
        {
            "decision_type": t,
            "decisions": int(n),
            "would_wait_for_review": int(rev.get(t, 0)),
            "review_share": rev.get(t, 0) / n if n else float("nan"),
            "per_day": rev.get(t, 0) / days if days else float("nan"),
        }
        for t, n in sorted(dec.items())
    ]
    n, r = sum(dec.values()), sum(rev.values())
    if n:
        rows.append(
            {
                "decision_type": "all",
                "decisions": n,
                "would_wait_for_review": r,
                "review_share": r / n,
                "per_day": r / days if days else float("nan"),
            }
        )
    return rows


def governance_table(report: dict) -> pd.DataFrame:
    """The governance section as one table: the twin's review load, and where the report was
    given the decision log's state, the override rate per stage (overrides / sent for review)."""
    g = report.get("governance") or {}
    load = pd.DataFrame(g.get("twin_review_load") or [])
    rates = pd.DataFrame(g.get("override_rates") or [])
    if len(rates):
        rates = rates[
            ["decision_type", "sent_for_review", "approved", "rejected", "overridden", "pending", "override_rate"]
        ]
        load = load.merge(rates, on="decision_type", how="outer") if len(load) else rates
    return load


def _replenishment_lines(report: dict) -> list[str]:
    lines = []
    t = (report.get("frontier") or {}).get("targets")
    if t:
        pp = t["policy_point"]
        d = report["frontier"]["dominance"]
        lines += [
            f"frontier: {d['baseline_points_dominated']} of {len(d['at_baseline_points'])} baseline points "
            "(safety days) "
            f"are dominated by a pipeline point with no more inventory and a lower stockout rate",
            f"targets vs the baseline rule (frontier of fixed service levels, interpolated): stockout rate at the "
            f"baseline's inventory or less {-t['stockout_reduction_at_baseline_inventory']:+.1%} (target -40%: "
            f"{'met' if t['stockout_target_met'] else 'NOT met'}); carrying cost at the baseline's stockout rate or "
            f"less {-t['carrying_cost_reduction_at_baseline_stockout']:+.1%} (target -20%: "
            f"{'met' if t['carrying_cost_target_met'] else 'NOT met'})",
            f"  policy-file service levels: inventory {pp['inventory_change']:+.1%}, stockout rate "
            f"{pp['stockout_change']:+.1%} vs the baseline",
        ]
    r = report.get("replenishment")
    if r:
        lines.append(
            f"order and transfer rule violations over {r['pipeline_runs']} pipeline runs, every day: "
            f"{r['constraint_violations_total']}"
            + (f" ({r['constraint_violations_by_rule']})" if r["constraint_violations_by_rule"] else "")
        )
    return lines


def _pricing_lines(report: dict) -> list[str]:
    pr = report.get("pricing")
    if not pr:
        return []
    total = f"guardrail violations over all pipeline runs: {pr['guardrail_violations_total']}"
    inf = pr.get("pricing_infeasible_days") or {}
    if inf:
        total += f"; pricing infeasible (prices held) on {sum(inf.values())} run-days ({', '.join(inf)})"
    if "static" not in pr:
        return [f"pricing: disabled (prices held, no static-price run); {total}"]
    s, d, c = pr["static"], pr["dynamic"], pr["change"]

    def pct(k):
        v = c.get(k)
        return f"{v:+.1%}" if v is not None and np.isfinite(v) else "n/a"

    return [
        f"pricing vs static prices: gross margin {pct('gross_margin')} ({_fmt('x', s['gross_margin'])} -> "
        f"{_fmt('x', d['gross_margin'])}), revenue {pct('revenue')}, stockout rate "
        f"{_fmt('stockout_rate', s['stockout_rate'])} -> {_fmt('stockout_rate', d['stockout_rate'])}, carrying cost "
        f"{pct('carrying_cost')}",
        f"  overstock (units above 8 weeks of supply): stores {pct('overstock_units')} "
        f"({_fmt('overstock_units', s['overstock_units'])} -> {_fmt('overstock_units', d['overstock_units'])} "
        "units/day), "
        f"network incl. DCs {pct('network_overstock_units')} "
        f"({_fmt('overstock_units', s['network_overstock_units'])} -> "
        f"{_fmt('overstock_units', d['network_overstock_units'])})",
        f"  {d['price_changes']:,.0f} price changes ({d['price_decreases']:,.0f} decreases); {total}",
    ]


def scenario_table(report: dict) -> pd.DataFrame:
    rows = []
    for name, r in report.get("scenarios", {}).items():
        for pol in ("baseline", "pipeline"):
            k = r[pol]
            rows.append(
                {
                    "scenario": name,
                    "policy": pol,
                    "stockout_rate": _fmt("stockout_rate", k["stockout_rate"]),
                    "fill_rate": _fmt("fill_rate", k["fill_rate"]),
                    "lost_sales_units": _fmt("x", k["lost_sales_units"]),
                    "avg_inventory_value": _fmt("x", k["avg_inventory_value"]),
                    "gross_margin": _fmt("x", k["gross_margin"]),
                }
            )
    return pd.DataFrame(rows)


def jsonable(x):
    if isinstance(x, dict):
        return {k: jsonable(v) for k, v in x.items() if not str(k).startswith("_")}
    if isinstance(x, (list, tuple)):
        return [jsonable(v) for v in x]
    if isinstance(x, (np.floating, float)):
        return float(x) if np.isfinite(x) else None
    if isinstance(x, np.integer):
        return int(x)
    return x


def write_report(report: dict, out: str | Path) -> dict[str, Path]:
    """kpis.json, report.html and the PNG plots into `out`. Returns the paths written."""
    from ..core.plots import plot_frontier, plot_inventory, plot_twin_series

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"kpis": out / "kpis.json", "report": out / "report.html"}
    paths["kpis"].write_text(json.dumps(jsonable(report), indent=2, sort_keys=False) + "\n")
    runs = report["_runs"]
    paths["forecast_plot"] = plot_twin_series(
        {k: runs[k]["samples"] for k in ("baseline", "pipeline")}, report["_samples"], out / "forecast_vs_actual.png"
    )
    paths["inventory_plot"] = plot_inventory(
        {k: runs[k]["daily"] for k in ("baseline", "pipeline")}, out / "inventory.png"
    )
    if "frontier" in report:
        paths["frontier_plot"] = plot_frontier(report["frontier"], out / "frontier.png")
    _write_html(report, paths, out)
    return paths


def _breakdown_tables(report: dict) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The report's per-ABC-class and per-store comparisons as display tables."""
    abc = pd.DataFrame(
        [
            {
                "class": c,
                "skus": r["skus"],
                **{
                    f"{pol} {k}": _fmt(k, r[pol][k])
                    for pol in ("baseline", "pipeline")
                    for k in ("stockout_rate", "fill_rate", "avg_inventory_value")
                },
            }
            for c, r in report["by_abc"].items()
        ]
    )
    stores = pd.DataFrame(
        [
            {
                "store": s,
                **{
                    f"{pol} {k}": _fmt(k, r[pol][k])
                    for pol in ("baseline", "pipeline")
                    for k in ("stockout_rate", "fill_rate", "avg_store_inventory_value")
                },
            }
            for s, r in report["by_store"].items()
        ]
    )
    return abc, stores


def _dominance_html(report: dict) -> str:
    """The frontier comparison's verdict and its tables ("" without a frontier)."""
    if "frontier" not in report:
        return ""
    d = report["frontier"]["dominance"]
    verdict = {
        True: "the pipeline is better at every comparable point",
        False: "the pipeline is NOT better everywhere",
        None: "the frontiers do not overlap (no comparable point)",
    }[d["pipeline_dominates"]]
    return (
        f"<p><b>{verdict}</b> ({d['comparable_points']} comparable points; interpolation inside each frontier "
        f"only, no extrapolation). Pareto: {d['baseline_points_dominated']} of {len(d['at_baseline_points'])} "
        f"baseline points have a pipeline point with no more inventory and fewer stockouts.</p>"
        + pd.DataFrame(d["at_pipeline_points"]).to_html(index=False, float_format=lambda v: f"{v:,.4f}")
        + pd.DataFrame(d["at_baseline_points"]).to_html(index=False, float_format=lambda v: f"{v:,.4f}")
    )


def _pricing_html(report: dict) -> str:
    """The pricing section: dynamic vs static prices and the guardrail count."""
    pr = report.get("pricing") or {}
    if "static" in pr:
        return (
            f"<p>{pr['note']}. Guardrail violations over all pipeline runs: "
            f"<b>{pr['guardrail_violations_total']}</b>"
            + (
                f" (by guardrail: {pr['guardrail_violations_by_guardrail']})"
                if pr["guardrail_violations_by_guardrail"]
                else ""
            )
            + f"; run-days with an infeasible pricing problem (prices held): "
            f"{sum(pr['pricing_infeasible_days'].values())}.</p>" + pricing_table(report).to_html(index=False)
        )
    return f"<p>{pr.get('note', 'not run')}.</p>"


def _write_html(report: dict, paths: dict, out: Path) -> None:
    m = report["meta"]
    abc, stores = _breakdown_tables(report)
    imgs = "".join(
        f'<h2>{t}</h2><img src="{paths[k].name}" style="max-width:100%">'
        for k, t in (
            ("frontier_plot", "Trade-off frontier"),
            ("inventory_plot", "Inventory and service over the window"),
            ("forecast_plot", "Forecast vs actual (sample series)"),
        )
        if k in paths
    )
    dom = _dominance_html(report)
    pricing_html = _pricing_html(report)
    html = f"""<!doctype html><html><head><meta charset="utf-8"><title>inventory_pipeline policy evaluation</title>
<style>body{{font-family:sans-serif;max-width:1100px;margin:2em auto}} table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:3px 8px;text-align:right}}</style></head><body>
<h1>Policy evaluation: pipeline vs baseline rule</h1>
<p>Window {m["window"][0]} .. {m["window"][1]} ({m["evaluation"]["days"]} days), network
{m["network"]["stores"]} stores x {m["network"]["skus"]} SKUs (seed {m["network"]["seed"]}); pipeline service level
{m["service_level"]}, re-forecast every {m["evaluation"]["cadence_days"]} days; policy {m["policy_version"]};
{m["runs"]} runs in {m["seconds"]} s. Both policies share the history before the window and face the same demand
draws.</p>
<h2>Headline KPIs</h2>{kpi_table(report).to_html(index=False)}
<h2>Governance: review load and override rate</h2>{_governance_html(report)}
<h2>Replenishment targets and rules</h2>{"".join(f"<p>{x}</p>" for x in _replenishment_lines(report))}
<h2>Pricing: dynamic vs static prices</h2>{pricing_html}{_margin_by_reason_html(report)}
<h2>By ABC class (revenue under the baseline)</h2>{abc.to_html(index=False)}
<h2>Stress scenarios</h2>{scenario_table(report).to_html(index=False) if report.get("scenarios") else "<p>not run</p>"}
{imgs}
<h2>Frontier comparison</h2>{dom}
<h2>By store</h2>{stores.to_html(index=False)}
</body></html>"""
    paths["report"].write_text(html)


def _margin_by_reason_html(report: dict) -> str:
    if not report.get("margin_by_reason"):
        return ""
    return "<h3>Gross margin by reason of the price in force</h3>" + margin_by_reason_table(
        report["margin_by_reason"]
    ).to_html(index=False, float_format=lambda v: f"{v:,.4g}")


def _governance_html(report: dict) -> str:
    t = governance_table(report)
    if not len(t):
        return "<p>no decisions</p>"
    note = (
        "<p>would_wait_for_review: decisions of the headline twin run that the policy's approval rules send to a "
        "planner (the twin executes them as if approved). override_rate: planner overrides / decisions sent for "
        "review, from the decision log's events.</p>"
    )
    return note + t.to_html(index=False, float_format=lambda x: f"{x:.4g}")


def headline_text(report: dict) -> str:
    m = report["meta"]
    t = kpi_table(report)
    lines = [
        f"policy evaluation {m['window'][0]} .. {m['window'][1]} ({m['evaluation']['days']} days, "
        f"pipeline service level {m['service_level']}, same demand draws for both):",
        t.to_string(index=False),
        *_replenishment_lines(report),
        *_pricing_lines(report),
        *_governance_lines(report),
    ]
    if report.get("margin_by_reason"):
        lines += [
            "gross margin by reason of the price in force:",
            margin_by_reason_table(report["margin_by_reason"]).to_string(
                index=False, float_format=lambda v: f"{v:,.4g}"
            ),
        ]
    return "\n".join(lines)


def _governance_lines(report: dict) -> list[str]:
    g = report.get("governance") or {}
    load = {r["decision_type"]: r for r in g.get("twin_review_load") or []}
    out = []
    if "all" in load:
        a = load["all"]
        out.append(
            f"review load under the policy's approval rules: {a['would_wait_for_review']:,} of {a['decisions']:,} "
            f"decisions ({a['review_share']:.1%}, {a['per_day']:.1f} a day) would wait for a planner; by type "
            + ", ".join(f"{t} {r['review_share']:.1%}" for t, r in load.items() if t != "all")
        )
    rates = {r["decision_type"]: r for r in g.get("override_rates") or []}
    if "all" in rates and rates["all"]["sent_for_review"]:
        a = rates["all"]
        out.append(
            f"override rate in the decision log: {a['overridden']} of {a['sent_for_review']} decisions sent for "
            f"review ({a['override_rate']:.1%}); approved {a['approved']}, rejected {a['rejected']}, pending "
            f"{a['pending']}"
        )
    return out


def add_override_rates(report: dict, warehouse) -> dict:
    """Put the decision log's override rates (every plan in the warehouse) into the report."""
    from ..core.decisions import override_rates

    if warehouse is None or not warehouse.partitions("decision_log"):
        return report
    state = warehouse.query(f"select decision_type, status, status_history from {warehouse.scan('decision_log')}")
    report.setdefault("governance", {})["override_rates"] = override_rates(state).to_dict("records")
    return report
