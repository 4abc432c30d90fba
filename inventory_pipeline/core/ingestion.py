"""Read landing files from a folder or S3, validate them against contract v1, quarantine bad rows.

One code path for every location: a `LandingStore` gives bytes for a relative path; `LocalStore`
reads a folder, `S3Store` reads a bucket prefix through a boto3 client (the shell gets it from
dagster-aws' `S3Resource`). Parsing, validation and quarantine never know which one they got.

File-level problems (a required file or column is missing, the file is not UTF-8 CSV) raise
`LandingContractError` naming the file. Row-level problems (a value of the wrong type, a negative
quantity, a duplicate key, an unknown SKU or location, a row with the wrong number of fields) move
that row to the quarantine table with file, row and reason; every other row is kept.
`row` is the 1-based data row in the file (the header is not counted).

Files are checked as files (`file_rule_problems`): a daily row whose `date` is not its folder's
date is quarantined with that reason, so is an open order expected before it was ordered or more
than `max_expected_days` after the folder's date, and a CSV whose last line has no newline has
that line quarantined as "truncated last line" (a file cut mid-value, `...,100` -> `...,10`, parses
as a plausible row: the only safe reading of an unterminated last line is that it may be cut).
A master row breaking a hold rule (contracts.landing.HOLD_RULES) is listed with `disposition`
"held" and kept; every other quarantined row is "rejected". `quarantine_share` and the per file
and day shares (`IngestResult.file_shares`) count the rejected rows.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol
from urllib.parse import urlparse

import numpy as np
import pandas as pd
import pandera.pandas as pa
import pyarrow as pyarrow
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from ..contracts.landing import HOLD_RULES, LandingFile, file_stem

QUARANTINE_COLUMNS = [
    "file",
    "row",
    "column",
    "reason",
    "record",
    "partition_date",
    "disposition",
]
_BAD_ROW_COLUMNS = ["file", "row", "column", "reason", "record"]
TRUNCATED = "truncated last line: no newline at end of file, the row may be cut mid-value"
DEFAULT_MAX_EXPECTED_DAYS = 365


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
                out[os.path.relpath(os.path.join(dirpath, n), base).replace(os.sep, "/")] = (
                    st.st_size,
                    str(st.st_mtime_ns),
                    st.st_mtime,
                )
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
            return self.client.get_object(Bucket=self.bucket, Key=self._key(rel))["Body"].read()
        except self.client.exceptions.NoSuchKey:
            return None

    def list_dirs(self, rel: str) -> list[str]:
        prefix = self._key(rel).rstrip("/") + "/"
        out: list[str] = []
        for page in self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=prefix, Delimiter="/"
        ):
            out += [cp["Prefix"][len(prefix) :].rstrip("/") for cp in page.get("CommonPrefixes", [])]
        return sorted(out)

    def list_files(self, rel: str) -> dict[str, tuple[int, str, float]]:
        prefix, out = self._key(rel).rstrip("/") + "/", {}
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
            for o in page.get("Contents", []):  # S3 objects appear whole: no upload is seen half-written
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
            raise ValueError(f"{uri} is on S3: pass an S3 client (dagster-aws S3Resource)")
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
    bad_rows: pd.DataFrame  # quarantine rows from parsing (wrong field count, truncated last line)
    date: str | None = None  # the folder date of a daily file


def _parse_csv(data: bytes, path: str) -> tuple[pd.DataFrame, list[tuple[int, str, str | None]]]:
    """(rows as strings with `_row`, bad rows as (row, reason, record JSON)). A row with the wrong
    number of fields is bad; so is an unterminated last line (TRUNCATED), whatever it parses as."""
    try:
        text_head = data.split(b"\n", 1)[0].decode("utf-8").rstrip("\r")
    except UnicodeDecodeError as e:
        raise LandingContractError(f"{path}: not UTF-8 ({e})") from e
    if not text_head.strip():
        raise LandingContractError(f"{path}: empty file or missing header row")
    names = next(csv.reader([text_head]))
    bad: list[tuple[int | None, str, str | None]] = []

    def record(
        text: str | None,
    ) -> str | None:  # the fields a broken row has, by header name
        if not text:
            return None
        try:
            fields = next(csv.reader([text]))
        except (csv.Error, StopIteration):
            return None
        return json.dumps(dict(zip(names, fields, strict=False)), sort_keys=True)

    short_rows: set[int] = set()  # data rows with fewer fields than the header

    def on_invalid(row):  # pyarrow: a row with the wrong number of fields
        if row.number is not None and row.actual_columns < row.expected_columns:
            short_rows.add(row.number - 1)
        bad.append(
            (
                row.number,
                f"expected {row.expected_columns} fields, got {row.actual_columns}: {row.text!r}",
                record(row.text),
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
    skipped = sorted(n - 1 for n, _, _ in bad if n is not None)
    kept_rows = np.setdiff1d(np.arange(1, len(df) + len(bad) + 1), skipped)[: len(df)]
    df["_row"] = kept_rows
    out = [(n - 1 if n is not None else None, reason, rec) for n, reason, rec in bad]
    body = data.split(b"\n", 1)[1] if b"\n" in data else b""
    last = len(df) + len(bad)
    hit = [i for i, (n, _, _) in enumerate(out) if n == last]
    if hit and last in short_rows and data.endswith(b"\n"):  # a last row missing fields: cut, then terminated
        n, reason, rec = out[hit[0]]
        out[hit[0]] = (n, f"truncated last line: fewer fields than the header ({reason})", rec)
    if body.strip() and not data.endswith(b"\n"):  # the last data line is unterminated
        if hit:
            n, reason, rec = out[hit[0]]
            out[hit[0]] = (n, f"{TRUNCATED} ({reason})", rec)
        elif len(df) and df["_row"].iloc[-1] == last:
            row = df.iloc[-1]
            vals = {c: (None if pd.isna(row[c]) else str(row[c])) for c in names if c in df.columns}
            out.append((last, TRUNCATED, json.dumps(vals, sort_keys=True)))
            df = df.iloc[:-1]
    return df, out


def master_signature(store: LandingStore, files: list[LandingFile], ingestion_settings: str) -> str:
    """sha256 of everything the master ingest's result depends on: each master file's bytes (the
    file the reader takes, CSV before Parquet, or its absence), the policy's ingestion settings
    (serialised), and the code that reads and validates them (the landing contract and this
    module). Two ingests with the same signature write the same tables and checks, so a run that
    finds the signature of its last successful master ingest need not ingest again."""
    import hashlib

    from ..contracts import landing as contract

    h = hashlib.sha256()
    for f in files:
        reads = (store.read_bytes(relative_path(f, None, ext)) for ext in ("csv", "parquet"))
        data = next((b for b in reads if b is not None), None)
        h.update(f"{f.name}:{'absent' if data is None else hashlib.sha256(data).hexdigest()}\n".encode())
    h.update(ingestion_settings.encode())
    for module in (contract.__file__, __file__):
        h.update(Path(module).read_bytes())
    return h.hexdigest()


def read_landing_file(store: LandingStore, f: LandingFile, date: str | None = None) -> RawFile | None:
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
                raise LandingContractError(f"{path}: cannot be read as Parquet ({e})") from e
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
                "row": [r for r, _, _ in bad],
                "column": None,
                "reason": [m for _, m, _ in bad],
                "record": pd.Series([x for _, _, x in bad], dtype=object),
            },
            columns=_BAD_ROW_COLUMNS,
        )
        frame["_file"] = path
        if f.daily:
            frame["landing_date"] = date
            bad_rows["partition_date"] = date
        return RawFile(path=path, frame=frame, bad_rows=bad_rows, date=date)
    if f.required:
        where = relative_path(f, date, "csv")
        raise LandingContractError(
            f"{store.uri.rstrip('/')}/{where}: required landing file is missing (.csv or .parquet)"
        )
    return None


def _reasons_from_failures(fc: pd.DataFrame) -> pd.DataFrame:
    fc = fc[fc["index"].notna()].copy()
    fc["reason"] = fc["check"].astype(str) + " failed for value " + fc["failure_case"].astype(str)
    fc.loc[fc["check"].astype(str).str.contains("uniqueness|unique", regex=True), "reason"] = "duplicate key"
    fc["column"] = fc["column"].astype(str)
    return fc[["index", "column", "reason"]]


def _dates(s: pd.Series) -> pd.Series:
    return pd.to_datetime(s, errors="coerce", format="ISO8601").dt.normalize()


def _ends_before_start(df: pd.DataFrame, start: str, end: str, add) -> None:
    """Report rows whose `end` date is before their `start` date (both given), naming both."""
    a, b = _dates(df[start]), _dates(df[end])
    add(
        a.notna() & b.notna() & (b < a),
        f"{end},{start}",
        f"{end} " + b.dt.strftime("%Y-%m-%d").fillna("") + f" before {start} " + a.dt.strftime("%Y-%m-%d").fillna(""),
    )


def file_rule_problems(
    f: LandingFile, df: pd.DataFrame, max_expected_days: int = DEFAULT_MAX_EXPECTED_DAYS
) -> list[pd.DataFrame]:
    """The rows of a daily file that break a file rule (index, column, reason), on the raw strings.
    A value that is not a date is left to the contract's type check."""
    out: list[pd.DataFrame] = []
    if "landing_date" not in df.columns or not len(df):
        return out
    folder = _dates(df["landing_date"])

    def add(mask, column, reason):
        mask = mask.fillna(False).to_numpy(bool)
        if mask.any():
            out.append(
                pd.DataFrame(
                    {
                        "index": df.index[mask],
                        "column": column,
                        "reason": np.asarray(reason)[mask],
                    }
                )
            )

    if "date" in df.columns and "date" in f.model.to_schema().columns:
        d = _dates(df["date"])
        add(
            d.notna() & (d != folder),
            "date",
            "date "
            + d.dt.strftime("%Y-%m-%d").fillna("")
            + " is not the folder's date "
            + df["landing_date"].astype(str)
            + " (a file holds its own day only)",
        )
    if {"order_date", "expected_date"} <= set(df.columns):
        e = _dates(df["expected_date"])
        _ends_before_start(df, "order_date", "expected_date", add)
        add(
            e.notna() & (e > folder + pd.Timedelta(days=max_expected_days)),
            "expected_date",
            "expected_date " + e.dt.strftime("%Y-%m-%d").fillna("") + f" more than {max_expected_days} days after the "
            "folder's date " + df["landing_date"].astype(str) + " (ingestion.max_expected_days)",
        )
    if f.name == "promotions":
        out += promotion_problems(df)
    return out


