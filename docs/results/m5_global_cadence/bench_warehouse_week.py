"""The mlforecast family over a week of plans on the M5-size bench warehouse (`make bench`'s
working folder): the first plan trains; each later plan either predicts with the models and CV
the plan before it kept (the cadence, chained as the asset chains them) or trains afresh. Wall per
plan, and WAPE / bias of each plan's forecast against the demand that followed.

    PYTHONPATH=. python docs/results/m5_global_cadence/bench_warehouse_week.py /tmp/benchm5/warehouse 2026-10-15

Tidied after the run that wrote bench_warehouse_week.json (that run also wrote, on each
`every_plan` row, `diff_share`: the carried forecast's absolute difference from the trained one
as a share of its volume). bench_warehouse_pair.json: the same for one pair of plans, 2026-10-22
and 23, with the seconds the carrying plan spent in the kept models' features and predictions.
"""

import json
import sys
import time
from pathlib import Path

import pandas as pd

from inventory_pipeline.config import DEFAULT_POLICY_PATH
from inventory_pipeline.core.policy import load_policy
from inventory_pipeline.core.sources import WarehouseSource
from inventory_pipeline.core.stages import FORECAST
from inventory_pipeline.core.warehouse import Warehouse


def score(fc: pd.DataFrame, actual: pd.DataFrame) -> dict:
    m = fc.merge(actual, on=["location_id", "sku_id", "date"])
    err, total = m["mean"] - m["units_sold"], m["units_sold"].sum()
    return {
        "wape": round(float(err.abs().sum() / total), 4),
        "bias": round(float(err.sum() / total), 4),
        "scored_days": int(m["date"].nunique()),
    }


def main(warehouse: str, first: str, plans: int = 7) -> list[dict]:
    wh = Warehouse(Path(warehouse))
    src = WarehouseSource(wh)
    cfg = FORECAST.config(load_policy(DEFAULT_POLICY_PATH)).model_copy(update={"family": "mlforecast"})
    days = [(pd.Timestamp(first) + pd.Timedelta(days=k)).date().isoformat() for k in range(plans)]
    sql = "select location_id, sku_id, date, units_sold from marts.fct_daily_demand where date > cast(? as date)"
    actual = wh.read_model(sql, [first])
    rows, last = [], None
    for i, d in enumerate(days):
        inputs = FORECAST.read(src, d, cfg)
        carry = {} if last is None else {"global_fits": last.global_fits, "cv_state": last.cv_state()}
        runs = {"cadence" if i else "refit": carry, **({"every_plan": {}} if i else {})}
        for mode, kw in runs.items():
            t0 = time.perf_counter()
            res = FORECAST.run(inputs, d, cfg, selection=last.selection if kw else None, **kw)
            row = {"plan": d, "mode": mode, "seconds": round(time.perf_counter() - t0, 1)}
            rows.append({**row, **score(res.forecast, actual), **res.fitting})
            print(json.dumps(rows[-1]), flush=True)
            if mode != "every_plan":
                last = res
    return rows


if __name__ == "__main__":
    out = main(sys.argv[1], sys.argv[2])
    Path("bench_warehouse_week.json").write_text(json.dumps(out, indent=1))
