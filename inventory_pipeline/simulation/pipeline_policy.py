"""The `pipeline` policy of the digital twin: the asset graph's own stages, in the twin.

Each simulated day the policy reads what the retailer observed through `TwinSource`, the twin's
implementation of `core.sources.Source` (history as `marts.fct_daily_demand`, positions as
`marts.fct_inventory_positions`, master data as `marts.dim_products` / `dim_locations`, lanes as
`staging.stg_lanes`, lead times as `marts.fct_order_lead_times`, the price book of the changes
it executed), and runs the stage objects of `core.stages` the assets run, in the same order:

    demand_forecast        FORECAST.read / run / serve   (every `cadence_days`; in between the
                                                          last forecast is rolled forward)
    price_recommendations  \
    replenishment_orders    core.stages.plan_decisions   (every day)
    rebalancing_transfers  /

Nothing is re-implemented here: the frames are built from the twin's state, the decisions by the
same code as the assets'. A test runs `plan_decisions` over the warehouse source and gets the
assets' outputs; another checks the twin's source gives the frames dbt built from the landing
zone the twin wrote. Decisions are executed as if approved (the approval workflow is measured
separately, `decisions_by` / `review_by`).

Every decision day the policy counts what the evaluation reports: the stages' rule checks
(`guardrail_violations` per guardrail, `constraint_violations_by` per order and transfer rule),
the price changes recommended, and the approval routing. `PipelinePolicy(pricing_enabled=...)`
overrides the policy file's pricing switch (the evaluation's static-price comparison runs the
same pipeline with pricing off). A day on which the pricing problem is infeasible
(`PricingInfeasible`, where the asset would fail) is planned with prices held and counted in
`pricing_infeasible_days`, so one bad day does not end an evaluation.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import pandas as pd

from ..core.allocator import release_free_memory
from ..core.decisions import propose, route
from ..core.policy import Policy as DecisionPolicy
from ..core.pricing import PricingInfeasible, price_book, price_changed
from ..core.sources import PriceBook
from ..core.stages import FORECAST, PRICING, REBALANCING, REPLENISHMENT, plan_decisions
from .engine import KIND_STORE, KIND_SUPPLIER, KIND_TRANSFER
from .landing import format_order_ids
from .network import Network
from .policies import PRICE_REASONS, History, Observation, Orders
from .promotion_plan import known_daily_promotions

PRICE_LOG_COLUMNS = ["location_id", "sku_id", "plan_date", "decision_type", "status", "new_price"]
FORECAST_RECORD_DAYS = 14  # horizons handed to the engine for forecast-accuracy KPIs
# the pricing stage's change_reason as the engine's reason codes ("hold" keeps the price: no code needed)
REASON_CODES = {r: i for i, r in enumerate(PRICE_REASONS)} | {"hold": 0}


# ---- frames as the warehouse has them --------------------------------------------------------


def products_frame(network: Network) -> pd.DataFrame:
    """`marts.dim_products`: products with their supplier's lead time and spread."""
    sup = network.suppliers.rename(
        columns={"lead_time_days": "supplier_lead_time_days", "lead_time_std_days": "supplier_lead_time_std_days"}
    )
    cols = ["sku_id", "category", "supplier_id", "unit_cost", "base_price", "case_pack", "min_order_qty"]
    return network.products[cols].merge(sup, on="supplier_id", how="left")


def locations_frame(network: Network) -> pd.DataFrame:
    """`marts.dim_locations`: stores carry the lead time and cost of the lane from their DC."""
    loc = network.locations[["location_id", "location_type", "region", "supplying_dc_id", "capacity_units"]]
    lanes = network.lanes.rename(
        columns={
            "from_location_id": "supplying_dc_id",
            "to_location_id": "location_id",
            "lead_time_days": "replenishment_lead_time_days",
            "cost_per_unit": "replenishment_cost_per_unit",
        }
    )
    out = loc.merge(lanes, on=["supplying_dc_id", "location_id"], how="left")
    store = out["location_type"] == "store"
    out.loc[store, "replenishment_lead_time_days"] = out.loc[store, "replenishment_lead_time_days"].fillna(1)
    return out