def _blank(df: pd.DataFrame, col: str) -> pd.Series:
    """True where the column is absent, null or only spaces."""
    if col not in df.columns:
        return pd.Series(True, index=df.index)
    return df[col].isna() | df[col].astype(str).str.strip().eq("")


def promotion_problems(df: pd.DataFrame) -> list[pd.DataFrame]:
    """The rows of a promotions file (v1.1) breaking a row rule, on the raw strings: neither or both
    of sku_id / category, end_date before start_date, discount_pct outside 0-90 (a value that is not
    a number or a date is left to the contract's type check). Overlaps need the typed rows:
    `promotion_overlaps`."""
    out: list[pd.DataFrame] = []

    def add(mask, column, reason):
        mask = np.asarray(pd.Series(mask, index=df.index).fillna(False), dtype=bool)
        if mask.any():
            out.append(pd.DataFrame({"index": df.index[mask], "column": column, "reason": np.asarray(reason)[mask]}))

    no_sku, no_cat = _blank(df, "sku_id"), _blank(df, "category")
    add(no_sku & no_cat, "sku_id,category", np.full(len(df), "neither sku_id nor category: a promotion names one"))
    add(
        ~no_sku & ~no_cat,
        "sku_id,category",
        np.full(len(df), "both sku_id and category: a promotion names exactly one of them"),
    )
    if {"start_date", "end_date"} <= set(df.columns):
        _ends_before_start(df, "start_date", "end_date", add)
    if "discount_pct" in df.columns:
        x = pd.to_numeric(df["discount_pct"], errors="coerce")
        add(
            x.notna() & ((x < 0) | (x > 90)),
            "discount_pct",
            "discount_pct " + df["discount_pct"].astype(str) + " outside 0-90",
        )
    return out


