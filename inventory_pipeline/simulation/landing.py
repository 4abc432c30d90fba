"""Write a simulated network as a landing zone (contract v1.1), and the hidden truth beside it.

OUT/master/{locations,products,suppliers,lanes,calendar}.csv
OUT/daily/YYYY-MM-DD/{pos_sales,inventory,receipts,open_orders}.csv
OUT/daily/YYYY-MM-DD/promotions.csv                    (v1.1: the plan known at the close of
                                                          the day, promotion_plan.known_plan;
                                                          written when the network has promotions)
OUT/_simulation/{network.json,true_demand.parquet}     (not part of the contract: the truth
                                                          the evaluation compares against)
OUT/_simulation/promotion_plan.parquet                 (every plan version, with its kind:
                                                          on time, shifted, cancelled, unannounced)
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from .engine import (
    KIND_EXPEDITE,
    KIND_LAUNCH_DC,
    KIND_LAUNCH_STORE,
    KIND_STORE,
    KIND_SUPPLIER,
    KIND_TRANSFER,
    TO_STORE_KINDS,
    DayRecord,
    simulate,
)
from .network import Network, NetworkConfig, build_network
from .policies import BaselinePolicy
from .promotion_plan import PlanConfig, known_plan, plan_schedule


def format_order_ids(order_id: np.ndarray, kind: np.ndarray, sku_ids: np.ndarray, sku: np.ndarray) -> np.ndarray:
    if len(order_id) == 0:
        return np.array([], dtype=object)
    prefix = np.where(
        kind == KIND_STORE, "ST", np.where(kind == KIND_TRANSFER, "TR", np.where(kind == KIND_EXPEDITE, "EX", "PO"))
    )
    ids = np.char.add(prefix.astype(str), np.char.zfill(order_id.astype(str), 9))
    launch = (kind == KIND_LAUNCH_DC) | (kind == KIND_LAUNCH_STORE)
    if launch.any():
        ids = ids.astype(object)
        ids[launch] = np.char.add("LAUNCH-", sku_ids[sku[launch]].astype(str))
    return ids


def _pick(mask: np.ndarray, ids_if: np.ndarray, ids_else: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """ids_if[idx] where mask, ids_else[idx] elsewhere (positions index different id lists)."""
    out = np.empty(len(idx), dtype=object)
    out[mask] = ids_if[idx[mask]]
    out[~mask] = ids_else[idx[~mask]]
    return out


class LandingWriter:
    """A sink for `simulate` that writes each day as landing files (CSV or Parquet)."""

    def __init__(
        self,
        network: Network,
        out: Path,
        fmt: str = "csv",
        write_truth: bool = True,
        promotions: bool | None = None,
        plan: PlanConfig | None = None,
    ) -> None:
        """`promotions`: write daily/D/promotions.csv (v1.1); None = when the network has any
        promotion (a replayed network without promotion data, M5, writes a v1 zone)."""
        if fmt not in ("csv", "parquet"):
            raise ValueError(f"format must be csv or parquet, got {fmt!r}")
        self.net, self.out, self.fmt, self.write_truth = network, Path(out), fmt, write_truth
        self.promotions = bool(np.asarray(network.promo_path).any()) if promotions is None else promotions
        self.plan = plan or PlanConfig()
        self.sku_ids = network.sku_ids.astype(str)
        self.store_ids = network.store_ids.astype(str)
        self.dc_ids = network.dc_ids.astype(str)
        self.supplier_ids = network.suppliers["supplier_id"].to_numpy(str)
        self._truth: list[pd.DataFrame] = []

    def _write(self, df: pd.DataFrame, rel: str) -> None:
        path = self.out / f"{rel}.{self.fmt}"
        path.parent.mkdir(parents=True, exist_ok=True)
        if self.fmt == "csv":
            df.to_csv(path, index=False)
        else:
            df.to_parquet(path, index=False)

    def write_master(self, calendar: pd.DataFrame | None = None) -> None:
        """`calendar`: the landing calendar when it is not the network's own (M5 adds regional SNAP rows)."""
        n = self.net
        for name, df in (
            ("locations", n.locations),
            ("products", n.products),
            ("suppliers", n.suppliers),
            ("lanes", n.lanes),
            ("calendar", n.calendar if calendar is None else calendar),
        ):
            self._write(df, f"master/{name}")

    def __call__(self, rec: DayRecord) -> None:
        d = rec.date.date().isoformat()
        sold_l, sold_s = np.nonzero(rec.sales)
        pos = pd.DataFrame(
            {
                "date": d,
                "location_id": self.store_ids[sold_l],
                "sku_id": self.sku_ids[sold_s],
                "units_sold": rec.sales[sold_l, sold_s],
                "unit_price": np.round(rec.price[sold_l, sold_s], 2),
                "on_promo": rec.promo[sold_s].astype(int),
            }
        )
        dl, ds = np.nonzero(rec.dc_carried)
        sl, ss = np.nonzero(rec.store_carried)
        inv = pd.DataFrame(
            {
                "date": d,
                "location_id": np.concatenate([self.dc_ids[dl], self.store_ids[sl]]),
                "sku_id": np.concatenate([self.sku_ids[ds], self.sku_ids[ss]]),
                "on_hand": np.concatenate([rec.dc_on_hand[dl, ds], rec.store_on_hand[sl, ss]]),
            }
        )
        r = rec.receipts
        to_store = np.isin(r["kind"], TO_STORE_KINDS)
        rec_loc = _pick(to_store, self.store_ids, self.dc_ids, r["dest"])
        receipts = pd.DataFrame(
            {
                "date": d,
                "order_id": format_order_ids(r["order_id"], r["kind"], self.sku_ids, r["sku"]),
                "location_id": rec_loc,
                "sku_id": self.sku_ids[r["sku"]],
                "units_received": r["units"],
            }
        ).sort_values(["order_id", "location_id"], ignore_index=True)
        o = rec.open_orders
        is_store = o["kind"] != KIND_SUPPLIER  # DC -> store replenishments and store -> store transfers
        src_ids = np.where(
            o["kind"] == KIND_TRANSFER,
            self.store_ids[np.minimum(o["src"], len(self.store_ids) - 1)],
            self.dc_ids[np.minimum(o["src"], len(self.dc_ids) - 1)],
        ).astype(object)
        start = rec.date - pd.Timedelta(days=int(rec.t))
        open_orders = pd.DataFrame(
            {
                "order_id": format_order_ids(o["order_id"], o["kind"], self.sku_ids, o["sku"]),
                "order_date": (start + pd.to_timedelta(o["order_day"], unit="D")).strftime("%Y-%m-%d"),
                "source_id": np.where(is_store, src_ids, self.supplier_ids[np.where(is_store, 0, o["src"])]),
                "location_id": _pick(is_store, self.store_ids, self.dc_ids, o["dest"]),
                "sku_id": self.sku_ids[o["sku"]],
                "units": o["ordered"],
                "expected_date": (start + pd.to_timedelta(o["expected_day"], unit="D")).strftime("%Y-%m-%d"),
            }
        )
        for name, df in (("pos_sales", pos), ("inventory", inv), ("receipts", receipts), ("open_orders", open_orders)):
            self._write(df, f"daily/{d}/{name}")
        if self.promotions:
            self._write(known_plan(self.net, int(rec.t), self.plan), f"daily/{d}/promotions")
        if self.write_truth:
            dl_, ds_ = np.nonzero(rec.demand)
            self._truth.append(
                pd.DataFrame(
                    {
                        "date": rec.date,
                        "location_id": pd.Categorical(self.store_ids[dl_], categories=self.store_ids),
                        "sku_id": pd.Categorical(self.sku_ids[ds_], categories=self.sku_ids),
                        "demand": rec.demand[dl_, ds_].astype(np.int32),
                        "lost_units": (rec.demand - rec.sales)[dl_, ds_].astype(np.int32),
                    }
                )
            )

    def finish(self, summary: dict) -> None:
        sim = self.out / "_simulation"
        sim.mkdir(parents=True, exist_ok=True)
        (sim / "network.json").write_text(json.dumps(summary, indent=2, sort_keys=True, default=str) + "\n")
        if self.write_truth and self._truth:
            pd.concat(self._truth, ignore_index=True).to_parquet(sim / "true_demand.parquet", index=False)
        if self.write_truth and self.promotions:
            plan_schedule(self.net, self.plan).to_parquet(sim / "promotion_plan.parquet", index=False)