def history_frame(
    history: History,
    t: int,
    days: int,
    store_ids: np.ndarray,
    sku_ids: np.ndarray,
    base_price: np.ndarray,
    keys_as_categories: bool = False,
) -> pd.DataFrame:
    """`marts.fct_daily_demand` rows for days (t - days, t]: one row per store x SKU x day the
    item was carried or sold; the observed price when it sold, else the base price.

    `keys_as_categories`: location_id and sku_id as Categoricals over every store and SKU, made
    from the twin's own indices (as `Source.history` gives them to the stages that ask). At M5
    scale string keys are ~11 M Python strings a column."""
    a = max(0, t - days + 1)
    sales = history.sales[a : t + 1]
    carried = history.carried[a : t + 1]
    ti, li, si = np.nonzero(carried | (sales > 0))
    sold = sales[ti, li, si]
    on_hand = history.on_hand[a : t + 1][ti, li, si]
    is_carried = carried[ti, li, si]
    price_obs = sold > 0
    return pd.DataFrame(
        {
            "date": history.dates[a : t + 1].to_numpy()[ti],
            "location_id": pd.Categorical.from_codes(li, store_ids) if keys_as_categories else store_ids[li],
            "sku_id": pd.Categorical.from_codes(si, sku_ids) if keys_as_categories else sku_ids[si],
            "units_sold": sold.astype(np.int64),
            "unit_price": np.where(
                price_obs, np.round(history.price[a : t + 1][ti, li, si].astype(float), 2), base_price[si]
            ),
            "price_observed": price_obs,
            "on_promo": np.where(price_obs, history.promo[a : t + 1][ti, si], False).astype(np.int64),
            "on_hand": np.where(is_carried, on_hand, np.nan),
            "is_stockout": is_carried & (on_hand == 0),
        }
    )


def positions_frame(obs: Observation, store_ids: np.ndarray, dc_ids: np.ndarray, sku_ids: np.ndarray) -> pd.DataFrame:
    """`marts.fct_inventory_positions` for today: on hand and open orders per location x SKU."""
    L, S = obs.store_on_hand.shape
    D = obs.dc_on_hand.shape[0]
    return pd.DataFrame(
        {
            "location_id": np.concatenate([np.repeat(dc_ids, S), np.repeat(store_ids, S)]),
            "sku_id": np.concatenate([np.tile(sku_ids, D), np.tile(sku_ids, L)]),
            "on_hand": np.concatenate([obs.dc_on_hand.ravel(), obs.store_on_hand.ravel()]),
            "on_order": np.concatenate([obs.dc_on_order.ravel(), obs.store_on_order.ravel()]),
        }
    )


LEAD_TIME_COLUMNS = (
    "order_id",
    "source_id",
    "location_id",
    "sku_id",
    "order_date",
    "expected_date",
    "received_date",
    "units_ordered",
    "units_received",
    "lead_time_days",
    "lead_time_delay_days",
    "order_type",
)
ORDER_TYPES = {KIND_SUPPLIER: "supplier", KIND_STORE: "store_replenishment", KIND_TRANSFER: "transfer"}