def promotion_overlaps(valid: pd.DataFrame, rows: pd.Series) -> pd.DataFrame:
    """Promotions of one item overlapping in dates within one file: same scope (the sku_id, or the
    category), same location (blank = every store, a location of its own here) and intersecting
    [start_date, end_date]. The later row of the file (`rows`: file row numbers, same index) is
    quarantined, naming the earlier kept row. Returns (index, column, reason)."""
    empty = pd.DataFrame(columns=["index", "column", "reason"])
    if not len(valid):
        return empty
    none = pd.Series(None, index=valid.index, dtype=object)
    sku = valid["sku_id"] if "sku_id" in valid else none
    cat = valid["category"] if "category" in valid else none
    key = np.where(sku.notna(), "sku_id " + sku.astype(str), "category " + cat.astype(str))
    loc = valid["location_id"].fillna("").astype(str) if "location_id" in valid else pd.Series("", index=valid.index)
    t = pd.DataFrame(
        {
            "file": valid["landing_date"].astype(str) if "landing_date" in valid else "",
            "key": key,
            "loc": loc.to_numpy(),
            "a": valid["start_date"].to_numpy(),
            "b": valid["end_date"].to_numpy(),
            "row": rows.reindex(valid.index).to_numpy(),
            "promo": valid["promo_id"].astype(str).to_numpy(),
        },
        index=valid.index,
    )
    dup = t.duplicated(["file", "key", "loc"], keep=False)  # only items with several rows can overlap
    hits = []
    for _, g in t[dup].sort_values("row").groupby(["file", "key", "loc"], sort=False):
        kept: list[tuple] = []
        for i, r in zip(g.index, g.itertuples(index=False), strict=True):
            clash = next((k for k in kept if r.a <= k[1] and k[0] <= r.b), None)
            if clash is None:
                kept.append((r.a, r.b, r.row, r.promo))
                continue
            where = "every store" if not r.loc else f"location {r.loc}"
            hits.append(
                (
                    i,
                    "start_date,end_date",
                    f"overlaps promotion {clash[3]!r} (row {clash[2]}) of {r.key} at {where} "
                    f"in the same file (the later row is quarantined)",
                )
            )
    return pd.DataFrame(hits, columns=["index", "column", "reason"]) if hits else empty


