"""Where a plan date's inputs come from: the `Source` protocol the decision stages read through
(core/stages.py), and `WarehouseSource`, its implementation over the warehouse.

Every query the stages make of the warehouse is here, once: the dbt marts (`marts.*`,
`staging.*`), the landing tables the marts do not carry (`raw_products` for lifecycle dates,
`raw_lanes` for delivery weekdays), the decision log behind the price book, and the outputs of
upstream stages of the same partition. The twin implements the same protocol over what it
observed (`simulation/pipeline_policy.TwinSource`), so both run one code path and differ only in
where the frames come from; the integration tests check the two sources give equal frames.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import pandas as pd

from .policy import ReconciliationPolicy
from .pricing import price_book
from .promotions import expand_promotions
from .reconcile import observed_regular_prices, price_book_with_ids, reconcile_prices

# the fct_daily_demand columns the decision stages read (pricing: prices and promotions;
# replenishment: the measured protection-period error; reconciliation: observed shelf prices)
HISTORY_COLUMNS = "location_id, sku_id, date, units_sold, unit_price, price_observed, on_promo, is_stockout, on_hand"
FORECAST_HISTORY_COLUMNS = "location_id, sku_id, date, units_sold, is_stockout, on_promo"
BOOK_COLUMNS = ["location_id", "sku_id", "price", "effective_date"]
# the fct_order_lead_times columns replenishment's lead-time model reads (supplier and DC -> store
# lanes: who shipped where, when it arrived, how long it took, how much of the order came); the
# order ids, SKUs and dates it does not read are half of the read's time at M5 scale (1.5 M rows)
LEAD_TIME_COLUMNS = "order_type, source_id, location_id, received_date, lead_time_days, units_ordered, units_received"


@dataclass(frozen=True)
class PriceBook:
    """The prices this pipeline set and believes are on the shelf (`book`: location_id, sku_id,
    price, effective_date), with what reconciling them against the shelf found: `disagreements`
    (one row per store x SKU whose observed regular price contradicts the book; the book follows
    the shelf there) and `entries`, the exported changes before reconciliation."""

    book: pd.DataFrame
    disagreements: pd.DataFrame = field(default_factory=pd.DataFrame)
    entries: int = 0


class Source(Protocol):
    """A plan date's inputs, as the warehouse's marts have them (column names and meaning)."""

    def table(self, name: str, plan_date: str) -> pd.DataFrame:
        """An upstream stage's output for the plan date (demand_forecast, price_recommendations, ...)."""
        ...

    def forecast_date(self, plan_date: str) -> str | None:
        """The day the plan date's forecast was made, when earlier than the plan date (a forecast
        rolled forward between re-forecasts); None when it was made on the plan date."""
        ...

    def history(
        self, plan_date: str, days: int, columns: str = HISTORY_COLUMNS, keys_as_categories: bool = False
    ) -> pd.DataFrame:
        """`marts.fct_daily_demand` rows of the `days` days up to the plan date, in no promised order.
        `keys_as_categories`: location_id and sku_id may come as pandas Categoricals (a reader that
        asks must take either type)."""
        ...

    def positions(self, plan_date: str) -> pd.DataFrame:
        """`marts.fct_inventory_positions` on the plan date: on hand and on order per location x SKU."""
        ...

    def products(self) -> pd.DataFrame:
        """`marts.dim_products`: products with their supplier's lead time and spread."""
        ...

    def product_lifecycle(self) -> pd.DataFrame | None:
        """The landing file's products (discontinue and season-end dates), None if never landed."""
        ...

    def locations(self) -> pd.DataFrame:
        """`marts.dim_locations`: stores with their DC lane's lead time and cost."""
        ...

    def lanes(self) -> pd.DataFrame:
        """`staging.stg_lanes`: every lane (the store <-> store lanes rebalancing moves stock on)."""
        ...

    def delivery_lanes(self) -> pd.DataFrame | None:
        """The landing file's lanes with their optional `delivery_weekday` (weekly store deliveries)."""
        ...

    def lead_times(self, plan_date: str, days: int | None = None) -> pd.DataFrame:
        """`marts.fct_order_lead_times` of the order lines received up to the plan date, in its
        last `days` days when given (at least the LEAD_TIME_COLUMNS)."""
        ...

    def price_book(self, plan_date: str, history: pd.DataFrame) -> PriceBook:
        """The prices exported before the plan date, reconciled with the shelf seen in `history`."""
        ...

    def promotions_planned(self, plan_date: str) -> bool:
        """Whether the retailer lands a promotion plan (landing v1.1) known on the plan date."""
        ...

    def calendar(self) -> pd.DataFrame:
        """`staging.stg_calendar`: date, event, region (regional rows are SNAP-like days)."""
        ...

    def planned_promotions(self, plan_date: str, horizon_days: int) -> pd.DataFrame | None:
        """The promotion plan known on the plan date, expanded to store x SKU x day rows for the
        next `horizon_days` days; None when no plan was ever landed (contract v1)."""
        ...

    def kept_elasticities(self, plan_date: str) -> pd.DataFrame | None:
        """The price recommendations of the last plan before `plan_date` (their elasticity columns
        are what pricing may reuse, `core.pricing.reusable_elasticities`); None if there is none."""
        ...


