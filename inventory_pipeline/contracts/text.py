"""`Text`: pandera's `str` column type, checked in one pass of C.

pandera checks a `str` column of object dtype by mapping `isinstance(x, str)` over every value
in Python: 1.1 s of the 1.7 s the forecast contract took on M5's 876,510 rows (four string
columns). `Text` asks pandas' `infer_dtype` first, which scans the values in C and stops at the
first that is not a string. When every value is a string (nulls aside) the column passes at
once; otherwise pandera's own check runs and reports the failure cases as before.
"""

from __future__ import annotations

import pandas as pd
from pandera import dtypes
from pandera.engines import pandas_engine


@pandas_engine.Engine.register_dtype
@dtypes.immutable
class Text(pandas_engine.NpString):
    """A column of Python strings (nullable where the field says so), as `Series[str]`."""

    def check(self, pandera_dtype, data_container=None):
        if data_container is not None and pd.api.types.infer_dtype(data_container, skipna=True) in ("string", "empty"):
            return True
        return super().check(pandera_dtype, data_container)