def reference_problems(
    f: LandingFile,
    df: pd.DataFrame,
    references: dict[tuple[str, str], set[str]] | None,
    reference_notes: dict[tuple[str, str], dict[str, str]] | None,
) -> list[pd.DataFrame]:
    """Rows naming a key their master table does not have (a blank optional key names nothing);
    where `reference_notes` says why the master row was quarantined, the reason names it."""
    problems = []
    for col, ref in f.references.items():
        if references is None or ref not in references or col not in df.columns:
            continue
        unknown = ~_blank(df, col) & ~df[col].isin(references[ref])  # a blank optional key names nothing
        notes = (reference_notes or {}).get(ref, {})
        if unknown.any():
            problems.append(
                pd.DataFrame(
                    {
                        "index": df.index[unknown],
                        "column": col,
                        "reason": [
                            f"{ref[1]} {v!r} has no usable row in {ref[0]}: {notes[v]}"
                            if v in notes
                            else f"unknown {ref[1]} {v!r} (not in {ref[0]})"
                            for v in df.loc[unknown, col]
                        ],
                    }
                )
            )
    return problems


def _validated_rows(f: LandingFile, raw: RawFile, df: pd.DataFrame, problems: list, meta_cols: list) -> pd.DataFrame:
    """The rows that pass the pandera contract, in passes (a column whose coercion fails hides its
    value checks); each pass's failures are appended to `problems`."""
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
                raise LandingContractError(f"{raw.path}: {e.failure_cases.to_dict('records')}") from e
            problems.append(found)
            remaining = remaining.drop(index=found["index"].astype(int).unique())
    if valid is None:
        raise LandingContractError(f"{raw.path}: validation did not converge")
    return valid


def _apply_hold_rules(f: LandingFile, valid: pd.DataFrame) -> list[pd.DataFrame]:
    """The file's HOLD_RULES: the rows each holds (kept, repaired in place where it says how)."""
    held: list[pd.DataFrame] = []
    for rule in HOLD_RULES.get(f.name, []):
        if not len(valid):
            break
        m = rule.broken(valid).fillna(False).astype(bool)
        if m.any():
            held.append(
                pd.DataFrame(
                    {
                        "index": valid.index[m],
                        "column": rule.column,
                        "reason": rule.reason(valid[m]).to_numpy(),
                    }
                )
            )
            if rule.repair is not None:
                valid.loc[m] = rule.repair(valid.loc[m])
    return held