def lead_time_frame(
    history: History,
    t: int,
    store_ids: np.ndarray,
    dc_ids: np.ndarray,
    sku_ids: np.ndarray,
    supplier_ids: np.ndarray,
    days: int | None = None,
) -> pd.DataFrame:
    """`marts.fct_order_lead_times` for the orders received up to day t (inclusive), in its last
    `days` days when given (`WarehouseSource.lead_times`), from the
    observed receipt log (`History.receipts`): one row per order line received, with the ERP's
    order and expected dates, the receipt date, units ordered and received, the observed lead
    time (received - ordered, days) and delay (received - expected), and the order type
    (supplier | store_replenishment | transfer). Receipts of zero units are not receipts (the
    mart keeps units_received > 0 too). Ids are formatted as the landing writer writes them.

    The mart only sees orders that appear in an ERP open-order snapshot of the landing zone, i.e.
    orders still open at the end of its first day or later: compare it with the rows received
    after the landing zone's first day (the twin's log also covers the burn-in)."""
    r = history.receipts
    m = (r["receipt_day"] <= t) & (r["received"] > 0)
    if days:
        m &= r["receipt_day"] > t - days
    kind, src, dest, sku = r["kind"][m], r["src"][m], r["dest"][m], r["sku"][m]
    supplier = kind == KIND_SUPPLIER
    source = np.empty(len(kind), dtype=object)
    source[supplier] = np.asarray(supplier_ids, dtype=object)[src[supplier]]
    st = kind == KIND_STORE
    source[st] = np.asarray(dc_ids, dtype=object)[src[st]]
    tr = kind == KIND_TRANSFER
    source[tr] = np.asarray(store_ids, dtype=object)[src[tr]]
    location = np.where(
        supplier,
        np.asarray(dc_ids, dtype=object)[np.where(supplier, dest, 0)],
        np.asarray(store_ids, dtype=object)[np.where(supplier, 0, dest)],
    )
    start = history.dates[0]
    order_day, expected_day, receipt_day = r["order_day"][m], r["expected_day"][m], r["receipt_day"][m]
    out = pd.DataFrame(
        {
            "order_id": format_order_ids(r["order_id"][m], kind, np.asarray(sku_ids).astype(str), sku).astype(object),
            "source_id": source,
            "location_id": location,
            "sku_id": np.asarray(sku_ids, dtype=object)[sku],
            # day offsets, not positions in `dates`: an early delivery's expected day may lie past the horizon
            "order_date": start + pd.to_timedelta(order_day, unit="D"),
            "expected_date": start + pd.to_timedelta(expected_day, unit="D"),
            "received_date": start + pd.to_timedelta(receipt_day, unit="D"),
            "units_ordered": r["ordered"][m].astype(np.int64),
            "units_received": r["received"][m].astype(np.int64),
            "lead_time_days": (receipt_day - order_day).astype(np.int64),
            "lead_time_delay_days": (receipt_day - expected_day).astype(np.int64),
            "order_type": pd.Series(kind).map(ORDER_TYPES).to_numpy(dtype=object),
        }
    )
    return out.sort_values(["received_date", "order_id"], ignore_index=True)[list(LEAD_TIME_COLUMNS)]


def roll_forecast(forecast: pd.DataFrame, plan_date: str) -> pd.DataFrame:
    """A forecast made on an earlier day, seen from `plan_date`: past days dropped, horizons
    counted from `plan_date` (what a weekly re-forecast cadence hands the later stages)."""
    d = pd.Timestamp(plan_date)
    out = forecast[forecast["date"] > d].copy()
    out["horizon"] = (out["date"] - d).dt.days.astype(int)
    return out


# ---- the twin's state as a `core.sources.Source` --------------------------------------------------


class TwinSource:
    """`core.sources.Source` over what the twin observed by day `obs.t`: the frames the warehouse's
    marts would hold (`history_frame`, `positions_frame`, `lead_time_frame`, the master data of
    `PipelinePolicy`), the forecast in force (rolled forward from the day it was made) and the
    price book of every price change the twin executed. Frames are built once per day."""

    def __init__(self, twin: PipelinePolicy, obs: Observation) -> None:
        self.twin, self.obs = twin, obs
        self._cache: dict = {}

    def _once(self, key, build):
        if key not in self._cache:
            self._cache[key] = build()
        return self._cache[key]

    def table(self, name: str, plan_date: str) -> pd.DataFrame:
        if name != "demand_forecast":
            raise KeyError(f"the twin's source holds no {name!r} before the stage that writes it has run")
        return self._once("forecast", lambda: roll_forecast(self.twin.forecast, plan_date))

    def forecast_date(self, plan_date: str) -> str | None:
        # the forecast's own price level is the one before the day it was made
        return (self.obs.date - pd.Timedelta(days=self.obs.t - self.twin.forecast_t)).date().isoformat()

    def history(self, plan_date: str, days: int, columns: str = "", keys_as_categories: bool = False) -> pd.DataFrame:
        # one frame a day per window and key type, shared by every stage that reads it
        return self._once(
            ("history", days, keys_as_categories), lambda: self.twin._history(self.obs, days, keys_as_categories)
        )

    def positions(self, plan_date: str) -> pd.DataFrame:
        t = self.twin
        return self._once("positions", lambda: positions_frame(self.obs, t.store_ids, t.dc_ids, t.sku_ids))

    def products(self) -> pd.DataFrame:
        return self.twin.products

    def product_lifecycle(self) -> pd.DataFrame | None:
        return self.twin.raw_products

    def locations(self) -> pd.DataFrame:
        return self.twin.locations

    def lanes(self) -> pd.DataFrame:
        return self.twin.lanes

    def delivery_lanes(self) -> pd.DataFrame | None:
        return self.twin.lanes

    def lead_times(self, plan_date: str, days: int | None = None) -> pd.DataFrame:
        t, obs = self.twin, self.obs
        return self._once(
            ("lead_times", days),
            lambda: lead_time_frame(obs.history, obs.t, t.store_ids, t.dc_ids, t.sku_ids, t.supplier_ids, days),
        )

    def price_book(self, plan_date: str, history: pd.DataFrame) -> PriceBook:
        # every price change the twin executed, as the decision log's exported changes (the twin
        # executes what the ERP applies: its shelf never disagrees with the book)
        book = price_book(self.twin.price_log, plan_date)
        return PriceBook(book, entries=len(book))

    def promotions_planned(self, plan_date: str) -> bool:
        return self.twin.plans_promotions

    def calendar(self) -> pd.DataFrame:
        return self.twin.calendar

    def kept_elasticities(self, plan_date: str) -> pd.DataFrame | None:
        return self.twin.last_plan.get("price_recommendations")  # the plan of the day before

    def planned_promotions(self, plan_date: str, horizon_days: int) -> pd.DataFrame | None:
        if not self.twin.plans_promotions:
            return None
        # the promotion plan merchandising knows tonight (landing v1.1), as the landing path hands
        # it to the asset: announced promotions up to the horizon, cancellations gone
        start = pd.Timestamp(plan_date) + pd.Timedelta(days=1)
        end = pd.Timestamp(plan_date) + pd.Timedelta(days=horizon_days)
        return known_daily_promotions(self.twin.network, self.obs.t, start, end)


