"""Integer codes for the store and SKU keys of long tables (millions of rows, thousands of keys).

Every stage numbers its history's keys before it works on arrays. A key column comes either as
strings (the twin's source, the landing files) or as a pandas Categorical (the warehouse's
`Source.history(keys_as_categories=True)`, a DuckDB ENUM); both give the same codes and names, so
no stage depends on which it got (test_forecasting, test_pricing, test_replenishment)."""

from __future__ import annotations

import numpy as np
import pandas as pd


def string_codes(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(codes, names): `values` as strings, numbered in sorted order. Hashes the rows once and
    converts only the distinct values to strings (millions of rows, thousands of keys)."""
    codes, uniques = pd.factorize(values, use_na_sentinel=False)  # a missing key is "None" / "nan", as astype(str)
    by_name, names = pd.factorize(np.asarray(uniques, dtype=object).astype(str), sort=True)
    return by_name[codes], names


def key_codes(keys: pd.Series, rows: np.ndarray | None = None, as_str: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Each row's code (of `rows` only, when given) and the distinct keys in sorted order: as
    `pd.factorize(values, sort=True)`, or with `as_str` as `string_codes` (keys as strings, a missing
    key the string "nan" / "None"). A Categorical column is coded from its few categories instead
    of hashing a key per row."""
    if isinstance(keys.dtype, pd.CategoricalDtype):
        codes = keys.cat.codes.to_numpy()
        codes = codes if rows is None else codes[rows]
        if len(codes) and codes.min() >= 0:  # a missing key: the rows' own path below
            names = keys.cat.categories.to_numpy(dtype=object)
            names = names.astype(str) if as_str else names
            used = np.flatnonzero(np.bincount(codes, minlength=len(names)))
            rank, distinct = pd.factorize(names[used], sort=True)
            code_of = np.full(len(names), -1, np.int64)
            code_of[used] = rank
            return code_of[codes], distinct
    values = keys.to_numpy() if rows is None else keys.to_numpy()[rows]
    return string_codes(values) if as_str else pd.factorize(values, sort=True)