def _quarantine_rows(raw: RawFile, df: pd.DataFrame, problems: list, held: list, meta_cols: list) -> pd.DataFrame:
    """QUARANTINE_COLUMNS: the unreadable rows, then one row per rejected or held row with its
    file, row, columns and reasons (one row may break several rules)."""
    quarantine = raw.bad_rows.copy()
    quarantine["disposition"] = "rejected"
    for found, disposition in ((problems, "rejected"), (held, "held")):
        if not found:
            continue
        p = pd.concat(found, ignore_index=True)
        p["index"] = p["index"].astype(int)
        p = p.groupby("index", sort=True).agg(
            column=("column", lambda s: ",".join(dict.fromkeys(s))),
            reason=("reason", lambda s: "; ".join(dict.fromkeys(s))),
        )
        rows = df.loc[p.index]
        data_cols = [c for c in rows.columns if c not in meta_cols and c != "landing_date"]
        records = rows[data_cols].astype(object).where(rows[data_cols].notna(), None)
        quarantine = pd.concat(
            [
                quarantine,
                pd.DataFrame(
                    {
                        "file": rows["_file"].to_numpy(),
                        "row": rows["_row"].to_numpy(),
                        "column": p["column"].to_numpy(),
                        "partition_date": rows["landing_date"].to_numpy() if "landing_date" in rows else None,
                        "reason": p["reason"].to_numpy(),
                        "record": [json.dumps(r, sort_keys=True) for r in records.to_dict("records")],
                        "disposition": disposition,
                    }
                ),
            ],
            ignore_index=True,
        )
    quarantine["row"] = quarantine["row"].astype("Int64")
    quarantine = quarantine.reindex(columns=QUARANTINE_COLUMNS).astype({"file": str, "reason": str, "disposition": str})
    return quarantine