def expected_demand(
    fc: pd.DataFrame, pr: pd.DataFrame, store_pos: dict, sku_pos: dict, shape: tuple[int, int]
) -> np.ndarray:
    """The demand a plan expects, for the engine's forecast-accuracy KPIs: the forecast mean times
    the price recommendation's demand multiplier, as a (FORECAST_RECORD_DAYS, stores, SKUs) array
    whose row h - 1 is `fc`'s horizon h (the engine scores row h - 1 against the day h days after
    the day it plans on). Rows of unknown stores or SKUs are left out."""
    m = fc[(fc["horizon"] >= 1) & (fc["horizon"] <= FORECAST_RECORD_DAYS)].merge(
        pr[["location_id", "sku_id", "demand_multiplier"]], on=["location_id", "sku_id"], how="left"
    )
    li, si = m["location_id"].map(store_pos), m["sku_id"].map(sku_pos)
    ok = (li.notna() & si.notna()).to_numpy()
    expected = np.zeros((FORECAST_RECORD_DAYS, *shape))
    expected[m["horizon"].to_numpy(int)[ok] - 1, li.to_numpy()[ok].astype(int), si.to_numpy()[ok].astype(int)] = (
        m["mean"] * m["demand_multiplier"].fillna(1.0)
    ).to_numpy()[ok]
    return expected


