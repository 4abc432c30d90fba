"""Read landing files from a folder or S3, validate them against contract v1, quarantine bad rows.

One code path for every location: a `LandingStore` gives bytes for a relative path; `LocalStore`
reads a folder, `S3Store` reads a bucket prefix through a boto3 client (the shell gets it from
dagster-aws' `S3Resource`). Parsing, validation and quarantine never know which one they got.

File-level problems (a required file or column is missing, the file is not UTF-8 CSV) raise
`LandingContractError` naming the file. Row-level problems (a value of the wrong type, a negative
quantity, a duplicate key, an unknown SKU or location, a row with the wrong number of fields) move
that row to the quarantine table with file, row and reason; every other row is kept.
`row` is the 1-based data row in the file (the header is not counted).
"""

from __future__ import annotations

import csv
import io
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol
from urllib.parse import urlparse

import numpy as np
import pandas as pd
import pandera.pandas as pa
import pyarrow as pyarrow
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from ..contracts.landing import LandingFile, file_stem

QUARANTINE_COLUMNS = ["file", "row", "column", "reason", "record", "partition_date"]


class LandingContractError(ValueError):
    """A landing file cannot be used at all (missing file or column, unreadable)."""


class LandingStore(Protocol):
    uri: str

    def read_bytes(self, rel: str) -> bytes | None: ...

    def list_dirs(self, rel: str) -> list[str]: ...

    def list_files(self, rel: str) -> dict[str, tuple[int, str, float]]:
        """Every file under `rel`, recursively: relative path -> (size, version, modified epoch s)."""
        ...


@dataclass
class LocalStore:
    root: Path

    @property
    def uri(self) -> str:
        return str(self.root)

    def read_bytes(self, rel: str) -> bytes | None:
        p = self.root / rel
        return p.read_bytes() if p.is_file() else None

    def list_dirs(self, rel: str) -> list[str]:
        p = self.root / rel
        return sorted(d.name for d in p.iterdir() if d.is_dir()) if p.is_dir() else []

    def list_files(self, rel: str) -> dict[str, tuple[int, str, float]]:
        base, out = self.root / rel, {}
        for dirpath, _, names in os.walk(base):
            for n in names:
                st = os.stat(os.path.join(dirpath, n))
                out[
                    os.path.relpath(os.path.join(dirpath, n), base).replace(os.sep, "/")
                ] = (st.st_size, str(st.st_mtime_ns), st.st_mtime)
        return out


@dataclass
class S3Store:
    client: object  # a boto3 S3 client
    bucket: str
    prefix: str = ""

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}".rstrip("/")

    def _key(self, rel: str) -> str:
        return f"{self.prefix.strip('/')}/{rel}".lstrip("/")

    def read_bytes(self, rel: str) -> bytes | None:
        try:
            return self.client.get_object(Bucket=self.bucket, Key=self._key(rel))[
                "Body"
            ].read()
        except self.client.exceptions.NoSuchKey:
            return None

    def list_dirs(self, rel: str) -> list[str]:
        prefix = self._key(rel).rstrip("/") + "/"
        out: list[str] = []
        for page in self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=prefix, Delimiter="/"
        ):
            out += [
                cp["Prefix"][len(prefix) :].rstrip("/")
                for cp in page.get("CommonPrefixes", [])
            ]
        return sorted(out)

    def list_files(self, rel: str) -> dict[str, tuple[int, str, float]]:
        prefix, out = self._key(rel).rstrip("/") + "/", {}
        for page in self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=prefix
        ):
            for o in page.get(
                "Contents", []
            ):  # S3 objects appear whole: no upload is seen half-written
                out[o["Key"][len(prefix) :]] = (
                    o["Size"],
                    o["ETag"].strip('"'),
                    o["LastModified"].timestamp(),
                )
        return out


def open_store(uri: str, s3_client: object | None = None) -> LandingStore:
    """A store for a folder path or an `s3://bucket/prefix` URI."""
    if uri.startswith("s3://"):
        if s3_client is None:
            raise ValueError(
                f"{uri} is on S3: pass an S3 client (dagster-aws S3Resource)"
            )
        u = urlparse(uri)
        return S3Store(s3_client, u.netloc, u.path.lstrip("/"))
    return LocalStore(Path(uri))


def relative_path(f: LandingFile, date: str | None, ext: str) -> str:
    stem = file_stem(f)
    return f"{f.folder}/{date}/{stem}.{ext}" if f.daily else f"{f.folder}/{stem}.{ext}"


@dataclass
class RawFile:
    path: str  # full URI of the file read
    frame: pd.DataFrame  # all columns as strings (nulls as <NA>), plus `_row`
    bad_rows: pd.DataFrame  # quarantine rows from parsing (wrong field count)


