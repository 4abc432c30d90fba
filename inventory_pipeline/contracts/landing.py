"""Landing-zone contract v1.1: one pandera DataFrameModel per input file.

v1.1 is additive (a v1 landing zone stays valid): the optional daily `promotions.csv` (the
promotion plan merchandising knows at the close of the folder's day, `Promotions`), an optional
`launch_date` on products, and calendar rows with an optional `region` (blank = chain-wide),
several rows per date, an empty `event` meaning a day without one (kept, not quarantined), and
an optional `revision` on planner answers (the decision revision answered).

Files arrive as text; the models coerce (`coerce = True`) so a value that is not of the declared
type is a row-level failure the ingestion quarantines, not a crash. Keys are strings; extra
columns are allowed (`strict = False`) and kept. A row repeating the `key` of an earlier row is
quarantined as a duplicate (the first one is kept).
Cross-file rules (unknown SKU, unknown location) need the master data and live in
`core/ingestion.py`; they are declared here in `LANDING_FILES[...].references`.

*Hold rules* (`HOLD_RULES`) are the master-data rules a row can break and still be planned: unit
cost above base price, a case pack of zero or less, an MOQ that is not a whole number of cases, a
negative lead time. Such a row is reported in the file's quarantine table (file, row, column,
reason; `disposition` = "held") but kept in the raw table — with the stated safe substitute where
the value cannot be computed with (case pack 1, lead time 0) — so the SKU's history stays known and
its decisions are held for a planner with the reason (core.decisions.route), never dropped.

File rules of the daily files (`core/ingestion.py`, `file_rule_problems`): a row's `date` must be
its folder's date; an open order's `expected_date` is on or after its `order_date` and at most
`ingestion.max_expected_days` after the folder's date; an unterminated last line is quarantined as
truncated. A promotions row must name exactly one of sku_id / category, end on or after its start,
have a discount within 0-90, and not overlap an earlier row of the same item (sku_id or category)
and location in the same file (the later row is quarantined).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import pandas as pd
import pandera.pandas as pa
from pandera.typing import Series

from .text import Text

ID = dict(str_length={"min_value": 1})


class _Base(pa.DataFrameModel):
    class Config:
        coerce = True
        strict = False


class Locations(_Base):
    location_id: Series[Text] = pa.Field(**ID)
    location_type: Series[Text] = pa.Field(isin=["store", "dc"])
    region: Series[Text] = pa.Field(**ID)
    supplying_dc_id: Series[Text] = pa.Field(nullable=True)
    capacity_units: Series[float] | None = pa.Field(ge=0, nullable=True)

    @pa.dataframe_check(error="a store needs a supplying_dc_id")
    def store_has_dc(cls, df):  # noqa: N805
        return (df["location_type"] != "store") | df["supplying_dc_id"].fillna("").str.len().gt(0)


class Products(_Base):
    sku_id: Series[Text] = pa.Field(**ID)
    category: Series[Text] = pa.Field(**ID)
    supplier_id: Series[Text] = pa.Field(**ID)
    unit_cost: Series[float] = pa.Field(gt=0)
    base_price: Series[float] = pa.Field(gt=0)
    case_pack: Series[int]  # >= 1: a hold rule (HOLD_RULES), not a rejection
    min_order_qty: Series[int] = pa.Field(ge=0)
    launch_date: Series[pa.DateTime] | None = pa.Field(nullable=True)  # v1.1: first day the item may sell


class Suppliers(_Base):
    supplier_id: Series[Text] = pa.Field(**ID)
    lead_time_days: Series[float]  # >= 0: a hold rule (HOLD_RULES)
    lead_time_std_days: Series[float] = pa.Field(ge=0)


class Lanes(_Base):
    from_location_id: Series[Text] = pa.Field(**ID)
    to_location_id: Series[Text] = pa.Field(**ID)
    lead_time_days: Series[float]  # >= 0: a hold rule (HOLD_RULES)
    cost_per_unit: Series[float] = pa.Field(ge=0)


class Calendar(_Base):
    date: Series[pa.DateTime]
    event: Series[Text] = pa.Field(nullable=True)  # v1.1: empty = a day without an event (kept)
    region: Series[Text] | None = pa.Field(nullable=True)  # v1.1: blank = chain-wide (e.g. a state's SNAP days)


class Promotions(_Base):
    """v1.1 `daily/D/promotions.csv`: the promotion plan known at the close of D (future weeks
    included). Row rules beyond types (exactly one of sku_id / category, end >= start, discount
    0-90, no overlap within the file) are file rules in core/ingestion.py (`promotion_problems`)."""

    promo_id: Series[Text] = pa.Field(**ID)
    sku_id: Series[Text] | None = pa.Field(nullable=True)  # exactly one of sku_id / category
    category: Series[Text] | None = pa.Field(nullable=True)
    location_id: Series[Text] | None = pa.Field(nullable=True)  # blank = every store
    start_date: Series[pa.DateTime]
    end_date: Series[pa.DateTime]
    discount_pct: Series[float] = pa.Field(ge=0, le=90)
    display: Series[pd.Int64Dtype] | None = pa.Field(isin=[0, 1], nullable=True)


class PosSales(_Base):
    date: Series[pa.DateTime]
    location_id: Series[Text] = pa.Field(**ID)
    sku_id: Series[Text] = pa.Field(**ID)
    units_sold: Series[int] = pa.Field(ge=0)
    unit_price: Series[float] = pa.Field(ge=0)
    on_promo: Series[int] = pa.Field(isin=[0, 1])


class Inventory(_Base):
    date: Series[pa.DateTime]
    location_id: Series[Text] = pa.Field(**ID)
    sku_id: Series[Text] = pa.Field(**ID)
    on_hand: Series[int] = pa.Field(ge=0)


class Receipts(_Base):
    date: Series[pa.DateTime]
    order_id: Series[Text] = pa.Field(**ID)
    location_id: Series[Text] = pa.Field(**ID)
    sku_id: Series[Text] = pa.Field(**ID)
    units_received: Series[int] = pa.Field(ge=0)


class OpenOrders(_Base):
    order_id: Series[Text] = pa.Field(**ID)
    order_date: Series[pa.DateTime]
    source_id: Series[Text] = pa.Field(**ID)
    location_id: Series[Text] = pa.Field(**ID)
    sku_id: Series[Text] = pa.Field(**ID)
    units: Series[int] = pa.Field(ge=0)
    expected_date: Series[pa.DateTime]


class PlannerDecisions(_Base):
    # the id of a decision of the decision log: FC|PO|RP|TR|PC-YYYYMMDD-<12 hex> (core.decisions.ID_PATTERN)
    decision_id: Series[Text] = pa.Field(str_matches=r"^(FC|PO|RP|TR|PC)-\d{8}-[0-9a-f]{12}$")
    action: Series[Text] = pa.Field(isin=["approve", "reject", "override"])
    override_units_or_price: Series[float] = pa.Field(ge=0, nullable=True)
    reason: Series[Text] = pa.Field(nullable=True)
    planner: Series[Text] = pa.Field(**ID)
    # v1.1: the revision of the decision the planner answered; an answer to an older one is not applied
    revision: Series[Text] | None = pa.Field(nullable=True)

    @pa.dataframe_check(error="an override needs override_units_or_price")
    def override_has_value(cls, df):  # noqa: N805
        return (df["action"] != "override") | df["override_units_or_price"].notna()


@dataclass(frozen=True)
class LandingFile:
    """One file of the contract: where it lives, its model and its cross-file references."""

    name: str
    model: type[_Base]
    daily: bool  # under daily/YYYY-MM-DD/ (else master/ or planner/)
    required: bool
    folder: str = "master"
    key: tuple[str, ...] = ()  # unique key; later duplicates are quarantined, the first kept
    # column -> (master table, key column) it must exist in
    references: dict[str, tuple[str, str]] = field(default_factory=dict)

    @property
    def required_columns(self) -> list[str]:
        schema = self.model.to_schema()
        return [c for c, col in schema.columns.items() if col.required]


@dataclass(frozen=True)
class HoldRule:
    """A master-data rule whose breaking rows are reported and kept, their decisions held.

    `broken(df)` is a boolean mask on the validated (typed) rows, `reason(df)` the text per row,
    `repair(df)` (optional) the row as planned with a safe substitute for a value nothing can be
    computed with."""

    column: str
    broken: Callable[[pd.DataFrame], pd.Series]
    reason: Callable[[pd.DataFrame], pd.Series]
    repair: Callable[[pd.DataFrame], pd.DataFrame] | None = None


def _g(s: pd.Series) -> pd.Series:
    return s.map("{:g}".format)


HOLD_RULES: dict[str, list[HoldRule]] = {
    "products": [
        HoldRule(
            "unit_cost,base_price",
            lambda d: d["unit_cost"] > d["base_price"],
            lambda d: (
                "unit_cost "
                + _g(d["unit_cost"])
                + " above base_price "
                + _g(d["base_price"])
                + ": every sale at the base price loses money"
            ),
        ),
        HoldRule(
            "case_pack",
            lambda d: d["case_pack"] < 1,
            lambda d: "case_pack " + d["case_pack"].astype(str) + " must be at least 1 (planned with 1)",
            lambda d: d.assign(case_pack=1),
        ),
        HoldRule(
            "min_order_qty,case_pack",
            lambda d: (d["case_pack"] >= 1) & (d["min_order_qty"] % d["case_pack"].clip(lower=1) != 0),
            lambda d: (
                "min_order_qty "
                + d["min_order_qty"].astype(str)
                + " is not a multiple of case_pack "
                + d["case_pack"].astype(str)
            ),
        ),
    ],
    "suppliers": [
        HoldRule(
            "lead_time_days",
            lambda d: d["lead_time_days"] < 0,
            lambda d: "negative lead_time_days " + _g(d["lead_time_days"]) + " (planned with 0)",
            lambda d: d.assign(lead_time_days=d["lead_time_days"].clip(lower=0)),
        ),
    ],
    "lanes": [
        HoldRule(
            "lead_time_days",
            lambda d: d["lead_time_days"] < 0,
            lambda d: "negative lead_time_days " + _g(d["lead_time_days"]) + " (planned with 0)",
            lambda d: d.assign(lead_time_days=d["lead_time_days"].clip(lower=0)),
        ),
    ],
}


_LOC = ("locations", "location_id")
_SKU = ("products", "sku_id")


def _daily(name: str, model: type[_Base], key: tuple[str, ...]) -> LandingFile:
    """A required file of daily/YYYY-MM-DD/ whose location_id and sku_id must exist in the masters."""
    refs = {"location_id": _LOC, "sku_id": _SKU}
    return LandingFile(name, model, daily=True, required=True, folder="daily", key=key, references=refs)


LANDING_FILES: dict[str, LandingFile] = {
    f.name: f
    for f in [
        LandingFile("locations", Locations, key=("location_id",), daily=False, required=True),
        LandingFile(
            "products",
            Products,
            key=("sku_id",),
            daily=False,
            required=True,
            references={"supplier_id": ("suppliers", "supplier_id")},
        ),
        LandingFile("suppliers", Suppliers, key=("supplier_id",), daily=False, required=True),
        LandingFile(
            "lanes",
            Lanes,
            key=("from_location_id", "to_location_id"),
            daily=False,
            required=False,
            references={"from_location_id": _LOC, "to_location_id": _LOC},
        ),
        # v1.1 added `region`; a key column the file does not have is left out of the key
        LandingFile("calendar", Calendar, key=("date", "event", "region"), daily=False, required=False),
        _daily("pos_sales", PosSales, ("date", "location_id", "sku_id")),
        _daily("inventory", Inventory, ("date", "location_id", "sku_id")),
        _daily("receipts", Receipts, ("order_id", "location_id", "sku_id")),
        _daily("open_orders", OpenOrders, ("order_id", "location_id", "sku_id")),
        LandingFile(
            "promotions",
            Promotions,
            key=("promo_id", "sku_id", "category", "location_id"),
            daily=True,
            required=False,
            folder="daily",
            references={"sku_id": _SKU, "category": ("products", "category"), "location_id": _LOC},
        ),
        LandingFile(
            "planner_decisions",
            PlannerDecisions,
            key=("decision_id",),
            daily=True,
            required=False,
            folder="planner",
        ),
    ]
}
MASTER_FILES = [f for f in LANDING_FILES.values() if not f.daily]
DAILY_FILES = [f for f in LANDING_FILES.values() if f.daily]


def file_stem(f: LandingFile) -> str:
    """File name inside its folder (the planner's file is called decisions.csv)."""
    return "decisions" if f.name == "planner_decisions" else f.name
