"""Landing-zone contract v1: one pandera DataFrameModel per input file.

Files arrive as text; the models coerce (`coerce = True`) so a value that is not of the declared
type is a row-level failure the ingestion quarantines, not a crash. Keys are strings; extra
columns are allowed (`strict = False`) and kept. A row repeating the `key` of an earlier row is
quarantined as a duplicate (the first one is kept).
Cross-file rules (unknown SKU, unknown location) need the master data and live in
`core/ingestion.py`; they are declared here in `LANDING_FILES[...].references`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import pandera.pandas as pa
from pandera.typing import Series

ID = dict(str_length={"min_value": 1})


class _Base(pa.DataFrameModel):
    class Config:
        coerce = True
        strict = False


class Locations(_Base):
    location_id: Series[str] = pa.Field(**ID)
    location_type: Series[str] = pa.Field(isin=["store", "dc"])
    region: Series[str] = pa.Field(**ID)
    supplying_dc_id: Series[str] = pa.Field(nullable=True)
    capacity_units: Optional[Series[float]] = pa.Field(ge=0, nullable=True)

    @pa.dataframe_check(error="a store needs a supplying_dc_id")
    def store_has_dc(cls, df):  # noqa: N805
        return (df["location_type"] != "store") | df["supplying_dc_id"].fillna(
            ""
        ).str.len().gt(0)


class Products(_Base):
    sku_id: Series[str] = pa.Field(**ID)
    category: Series[str] = pa.Field(**ID)
    supplier_id: Series[str] = pa.Field(**ID)
    unit_cost: Series[float] = pa.Field(gt=0)
    base_price: Series[float] = pa.Field(gt=0)
    case_pack: Series[int] = pa.Field(ge=1)
    min_order_qty: Series[int] = pa.Field(ge=0)


class Suppliers(_Base):
    supplier_id: Series[str] = pa.Field(**ID)
    lead_time_days: Series[float] = pa.Field(ge=0)
    lead_time_std_days: Series[float] = pa.Field(ge=0)


class Lanes(_Base):
    from_location_id: Series[str] = pa.Field(**ID)
    to_location_id: Series[str] = pa.Field(**ID)
    lead_time_days: Series[float] = pa.Field(ge=0)
    cost_per_unit: Series[float] = pa.Field(ge=0)


class Calendar(_Base):
    date: Series[pa.DateTime]
    event: Series[str] = pa.Field(**ID)


class PosSales(_Base):
    date: Series[pa.DateTime]
    location_id: Series[str] = pa.Field(**ID)
    sku_id: Series[str] = pa.Field(**ID)
    units_sold: Series[int] = pa.Field(ge=0)
    unit_price: Series[float] = pa.Field(ge=0)
    on_promo: Series[int] = pa.Field(isin=[0, 1])


class Inventory(_Base):
    date: Series[pa.DateTime]
    location_id: Series[str] = pa.Field(**ID)
    sku_id: Series[str] = pa.Field(**ID)
    on_hand: Series[int] = pa.Field(ge=0)


class Receipts(_Base):
    date: Series[pa.DateTime]
    order_id: Series[str] = pa.Field(**ID)
    location_id: Series[str] = pa.Field(**ID)
    sku_id: Series[str] = pa.Field(**ID)
    units_received: Series[int] = pa.Field(ge=0)


class OpenOrders(_Base):
    order_id: Series[str] = pa.Field(**ID)
    order_date: Series[pa.DateTime]
    source_id: Series[str] = pa.Field(**ID)
    location_id: Series[str] = pa.Field(**ID)
    sku_id: Series[str] = pa.Field(**ID)
    units: Series[int] = pa.Field(ge=0)
    expected_date: Series[pa.DateTime]


class PlannerDecisions(_Base):
    # the id of a decision of the decision log: FC|PO|RP|TR|PC-YYYYMMDD-<12 hex> (core.decisions.ID_PATTERN)
    decision_id: Series[str] = pa.Field(
        str_matches=r"^(FC|PO|RP|TR|PC)-\d{8}-[0-9a-f]{12}$"
    )
    action: Series[str] = pa.Field(isin=["approve", "reject", "override"])
    override_units_or_price: Series[float] = pa.Field(ge=0, nullable=True)
    reason: Series[str] = pa.Field(nullable=True)
    planner: Series[str] = pa.Field(**ID)

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
    key: tuple[
        str, ...
    ] = ()  # unique key; later duplicates are quarantined, the first kept
    # column -> (master table, key column) it must exist in
    references: dict[str, tuple[str, str]] = field(default_factory=dict)

    @property
    def required_columns(self) -> list[str]:
        schema = self.model.to_schema()
        return [c for c, col in schema.columns.items() if col.required]


_LOC = ("locations", "location_id")
_SKU = ("products", "sku_id")
LANDING_FILES: dict[str, LandingFile] = {
    f.name: f
    for f in [
        LandingFile(
            "locations", Locations, key=("location_id",), daily=False, required=True
        ),
        LandingFile(
            "products",
            Products,
            key=("sku_id",),
            daily=False,
            required=True,
            references={"supplier_id": ("suppliers", "supplier_id")},
        ),
        LandingFile(
            "suppliers", Suppliers, key=("supplier_id",), daily=False, required=True
        ),
        LandingFile(
            "lanes",
            Lanes,
            key=(
                "from_location_id",
                "to_location_id",
            ),
            daily=False,
            required=False,
            references={"from_location_id": _LOC, "to_location_id": _LOC},
        ),
        LandingFile(
            "calendar",
            Calendar,
            key=(
                "date",
                "event",
            ),
            daily=False,
            required=False,
        ),
        LandingFile(
            "pos_sales",
            PosSales,
            key=(
                "date",
                "location_id",
                "sku_id",
            ),
            daily=True,
            required=True,
            folder="daily",
            references={"location_id": _LOC, "sku_id": _SKU},
        ),
        LandingFile(
            "inventory",
            Inventory,
            key=(
                "date",
                "location_id",
                "sku_id",
            ),
            daily=True,
            required=True,
            folder="daily",
            references={"location_id": _LOC, "sku_id": _SKU},
        ),
        LandingFile(
            "receipts",
            Receipts,
            key=(
                "order_id",
                "location_id",
                "sku_id",
            ),
            daily=True,
            required=True,
            folder="daily",
            references={"location_id": _LOC, "sku_id": _SKU},
        ),
        LandingFile(
            "open_orders",
            OpenOrders,
            key=(
                "order_id",
                "location_id",
                "sku_id",
            ),
            daily=True,
            required=True,
            folder="daily",
            references={"location_id": _LOC, "sku_id": _SKU},
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
