"""The warehouse: one Parquet file per table partition, read through DuckDB.

    <warehouse>/<table>/data.parquet              unpartitioned tables
    <warehouse>/<table>/<YYYY-MM-DD>/data.parquet daily partitions
    <warehouse>/warehouse.duckdb                  dbt's models (staging, marts)

Writing a partition replaces its one file atomically (write to a temp file, then rename), so
re-running a partition is idempotent and parallel partition runs never share a file lock —
DuckDB reads every partition with one glob.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow.parquet as pq


def _read_parquet(path: Path) -> pd.DataFrame:
    """One Parquet file through pyarrow's own file reader. `pd.read_parquet(path)` hands pyarrow a
    Python file object whose buffers a pyarrow worker thread may release during interpreter
    shutdown, aborting a finished process with exit 134 (apache/arrow#34314;
    docs/operations.md)."""
    return pq.read_table(str(path)).to_pandas()


def as_enums(con, sql: str, params: list | None, columns: tuple[str, ...]) -> str:
    """`sql` with each of `columns` cast to an ENUM of its distinct values, which DuckDB hands to
    pandas as a Categorical: the codes and the few distinct strings, not one Python string per row.
    At M5 scale the forecast reads 11.7 M rows; making two string objects per row was most of the
    read's time. Reading the distinct values first is one more scan of the key columns (0.1 s
    there), in the same read-only connection, so no writer changes them in between. A column
    without a value keeps its type."""
    enums = []
    for col in columns:
        name = '"' + col.replace('"', '""') + '"'
        values = sorted(
            v
            for (v,) in con.execute(f"select distinct {name} from ({sql}) where {name} is not null", params).fetchall()
        )
        if values:
            literal = ", ".join("'" + str(v).replace("'", "''") + "'" for v in values)
            enums.append(f"{name}::ENUM({literal}) as {name}")
    return f"select * replace ({', '.join(enums)}) from ({sql})" if enums else sql


def _write_text(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def fingerprint_of(reads: pd.DataFrame) -> str:
    """The inputs fingerprint (16 hex) of a reads table (table, partition, sha256; sorted)."""
    lines = "\n".join(f"{t}/{p}:{d}" for t, p, d in reads[["table", "partition", "sha256"]].itertuples(index=False))
    return hashlib.sha256(lines.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Appended:
    """What `Warehouse.append` left in the partition, and how many of its rows were new."""

    table: pd.DataFrame
    rows_added: int


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
            digest = hashlib.sha256(Path(tmp).read_bytes()).hexdigest()
            os.replace(tmp, target)
            _write_text(target.with_name(target.name + ".sha256"), digest + "\n")
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        return target

    def sha256(self, table: str, partition: str | None = None) -> str:
        """The content hash of a partition, recorded when it was written (computed if missing)."""
        target = self.path(table, partition)
        side = target.with_name(target.name + ".sha256")
        if side.is_file():
            return side.read_text().strip()
        return hashlib.sha256(target.read_bytes()).hexdigest() if target.is_file() else ""

    def fingerprint(self, reads: list[tuple[str, str | None]]) -> tuple[str, pd.DataFrame]:
        """(hash, table): the partitions read, each with its content hash ("" for one that did not
        exist: a file arriving later for that day is a change too); the hash covers them all."""
        rows = [(t, p or "", self.sha256(t, p)) for t, p in reads]
        df = pd.DataFrame(sorted(rows), columns=["table", "partition", "sha256"])
        return fingerprint_of(df), df

    def append(self, table: str, df: pd.DataFrame, partition: str | None, merge) -> Appended:
        """Read-merge-write one partition under an exclusive lock: `merge(existing_or_None, df)`
        returns the new content (append-only tables: existing rows kept, new ones added; the file is
        rewritten only when rows were added). Returns the merged table and the rows added, counted
        under the lock."""
        target = self.path(table, partition)
        target.parent.mkdir(parents=True, exist_ok=True)
        with open(target.with_name(".lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            existing = _read_parquet(target) if target.is_file() else None
            merged = merge(existing, df)
            if existing is None or len(merged) != len(existing):  # append-only: nothing new, nothing written
                self.write(table, merged, partition)
            return Appended(merged, len(merged) - (0 if existing is None else len(existing)))

    def read_state(self, name: str | Path) -> dict | None:
        """A small JSON state file beside the tables (what a step last built or ingested), or None."""
        path = self.root / name
        return json.loads(path.read_text()) if path.is_file() else None

    def write_state(self, name: str | Path, state: dict) -> None:
        """Write a state file whole or not at all (a temporary file renamed over it)."""
        path = self.root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, sort_keys=True))
        tmp.replace(path)

    def exists(self, table: str, partition: str | None = None) -> bool:
        return self.path(table, partition).is_file()

    def read(self, table: str, partition: str | None = None) -> pd.DataFrame:
        return _read_parquet(self.path(table, partition))

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

    def read_model(self, sql: str, params: list | None = None, categories: tuple[str, ...] = ()) -> pd.DataFrame:
        """Read dbt models from the DuckDB file (read-only: dbt is the only writer). `categories`:
        string columns of the result returned as pandas Categoricals (`as_enums`)."""
        with duckdb.connect(str(self.duckdb_path), read_only=True) as con:
            if categories:
                sql = as_enums(con, sql, params, categories)
            return con.execute(sql, params).df()