def validate_frame(
    f: LandingFile,
    raw: RawFile,
    references: dict[tuple[str, str], set[str]] | None = None,
    max_expected_days: int = DEFAULT_MAX_EXPECTED_DAYS,
    reference_notes: dict[tuple[str, str], dict[str, str]] | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Validate `raw` against its contract. Returns (valid rows, quarantine rows).

    A key missing from its master table is "unknown" unless `reference_notes` says where its
    master row was quarantined; then the reason names that row (file, row, reason).

    Row failures are found in passes: a column whose coercion fails hides its value checks,
    so the failing rows are removed and the rest validated again until it is clean. Then the hold
    rules of the file (HOLD_RULES) list the rows they hold (`disposition` "held"), which stay in
    the valid rows, repaired where the rule says how.
    """
    df = raw.frame.reset_index(drop=True)
    meta_cols = ["_row", "_file"]
    problems: list[pd.DataFrame] = file_rule_problems(f, df, max_expected_days)
    # cross-file references first (on the raw strings): unknown SKU, unknown location, ...
    problems += reference_problems(f, df, references, reference_notes)
    if f.key:
        # a daily file's key holds within its day (open orders repeat in every day's snapshot)
        # a key column the file does not have (an optional one: v1.1's calendar region) is left out
        subset = [c for c in f.key if c in df.columns] + (["landing_date"] if "landing_date" in df.columns else [])
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
    valid = _validated_rows(f, raw, df, problems, meta_cols)
    valid = valid.copy()
    if f.name == "promotions":  # overlaps need typed dates: the later of two overlapping rows goes
        for c in ("sku_id", "category", "location_id"):  # blank (Parquet "") = not given
            if c in valid.columns:
                valid[c] = valid[c].where(~_blank(valid, c), None)
        overlap = promotion_overlaps(valid, df["_row"])
        if len(overlap):
            problems.append(overlap)
            valid = valid.drop(index=overlap["index"].astype(int).unique())
    held = _apply_hold_rules(f, valid)

    quarantine = _quarantine_rows(raw, df, problems, held, meta_cols)
    return valid.reset_index(drop=True), quarantine.sort_values(["file", "row"], ignore_index=True)


def empty_frame(f: LandingFile) -> pd.DataFrame:
    """A zero-row frame with the contract's columns and types (for an absent optional file)."""
    cols = list(f.model.to_schema().columns) + (["landing_date"] if f.daily else [])
    return f.model.to_schema().validate(pd.DataFrame({c: pd.Series(dtype=object) for c in cols}))


@dataclass
class IngestResult:
    valid: pd.DataFrame
    quarantine: pd.DataFrame
    files_read: list[str]
    files_missing: list[str]
    rows_by_file: dict[str, int] = field(default_factory=dict)  # data rows per file (header not counted)
    dates_by_file: dict[str, str | None] = field(default_factory=dict)  # folder date of a daily file

    @property
    def rejected(self) -> pd.DataFrame:
        q = self.quarantine
        return q[q["disposition"] != "held"] if "disposition" in q.columns else q

    @property
    def quarantine_share(self) -> float:
        """Rejected rows over all rows of every file read (held rows are kept: they count as valid)."""
        total = len(self.valid) + len(self.rejected)
        return len(self.rejected) / total if total else 0.0

    def files_over(self, max_share: float, min_rows: int = 1) -> pd.DataFrame:
        """The files (file_shares rows) past the policy: share > max_share and >= min_rows rejected."""
        t = self.file_shares()
        return t[(t["share"] > max_share + 1e-12) & (t["rejected"] >= min_rows)]

    def file_shares(self) -> pd.DataFrame:
        """One row per file read: file, partition_date, rows (data rows of the file), rejected, held,
        share (rejected / rows) — the quarantine share per file and day."""
        q = self.quarantine
        rej = self.rejected["file"].value_counts()
        held = q.loc[q["disposition"] == "held", "file"].value_counts() if "disposition" in q.columns else rej.iloc[0:0]
        files = list(dict.fromkeys([*self.files_read, *rej.index]))
        t = pd.DataFrame(
            {
                "file": files,
                "partition_date": [self.dates_by_file.get(x) for x in files],
            }
        )
        t["rows"] = t["file"].map(self.rows_by_file).fillna(0).astype(int)
        t["rejected"] = t["file"].map(rej).fillna(0).astype(int)
        t["held"] = t["file"].map(held).fillna(0).astype(int)
        t["share"] = np.where(t["rows"] > 0, t["rejected"] / t["rows"].clip(lower=1), 0.0)
        return t


def ingest(
    store: LandingStore,
    f: LandingFile,
    dates: list[str] | None = None,
    references: dict[tuple[str, str], set[str]] | None = None,
    max_expected_days: int = DEFAULT_MAX_EXPECTED_DAYS,
    reference_notes: dict[tuple[str, str], dict[str, str]] | None = None,
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
        shown = "\n  ".join(errors[:20]) + (f"\n  ... and {len(errors) - 20} more" if len(errors) > 20 else "")
        raise LandingContractError(f"{f.name}: {len(errors)} landing file(s) cannot be used:\n  {shown}")
    if not raws:
        return IngestResult(empty_frame(f), pd.DataFrame(columns=QUARANTINE_COLUMNS), [], missing)
    combined = RawFile(
        path=raws[0].path if len(raws) == 1 else f"{len(raws)} files",
        frame=pd.concat([r.frame for r in raws], ignore_index=True),
        bad_rows=pd.concat([r.bad_rows for r in raws], ignore_index=True),
    )
    valid, quarantine = validate_frame(f, combined, references, max_expected_days, reference_notes)
    return IngestResult(
        valid,
        quarantine,
        [r.path for r in raws],
        missing,
        {r.path: len(r.frame) + len(r.bad_rows) for r in raws},
        {r.path: r.date for r in raws},
    )


def short_path(path: str) -> str:
    """A landing file's path from its zone folder on (daily/D/x.csv, master/x.csv), for messages."""
    m = re.search(r"((?:daily|master|planner)/[^/]+(?:/[^/]+)?)$", str(path))
    return m.group(1) if m else str(path)


ITEM_COLUMNS = ["location_id", "sku_id", "file", "row", "reason", "disposition", "note"]


def quarantined_items(q: pd.DataFrame | None) -> pd.DataFrame:
    """The location x SKU items quarantined rows belong to (ITEM_COLUMNS), from their records:
    location_id or sku_id is None where the row does not name one (then the row concerns every
    location of the SKU, or every SKU of the location); a row naming neither is left out (it counts
    in its file's quarantine share only). `note` is "input quarantined: <file>, row <n>"."""
    if q is None or not len(q):
        return pd.DataFrame(columns=ITEM_COLUMNS)
    recs = [json.loads(r) if isinstance(r, str) and r else {} for r in q["record"]]
    recs = [r if isinstance(r, dict) else {} for r in recs]

    def key(r, *cols):
        for c in cols:
            v = r.get(c)
            if v is not None and str(v).strip():
                return str(v)
        return None

    out = pd.DataFrame(
        {
            "location_id": [key(r, "location_id") for r in recs],
            "sku_id": [key(r, "sku_id") for r in recs],
            "file": q["file"].astype(str).map(short_path).to_numpy(),
            "row": q["row"].to_numpy(),
            "reason": q["reason"].astype(str).to_numpy(),
            "disposition": q["disposition"].to_numpy() if "disposition" in q.columns else "rejected",
        }
    )
    src = [key(r, "source_id") for r in recs]  # an open order's source ships it: its ledger line too
    if any(src):
        extra = out.assign(location_id=src)
        out = pd.concat([out, extra[extra["location_id"].notna()]], ignore_index=True)
    out = out[out["location_id"].notna() | out["sku_id"].notna()].reset_index(drop=True)
    out["note"] = "input quarantined: " + out["file"] + ", row " + out["row"].astype("Int64").astype(str)
    return out[ITEM_COLUMNS]