class PipelinePolicy:
    """The pipeline's stages as a twin policy (see the module docstring)."""

    name = "pipeline"

    def __init__(
        self,
        network: Network,
        policy: DecisionPolicy,
        service_level: float | None = None,
        cadence_days: int = 7,
        reselect_every: int = 4,
        pricing_enabled: bool | None = None,
    ) -> None:
        if cadence_days < 1:
            raise ValueError(f"cadence_days must be >= 1, got {cadence_days}")
        # the policy file, with pricing switched on or off by `pricing_enabled` and replenishment at
        # one fixed `service_level` (the frontier) when given
        if pricing_enabled is not None:
            policy = policy.with_changes("pricing", enabled=bool(pricing_enabled))
        if service_level is not None:
            policy = policy.with_changes("replenishment", service_mode="fixed", service_level=float(service_level))
        self.policy, self.service_level, self.cadence = policy, service_level, cadence_days
        # model selection (the CV over every candidate) runs on every `reselect_every`-th forecast;
        # in between the selected models are refit (and their intervals recalibrated) as in a
        # production week where the champion configuration serves
        self.reselect_every = max(1, reselect_every)
        self._selection: dict | None = None
        self._last_forecast = None  # its fits and CV are what the next forecast may carry
        self.fcfg = FORECAST.config(policy)
        self.guardrail_violations = 0  # recommendations outside a guardrail, summed over decision days
        self.guardrail_violations_by: Counter = Counter()  # ... by guardrail
        self.price_changes_recommended = 0  # store x SKU price changes recommended, summed over days
        self.pricing_infeasible_days = 0  # days the pricing problem had no solution (prices held)
        self.constraint_violations_by: Counter = Counter()  # order / transfer rule -> lines breaking it, all days
        # approval routing of every plan (core.decisions.route): decisions and those that would wait
        # for a planner, by decision type; the twin executes them all as if approved
        self.decisions_by: Counter = Counter()
        self.review_by: Counter = Counter()
        self.last_pricing_error = ""
        # the price changes the twin executed, as the decision log's exported rows (the latest per
        # store x SKU is all the price book reads)
        self.price_log = pd.DataFrame(columns=PRICE_LOG_COLUMNS)
        self.network = network
        # the world announces its promotions ahead (landing contract v1.1): the forecast takes the
        # plan and replenishment stops covering announced promotions as surprises
        self.plans_promotions = bool(network.promo_path.any()) and network.replay_demand is None
        self.products, self.locations, self.lanes = products_frame(network), locations_frame(network), network.lanes
        self.raw_products = network.products  # the landing file's products, lifecycle dates included
        self.categories = self.products.set_index("sku_id")["category"]
        self.calendar = network.calendar
        self.store_ids = network.store_ids.astype(str)
        self.dc_ids = network.dc_ids.astype(str)
        self.sku_ids = network.sku_ids.astype(str)
        self.supplier_ids = network.suppliers["supplier_id"].to_numpy(str)
        self.base_price = network.base_price
        self._store_pos = {s: i for i, s in enumerate(self.store_ids)}
        self._dc_pos = {s: i for i, s in enumerate(self.dc_ids)}
        self._sku_pos = {s: i for i, s in enumerate(self.sku_ids)}
        self.forecast: pd.DataFrame | None = None
        self.forecast_t = -(10**9)
        self.forecasts_made = 0
        self.last_plan: dict[str, pd.DataFrame] = {}

    def _history(self, obs: Observation, days: int, keys_as_categories: bool = False) -> pd.DataFrame:
        return history_frame(
            obs.history, obs.t, days, self.store_ids, self.sku_ids, self.base_price, keys_as_categories
        )

    def _reforecast(self, source: TwinSource, plan_date: str) -> None:
        """The forecast stage on the twin's source (every `cadence` days). The twin has no model
        registry: the policy's configuration is the champion, so the gate serves the candidate."""
        reselect = self._selection is None or self.forecasts_made % self.reselect_every == 0
        inputs = FORECAST.read(source, plan_date, self.fcfg)
        # the parameters and the cross-validation the last forecast kept, inside the policy's
        # refit_every_days, as the asset carries them from the plan before
        last = self._last_forecast
        cv_on = last.cv_on if last is not None else None
        run = {"cv_on": cv_on, "config_fingerprint": self.fcfg.fingerprint()}
        carry_cv = FORECAST.cv_reuse(run, plan_date, self.fcfg, choice_reused=not reselect) if cv_on else None
        res = FORECAST.run(
            inputs,
            plan_date,
            self.fcfg,
            selection=None if reselect else self._selection,
            fits=last.fits if last is not None else None,
            global_fits=last.global_fits if last is not None else None,
            cv_state=last.cv_state() if carry_cv else None,
        )
        self._last_forecast = res
        served = FORECAST.serve(res, None)
        self.forecast, self.forecast_t = served.serving.forecast, source.obs.t
        if reselect:
            self._selection = served.serving.selection
        self.forecasts_made += 1

    def decide(self, obs: Observation) -> Orders:
        if obs.history is None:
            raise ValueError("the pipeline policy needs the observed history (Observation.history)")
        plan_date = obs.date.date().isoformat()
        source = TwinSource(self, obs)
        if obs.t - self.forecast_t >= self.cadence:
            self._reforecast(source, plan_date)
            release_free_memory()  # the forecast's freed columns, before the decision stages allocate theirs
        try:
            plan = plan_decisions(source, plan_date, self.policy)
        except PricingInfeasible as e:  # the asset would fail this day: the twin holds prices and counts it
            self.pricing_infeasible_days += 1
            self.last_pricing_error = f"{plan_date}: {e}"
            plan = plan_decisions(source, plan_date, self.policy.with_changes("pricing", enabled=False))
        self.last_plan = plan.tables
        self._count(plan, plan_date)
        orders = self._to_orders(obs, source.table("demand_forecast", plan_date), plan.tables)
        release_free_memory()  # one process runs every day: what a day freed does not stay resident
        return orders

    def _count(self, plan, plan_date: str) -> None:
        """What the evaluation reports of a day's plan: rule violations, price changes, approval
        routing; and the executed price changes into the price log."""
        pr = plan.tables["price_recommendations"]
        v = plan.violations[PRICING.name]
        self.guardrail_violations += len(v)
        self.guardrail_violations_by.update({str(k): int(n) for k, n in v["guardrail"].value_counts().items()})
        self.price_changes_recommended += int(price_changed(pr["recommended_price"], pr["current_price"]).sum())
        for kind, stage in (("order", REPLENISHMENT), ("transfer", REBALANCING)):
            rules = plan.violations[stage.name]["rule"].value_counts()
            self.constraint_violations_by.update({f"{kind}:{k}": int(n) for k, n in rules.items()})
        routed = route(
            propose(
                plan.tables["replenishment_orders"],
                plan.tables["rebalancing_transfers"],
                pr,
                plan_date,
                "twin",
                self.policy.tag,
            ),
            self.policy,
            items_priced=len(pr),
        )
        self.decisions_by.update(routed["decision_type"].value_counts().to_dict())
        self.review_by.update(
            routed.loc[routed["status"] == "pending_review", "decision_type"].value_counts().to_dict()
        )
        # the twin executes every decision as approved
        changes = routed.loc[routed["decision_type"] == "price_change", PRICE_LOG_COLUMNS].assign(status="approved")
        if len(changes):
            log = pd.concat([self.price_log, changes], ignore_index=True) if len(self.price_log) else changes
            self.price_log = log.drop_duplicates(["location_id", "sku_id"], keep="last").reset_index(drop=True)

    def _to_orders(self, obs: Observation, fc: pd.DataFrame, plan: dict[str, pd.DataFrame]) -> Orders:
        L, S = obs.store_on_hand.shape
        D = obs.dc_on_hand.shape[0]
        o = plan["replenishment_orders"]
        store = np.zeros((L, S), dtype=np.int64)
        dc = np.zeros((D, S), dtype=np.int64)
        st = o[o["decision_type"] == "store_replenishment"]
        store[st["location_id"].map(self._store_pos).to_numpy(int), st["sku_id"].map(self._sku_pos).to_numpy(int)] = st[
            "units"
        ]
        po = o[o["decision_type"] == "purchase_order"]
        dc[po["location_id"].map(self._dc_pos).to_numpy(int), po["sku_id"].map(self._sku_pos).to_numpy(int)] = po[
            "units"
        ]
        tr = plan["rebalancing_transfers"]
        transfers = None
        if len(tr):
            transfers = {
                "sku": tr["sku_id"].map(self._sku_pos).to_numpy(int),
                "src": tr["from_location_id"].map(self._store_pos).to_numpy(int),
                "dest": tr["to_location_id"].map(self._store_pos).to_numpy(int),
                "units": tr["units"].to_numpy(int),
            }
        pr = plan["price_recommendations"]
        factor = obs.price_factor.copy() if obs.price_factor is not None else np.ones((L, S))
        li, si = pr["location_id"].map(self._store_pos).to_numpy(int), pr["sku_id"].map(self._sku_pos).to_numpy(int)
        factor[li, si] = factor[li, si] * (pr["recommended_price"] / pr["current_price"]).to_numpy(float)
        # why each price moves (the engine keeps a store x SKU's reason until its price changes again)
        reason = np.zeros((L, S), dtype=np.int64)
        reason[li, si] = pr["change_reason"].map(REASON_CODES).fillna(0).to_numpy(np.int64)
        expected = expected_demand(fc, pr, self._store_pos, self._sku_pos, (L, S))
        return Orders(
            store=store, dc=dc, transfers=transfers, price_factor=factor, forecast=expected, price_reason=reason
        )