def _parse_csv(data: bytes, path: str) -> tuple[pd.DataFrame, list[tuple[int, str]]]:
    try:
        text_head = data.split(b"\n", 1)[0].decode("utf-8").rstrip("\r")
    except UnicodeDecodeError as e:
        raise LandingContractError(f"{path}: not UTF-8 ({e})") from e
    if not text_head.strip():
        raise LandingContractError(f"{path}: empty file or missing header row")
    names = next(csv.reader([text_head]))
    bad: list[tuple[int, str]] = []

    def on_invalid(row):  # pyarrow: a row with the wrong number of fields
        bad.append(
            (
                row.number,
                f"expected {row.expected_columns} fields, got {row.actual_columns}: {row.text!r}",
            )
        )
        return "skip"

    try:
        table = pacsv.read_csv(
            io.BytesIO(data),
            read_options=pacsv.ReadOptions(use_threads=False),
            parse_options=pacsv.ParseOptions(invalid_row_handler=on_invalid),
            convert_options=pacsv.ConvertOptions(
                column_types={n: pyarrow.string() for n in names},
                strings_can_be_null=True,
                null_values=[""],
            ),
        )
    except (pyarrow.ArrowInvalid, UnicodeDecodeError) as e:
        raise LandingContractError(f"{path}: cannot be parsed as CSV ({e})") from e
    df = table.to_pandas()
    # pyarrow numbers rows from 1 counting the header: data row = number - 1
    skipped = sorted(n - 1 for n, _ in bad if n is not None)
    kept_rows = np.setdiff1d(np.arange(1, len(df) + len(bad) + 1), skipped)[: len(df)]
    df["_row"] = kept_rows
    return df, [(n - 1 if n is not None else None, reason) for n, reason in bad]


def read_landing_file(
    store: LandingStore, f: LandingFile, date: str | None = None
) -> RawFile | None:
    """Read one landing file as strings. None when an optional file is absent."""
    for ext in ("csv", "parquet"):
        rel = relative_path(f, date, ext)
        data = store.read_bytes(rel)
        if data is None:
            continue
        path = f"{store.uri.rstrip('/')}/{rel}"
        if ext == "csv":
            frame, bad = _parse_csv(data, path)
        else:
            try:
                frame = pq.read_table(io.BytesIO(data)).to_pandas()
            except Exception as e:  # noqa: BLE001 - any reader error means the file is unusable
                raise LandingContractError(
                    f"{path}: cannot be read as Parquet ({e})"
                ) from e
            frame = frame.astype("string").astype(object).where(frame.notna(), None)
            frame["_row"] = np.arange(1, len(frame) + 1)
            bad = []
        missing = [c for c in f.required_columns if c not in frame.columns]
        if missing:
            raise LandingContractError(
                f"{path}: missing required column(s) {missing}; the file has {list(frame.columns[:-1])}"
            )
        bad_rows = pd.DataFrame(
            {
                "file": path,
                "row": [r for r, _ in bad],
                "column": None,
                "reason": [m for _, m in bad],
                "record": None,
            },
            columns=QUARANTINE_COLUMNS[:-1],
        )
        frame["_file"] = path
        if f.daily:
            frame["landing_date"] = date
            bad_rows["partition_date"] = date
        return RawFile(path=path, frame=frame, bad_rows=bad_rows)
    if f.required:
        where = relative_path(f, date, "csv")
        raise LandingContractError(
            f"{store.uri.rstrip('/')}/{where}: required landing file is missing (.csv or .parquet)"
        )
    return None


def _reasons_from_failures(fc: pd.DataFrame) -> pd.DataFrame:
    fc = fc[fc["index"].notna()].copy()
    fc["reason"] = (
        fc["check"].astype(str) + " failed for value " + fc["failure_case"].astype(str)
    )
    fc.loc[
        fc["check"].astype(str).str.contains("uniqueness|unique", regex=True), "reason"
    ] = "duplicate key"
    fc["column"] = fc["column"].astype(str)
    return fc[["index", "column", "reason"]]