def generate_landing_zone(
    cfg: NetworkConfig,
    out: str | Path,
    fmt: str = "csv",
    write_truth: bool = True,
    progress: Callable[[str], None] | None = None,
) -> dict:
    """Simulate `cfg` under the baseline rule and write it as a landing zone. Returns a summary."""
    t0 = time.perf_counter()
    net = build_network(cfg)
    writer = LandingWriter(net, Path(out), fmt=fmt, write_truth=write_truth)
    writer.write_master()
    say = progress or (lambda msg: None)
    res = simulate(
        net,
        BaselinePolicy(review_period_days=cfg.review_period_days),
        sink=writer,
        progress=lambda i, n: say(f"simulated day {i}/{n}"),
    )
    first = cfg.start
    last = (pd.Timestamp(first) + pd.Timedelta(days=cfg.days - 1)).date()
    summary = {
        "config": cfg.to_dict(),
        "first_date": first.isoformat(),
        "last_date": last.isoformat(),
        "stores": cfg.stores,
        "dcs": cfg.dcs,
        "skus": cfg.skus,
        "demand_units": res.demand_units,
        "sales_units": res.sales_units,
        "lost_units": res.lost_units,
        "fill_rate": round(res.sales_units / max(res.demand_units, 1), 4),
        "stockout_rate": round(res.stockout_days / max(res.active_days, 1), 4),
        "store_orders": res.store_orders,
        "dc_orders": res.dc_orders,
    }
    writer.finish(summary)
    summary["seconds"] = round(time.perf_counter() - t0, 2)
    return summary