class WarehouseSource:
    """`Source` over the warehouse (core.warehouse.Warehouse): the dbt marts and stage outputs.
    `reconciliation` is the policy file's section the price book is reconciled by."""

    def __init__(self, wh, reconciliation: ReconciliationPolicy | None = None) -> None:
        self.wh = wh
        self.reconciliation = reconciliation or ReconciliationPolicy()

    def table(self, name: str, plan_date: str) -> pd.DataFrame:
        return self.wh.read(name, plan_date)

    def forecast_date(self, plan_date: str) -> str | None:
        return None  # the assets forecast every plan date

    def last_forecast_run(self, plan_date: str) -> dict | None:
        """The forecast_run row of the latest plan before `plan_date` (whose model choice the
        plan may reuse: core.forecasting.reusable_selection)."""
        earlier = [x for x in self.wh.partitions("forecast_run") if x < plan_date]
        return self.wh.read("forecast_run", earlier[-1]).iloc[0].to_dict() if earlier else None

    def cv_state(self, last_run: dict):
        """The cross-validation the plan of `last_run` ran or carried (core.forecasting.CvState)."""
        import json

        from .forecasting import CvState

        d = pd.Timestamp(last_run["plan_date"]).date().isoformat()
        return CvState(
            on=pd.Timestamp(last_run["cv_on"]).date().isoformat(),
            selection=json.loads(last_run["selection"]),
            calibration=CvState.calibrations_from(self.wh.read("forecast_calibration", d)),
            metrics=json.loads(last_run["cv_metrics"]),
            cv=self.wh.read("forecast_cv", d),
            points=self.wh.read("forecast_cv_points", d),
        )

    def kept_fits(self, last_run: dict | None) -> pd.DataFrame | None:
        """The fitted parameters the plan of `last_run` kept (core.forecast_fits), if it kept any."""
        if last_run is None:
            return None
        d = pd.Timestamp(last_run["plan_date"]).date().isoformat()
        return self.wh.read("forecast_fits", d) if self.wh.exists("forecast_fits", d) else None

    def kept_global_fits(self, last_run: dict | None) -> pd.DataFrame | None:
        """The global models the plan of `last_run` kept (core.forecast_global_fits), each model's
        text read from the partition of the day it was trained."""
        from .forecast_global_fits import resolve_global_fits

        def stored(day: str) -> pd.DataFrame | None:
            return self.wh.read("forecast_global_fits", day) if self.wh.exists("forecast_global_fits", day) else None

        kept = stored(pd.Timestamp(last_run["plan_date"]).date().isoformat()) if last_run is not None else None
        return resolve_global_fits(kept, stored) if kept is not None else None

    def kept_elasticities(self, plan_date: str) -> pd.DataFrame | None:
        earlier = [p for p in self.wh.partitions("price_recommendations") if p < plan_date]
        return self.wh.read("price_recommendations", earlier[-1]) if earlier else None

    def history(
        self, plan_date: str, days: int, columns: str = HISTORY_COLUMNS, keys_as_categories: bool = False
    ) -> pd.DataFrame:
        # in no particular order: sorting the forecast's 11.7 M M5 rows took 2.0 s of a plan, and no
        # stage depends on the order (test_forecasting's shuffled-history law, test_pipeline)
        start = (pd.Timestamp(plan_date) - pd.Timedelta(days=days)).date().isoformat()
        return self.wh.read_model(
            f"select {columns} from marts.fct_daily_demand where date <= cast(? as date) and date > cast(? as date)",
            [plan_date, start],
            categories=("location_id", "sku_id") if keys_as_categories else (),
        )

    def positions(self, plan_date: str) -> pd.DataFrame:
        return self.wh.read_model(
            "select * from marts.fct_inventory_positions where date = cast(? as date)", [plan_date]
        )

    def products(self) -> pd.DataFrame:
        return self.wh.read_model("select * from marts.dim_products")

    def product_lifecycle(self) -> pd.DataFrame | None:
        return self.wh.read("raw_products") if self.wh.exists("raw_products") else None

    def locations(self) -> pd.DataFrame:
        return self.wh.read_model("select * from marts.dim_locations")

    def lanes(self) -> pd.DataFrame:
        return self.wh.read_model("select * from staging.stg_lanes")

    def delivery_lanes(self) -> pd.DataFrame | None:
        return self.wh.read("raw_lanes") if self.wh.exists("raw_lanes") else None

    def lead_times(self, plan_date: str, days: int | None = None) -> pd.DataFrame:
        first = (pd.Timestamp(plan_date) - pd.Timedelta(days=days)).date().isoformat() if days else "0001-01-01"
        return self.wh.read_model(
            f"select {LEAD_TIME_COLUMNS} from marts.fct_order_lead_times "
            "where received_date <= cast(? as date) and received_date > cast(? as date)",
            [plan_date, first],
        )

    def exported_price_changes(self, plan_date: str) -> pd.DataFrame | None:
        """Price-change rows of every decision log before the plan date (what `price_book` reads)."""
        wh = self.wh
        if not [p for p in wh.partitions("decision_log") if p < plan_date]:
            return None
        return wh.query(
            "select decision_id, location_id, sku_id, plan_date, decision_type, status, old_price, new_price "
            f"from {wh.scan('decision_log')} where decision_type = 'price_change' "
            "and cast(plan_date as date) < cast($d as date)",
            d=plan_date,
        )

    def price_book(self, plan_date: str, history: pd.DataFrame) -> PriceBook:
        log = self.exported_price_changes(plan_date)
        book = price_book_with_ids(log, price_book(log, plan_date))
        reconciled, disagreements = reconcile_prices(
            book,
            observed_regular_prices(history, plan_date),
            grace_days=self.reconciliation.price_grace_days,
            min_batch_evidence=self.reconciliation.batch_min_evidence,
        )
        return PriceBook(reconciled, disagreements, len(book))

    def promotions_planned(self, plan_date: str) -> bool:
        n = self.wh.read_model(
            "select count(*) as n from staging.stg_promotion_files where file_date <= cast(? as date)", [plan_date]
        )
        return bool(int(n["n"].iloc[0]))

    def calendar(self) -> pd.DataFrame:
        return self.wh.read_model("select date, event, region from staging.stg_calendar")

    def planned_promotions(self, plan_date: str, horizon_days: int) -> pd.DataFrame | None:
        if not self.promotions_planned(plan_date):
            return None
        plan = self.wh.read_model(
            "select * from marts.fct_promotion_plan where plan_date = cast(? as date)", [plan_date]
        )
        stores = self.wh.read_model("select location_id, location_type from marts.dim_locations")
        products = self.wh.read_model("select sku_id, category from marts.dim_products")
        start = pd.Timestamp(plan_date) + pd.Timedelta(days=1)
        return expand_promotions(plan, stores, products, start, start + pd.Timedelta(days=horizon_days - 1))