def validate_frame(
    f: LandingFile,
    raw: RawFile,
    references: dict[tuple[str, str], set[str]] | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Validate `raw` against its contract. Returns (valid rows, quarantine rows).

    Row failures are found in passes: a column whose coercion fails hides its value checks,
    so the failing rows are removed and the rest validated again until it is clean.
    """
    df = raw.frame.reset_index(drop=True)
    meta_cols = ["_row", "_file"]
    problems: list[pd.DataFrame] = []
    # cross-file references first (on the raw strings): unknown SKU, unknown location, ...
    for col, ref in f.references.items():
        if references is None or ref not in references or col not in df.columns:
            continue
        unknown = df[col].notna() & ~df[col].isin(references[ref])
        if unknown.any():
            problems.append(
                pd.DataFrame(
                    {
                        "index": df.index[unknown],
                        "column": col,
                        "reason": [
                            f"unknown {ref[1]} {v!r} (not in {ref[0]})"
                            for v in df.loc[unknown, col]
                        ],
                    }
                )
            )
    if f.key:
        # a daily file's key holds within its day (open orders repeat in every day's snapshot)
        subset = list(f.key) + (
            ["landing_date"] if "landing_date" in df.columns else []
        )
        dup = df.duplicated(subset=subset, keep="first")
        if dup.any():
            problems.append(
                pd.DataFrame(
                    {
                        "index": df.index[dup],
                        "column": ",".join(f.key),
                        "reason": f"duplicate key {list(f.key)} (first occurrence kept)",
                    }
                )
            )
    schema = f.model.to_schema()
    remaining = df.drop(index=pd.concat(problems)["index"].unique()) if problems else df
    valid = None
    for _ in range(5):
        try:
            valid = schema.validate(remaining.drop(columns=meta_cols), lazy=True)
            break
        except pa.errors.SchemaErrors as e:
            found = _reasons_from_failures(e.failure_cases)
            if found.empty:  # a failure that is not row-level: the file cannot be used
                raise LandingContractError(
                    f"{raw.path}: {e.failure_cases.to_dict('records')}"
                ) from e
            problems.append(found)
            remaining = remaining.drop(index=found["index"].astype(int).unique())
    if valid is None:
        raise LandingContractError(f"{raw.path}: validation did not converge")
    valid = valid.copy()

    quarantine = raw.bad_rows.copy()
    if problems:
        p = pd.concat(problems, ignore_index=True)
        p["index"] = p["index"].astype(int)
        p = p.groupby("index", sort=True).agg(
            column=("column", lambda s: ",".join(dict.fromkeys(s))),
            reason=("reason", lambda s: "; ".join(dict.fromkeys(s))),
        )
        rows = df.loc[p.index]
        data_cols = [
            c for c in rows.columns if c not in meta_cols and c != "landing_date"
        ]
        records = rows[data_cols].astype(object).where(rows[data_cols].notna(), None)
        quarantine = pd.concat(
            [
                quarantine,
                pd.DataFrame(
                    {
                        "file": rows["_file"].to_numpy(),
                        "row": rows["_row"].to_numpy(),
                        "column": p["column"].to_numpy(),
                        "partition_date": rows["landing_date"].to_numpy()
                        if "landing_date" in rows
                        else None,
                        "reason": p["reason"].to_numpy(),
                        "record": [
                            json.dumps(r, sort_keys=True)
                            for r in records.to_dict("records")
                        ],
                    }
                ),
            ],
            ignore_index=True,
        )
    quarantine["row"] = quarantine["row"].astype("Int64")
    quarantine = quarantine.reindex(columns=QUARANTINE_COLUMNS).astype(
        {"file": str, "reason": str}
    )
    return valid.reset_index(drop=True), quarantine.sort_values(
        ["file", "row"], ignore_index=True
    )


def empty_frame(f: LandingFile) -> pd.DataFrame:
    """A zero-row frame with the contract's columns and types (for an absent optional file)."""
    cols = list(f.model.to_schema().columns) + (["landing_date"] if f.daily else [])
    return f.model.to_schema().validate(
        pd.DataFrame({c: pd.Series(dtype=object) for c in cols})
    )


@dataclass
class IngestResult:
    valid: pd.DataFrame
    quarantine: pd.DataFrame
    files_read: list[str]
    files_missing: list[str]

    @property
    def quarantine_share(self) -> float:
        total = len(self.valid) + len(self.quarantine)
        return len(self.quarantine) / total if total else 0.0


def ingest(
    store: LandingStore,
    f: LandingFile,
    dates: list[str] | None = None,
    references: dict[tuple[str, str], set[str]] | None = None,
) -> IngestResult:
    """Read and validate one landing file (for each date of a daily file) in one vectorised pass.

    Every file-level problem in the batch is collected first and raised together, so one run
    reports every missing file or column at once.
    """
    raws, missing, errors = [], [], []
    for d in dates if f.daily else [None]:
        try:
            raw = read_landing_file(store, f, d)
        except LandingContractError as e:
            errors.append(str(e))
            continue
        if raw is None:
            missing.append(relative_path(f, d, "csv"))
        else:
            raws.append(raw)
    if errors:
        shown = "\n  ".join(errors[:20]) + (
            f"\n  ... and {len(errors) - 20} more" if len(errors) > 20 else ""
        )
        raise LandingContractError(
            f"{f.name}: {len(errors)} landing file(s) cannot be used:\n  {shown}"
        )
    if not raws:
        return IngestResult(
            empty_frame(f), pd.DataFrame(columns=QUARANTINE_COLUMNS), [], missing
        )
    combined = RawFile(
        path=raws[0].path if len(raws) == 1 else f"{len(raws)} files",
        frame=pd.concat([r.frame for r in raws], ignore_index=True),
        bad_rows=pd.concat([r.bad_rows for r in raws], ignore_index=True),
    )
    valid, quarantine = validate_frame(f, combined, references)
    return IngestResult(valid, quarantine, [r.path for r in raws], missing)
