"""Date columns of long tables.

DuckDB returns DATE columns as datetime64 already, yet the stages call `pd.to_datetime` on them
(the twin's source and the landing files give strings). With its default cache, pandas then boxes
a sample of the values as Python Timestamps, hashes every row and maps it back: 0.7 s on the
forecast's 11 M history dates, ~2 s of an M5 plan over all the stages, for values it does not
change. `as_dates` skips the cache where there is nothing to parse; the values are the same."""

from __future__ import annotations

import numpy as np
import pandas as pd


def as_dates(values):
    """`pd.to_datetime(values)`; without its cache when `values` are datetimes already."""
    dtype = getattr(values, "dtype", None)
    parsed = (isinstance(dtype, np.dtype) and dtype.kind == "M") or isinstance(dtype, pd.DatetimeTZDtype)
    return pd.to_datetime(values, cache=not parsed)
