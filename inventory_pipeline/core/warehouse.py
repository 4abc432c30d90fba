"""The warehouse: one Parquet file per table partition, read through DuckDB.

    <warehouse>/<table>/data.parquet              unpartitioned tables
    <warehouse>/<table>/<YYYY-MM-DD>/data.parquet daily partitions
    <warehouse>/warehouse.duckdb                  dbt's models (staging, marts)

Writing a partition replaces its one file atomically (write to a temp file, then rename), so
re-running a partition is idempotent and parallel partition runs never share a file lock —
DuckDB reads every partition with one glob.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pandas as pd


@dataclass(frozen=True)
class Warehouse:
    root: Path

    def path(self, table: str, partition: str | None = None) -> Path:
        base = self.root / table
        return (base / partition / "data.parquet") if partition else (base / "data.parquet")

    def glob(self, table: str) -> str:
        return str(self.root / table / "**" / "*.parquet")

    def write(self, table: str, df: pd.DataFrame, partition: str | None = None) -> Path:
        target = self.path(table, partition)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, suffix=".parquet.tmp")
        os.close(fd)
        try:
            df.reset_index(drop=True).to_parquet(tmp, index=False)
            os.replace(tmp, target)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        return target

    def exists(self, table: str, partition: str | None = None) -> bool:
        return self.path(table, partition).is_file()

    def read(self, table: str, partition: str | None = None) -> pd.DataFrame:
        return pd.read_parquet(self.path(table, partition))

    def partitions(self, table: str) -> list[str]:
        base = self.root / table
        return sorted(p.name for p in base.iterdir() if (p / "data.parquet").is_file()) if base.is_dir() else []

    def query(self, sql: str, **params) -> pd.DataFrame:
        """Run SQL over the Parquet tables (`{table}` names expand to their globs) in memory."""
        with duckdb.connect() as con:
            return con.execute(sql, params or None).df()

    def scan(self, table: str) -> str:
        """A DuckDB table expression for every partition of `table`."""
        return f"read_parquet('{self.glob(table)}', union_by_name=true)"

    @property
    def duckdb_path(self) -> Path:
        return self.root / "warehouse.duckdb"

    def read_model(self, sql: str, params: list | None = None) -> pd.DataFrame:
        """Read dbt models from the DuckDB file (read-only: dbt is the only writer)."""
        with duckdb.connect(str(self.duckdb_path), read_only=True) as con:
            return con.execute(sql, params).df()
