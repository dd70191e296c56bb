"""Prompt tables: a table goes in, validated `ImageRequest`s come out, or every problem at once.

`load_table` reads a table from a file or fsspec URL (CSV, TSV, Parquet, JSON, JSON Lines), from
inline rows, a JSON string, CSV text or a pandas DataFrame, keeping every cell as the text (or JSON
value) the user wrote: no type guessing, so a prompt reading "NA" or "None" stays a prompt.

`plan_table` turns each row into an `ImageRequest`, checks every documented rule, every file name
and every reference path, and collects the problems of all rows before it returns, so that a user
fixes a table in one pass and nothing is paid for before the whole table is known to be good.

Neither function imports Prefect or calls a provider: they only read the table and the local
reference files it names.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import re
import string
import unicodedata
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Literal, Union
from urllib.parse import urlsplit, urlunsplit

import fsspec
import pandas as pd
from pydantic import ValidationError

from .catalog import DEFAULT_MODEL
from .errors import RequestValidationError, RowProblem, TableValidationError, redact
from .models import ImageRequest, check_reference_file, is_url, normalize_request_fields
from .storage import UnsafePathError, safe_relpath

__all__ = [
    "DEFAULT_MAX_ROWS",
    "DEFAULT_NAME_TEMPLATE",
    "MAX_CELL_CHARS",
    "MAX_NAME_CHARS",
    "REQUEST_COLUMNS",
    "TABLE_FORMATS",
    "PlannedRow",
    "TablePlan",
    "TableSource",
    "load_table",
    "name_problem",
    "plan_table",
    "problems_to_records",
]

DEFAULT_MAX_ROWS = 100_000
MAX_CELL_CHARS = 100_000
"""Longest cell accepted; a longer one is a problem of its row, never a crash or a huge request."""
MAX_COLUMNS = 1_000
MAX_TABLE_BYTES = 512 * 1024 * 1024
MAX_NAME_CHARS = 200
DEFAULT_NAME_TEMPLATE = "{row:05d}-{row_key8}"
TABLE_FORMATS = ("csv", "tsv", "parquet", "json", "jsonl")

REQUEST_COLUMNS = (
    "provider",
    "prompt",
    "model",
    "aspect_ratio",
    "resolution",
    "reference_images",
    "orientation",
    "google_search",
    "image_search",
    "thinking_level",
    "variant",
)
"""Columns that become `ImageRequest` fields. `google_image_search` (ToAPIs' name) means `image_search`."""
NAME_COLUMN = "name"
_COLUMN_ALIASES = {"google_image_search": "image_search"}
_KNOWN_COLUMNS = frozenset((*REQUEST_COLUMNS, NAME_COLUMN))
# `provider` has its own argument and `name` must differ per row: neither can be a table-wide default.
_DEFAULTABLE = tuple(c for c in REQUEST_COLUMNS if c != "provider")
_NAME_TEMPLATE_BUILTINS = ("row", "row_key", "row_key8")
_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")

TableSource = Union[str, os.PathLike[str], bytes, pd.DataFrame, Sequence[Mapping[str, Any]]]
"""A path or fsspec URL; inline CSV/JSON text or bytes; a DataFrame; or a list of row dicts."""

_FORMAT_NAMES = {
    "csv": "csv",
    "tsv": "tsv",
    "tab": "tsv",
    "parquet": "parquet",
    "pq": "parquet",
    "json": "json",
    "jsonl": "jsonl",
    "ndjson": "jsonl",
}
_COMPRESSION_SUFFIXES = (".gz", ".bz2", ".xz", ".zst", ".zip", ".lz4")
_SPREADSHEET_SUFFIXES = (".xlsx", ".xls", ".xlsm", ".ods", ".numbers")
_ESCAPED_BYTES = re.compile("[\udc80-\udcff]+")
_SURROGATES = re.compile("[\ud800-\udfff]")
_CONTROL = re.compile("[\x00-\x1f\x7f]")
_UTF8_ADVICE = "save the table as UTF-8 (in Excel: 'CSV UTF-8 (Comma delimited)')"
# Windows refuses these as file names whatever the extension; a table written on Linux must still
# produce an image set that can be copied to a Windows share.
_RESERVED_NAMES = frozenset(
    {"con", "prn", "aux", "nul"} | {f"com{i}" for i in range(10)} | {f"lpt{i}" for i in range(10)}
)
_UNPORTABLE_NAME_CHARS = set('<>:"|?*')


# --- loading -------------------------------------------------------------------------------------


def load_table(
    source: TableSource,
    *,
    storage_options: dict[str, Any] | None = None,
    format: str | None = None,
    max_rows: int = DEFAULT_MAX_ROWS,
) -> pd.DataFrame:
    """Read a prompt table into a DataFrame of text (and, for JSON/Parquet/inline rows, JSON values).

    `source` is one of:

    - a local path or fsspec URL (`s3://`, `file://`, `memory://`, ...) to a `.csv`, `.tsv`,
      `.parquet`, `.json` (an array of row objects: pandas `orient="records"`) or `.jsonl`/`.ndjson`
      file, optionally compressed (`.csv.gz`); the format comes from the suffix unless `format` is set;
    - inline text: a JSON array of row objects (what a UI form sends), JSON Lines, or CSV text
      (any string containing a newline), or the same as bytes;
    - a list of row dicts, or a pandas DataFrame.

    CSV cells are read verbatim as text (`"NA"`, `"None"`, `"007"` stay as written); the file must be
    UTF-8 (a BOM is allowed). Column names are stripped of surrounding spaces; nothing else changes.

    Raises `TableValidationError` (never anything else for bad input) when the source cannot be
    read, is empty, is not UTF-8 (naming each bad cell's row, column, byte offset and line), has
    broken CSV quoting or ragged rows (naming the line), or has more than `max_rows` rows.
    """
    fmt = _format_name(format) if format is not None else None
    if isinstance(source, pd.DataFrame):
        frame = _from_frame(source)
    elif isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        frame = _parse_bytes(data, fmt or _sniff_format(data), "the inline table", max_rows)
    elif isinstance(source, str) and _is_inline_text(source):
        data = source.encode("utf-8", "surrogatepass")
        frame = _parse_bytes(data, fmt or _sniff_format(data), "the inline table", max_rows)
    elif isinstance(source, (str, os.PathLike)):
        path = os.fspath(source.strip() if isinstance(source, str) else source)
        if not isinstance(path, str):
            raise _table_error(f"unsupported table path {path!r}: expected text")
        frame = _load_path(path, fmt, storage_options, max_rows)
    elif isinstance(source, Sequence):
        frame = _from_records(list(source), "the inline rows")
    else:
        raise _table_error(
            f"unsupported table source of type {type(source).__name__}: pass a path or URL, a list of "
            "row dicts, a JSON string of rows, or a pandas DataFrame"
        )
    _check_shape(frame, max_rows)
    return frame


def _table_error(reason: str, column: str | None = None) -> TableValidationError:
    return TableValidationError([RowProblem(None, column, reason)])


def _format_name(value: str) -> str:
    key = value.strip().lower().lstrip(".")
    if key in _FORMAT_NAMES:
        return _FORMAT_NAMES[key]
    raise _table_error(f"table format {value!r} is not supported; use one of {', '.join(TABLE_FORMATS)}")


def _is_inline_text(source: str) -> bool:
    # File names never start with a bracket nor contain a line break; inline rows from a form do.
    # Stripped first: a path pasted into a form often carries a trailing newline.
    stripped = source.strip()
    return stripped.startswith(("[", "{")) or "\n" in stripped or "\r" in stripped


def _sniff_format(data: bytes) -> str:
    if data.startswith(b"PAR1"):
        return "parquet"
    head = data.lstrip(b"\xef\xbb\xbf \t\r\n")
    if head.startswith(b"["):
        return "json"
    if head.startswith(b"{"):
        return "jsonl"
    return "csv"


def _display_source(path: str) -> str:
    """The source as shown in messages: no user:password@ and no query string (signed URLs)."""
    if "://" not in path:
        return path
    try:
        parts = urlsplit(path)
        host = parts.hostname or ""
        if parts.port:
            host = f"{host}:{parts.port}"
        return urlunsplit((parts.scheme, host, parts.path, "", ""))
    except ValueError:
        return path.split("://", 1)[0] + "://..."


def _format_from_suffix(path: str) -> str | None:
    try:
        name = urlsplit(path).path if "://" in path else path
    except ValueError:
        name = path
    lower = name.lower()
    for suffix in _COMPRESSION_SUFFIXES:
        if lower.endswith(suffix):
            lower = lower[: -len(suffix)]
            break
    suffix = PurePosixPath(lower).suffix
    if suffix in _SPREADSHEET_SUFFIXES:
        raise _table_error(
            f"{_display_source(path)} is a spreadsheet ({suffix}); save it as CSV UTF-8 or Parquet"
        )
    return _FORMAT_NAMES.get(suffix.lstrip("."))


def _secrets_in(options: Mapping[str, Any] | None) -> list[str]:
    found: list[str] = []
    for value in (options or {}).values():
        if isinstance(value, str):
            found.append(value)
        elif isinstance(value, Mapping):
            found.extend(_secrets_in(value))
    return found


def _load_path(
    path: str, fmt: str | None, storage_options: dict[str, Any] | None, max_rows: int
) -> pd.DataFrame:
    where = _display_source(path)
    if "://" not in path:
        path = os.path.expanduser(path)
    fmt = fmt or _format_from_suffix(path)
    if fmt is None:
        raise _table_error(
            f"cannot tell the format of {where} from its name; use a .csv, .tsv, .parquet, .json or "
            ".jsonl file, or pass format="
        )
    try:
        with fsspec.open(path, "rb", compression="infer", **(storage_options or {})) as fh:
            data = fh.read(MAX_TABLE_BYTES + 1)
    except FileNotFoundError:
        raise _table_error(f"{where}: no such file") from None
    except IsADirectoryError:
        raise _table_error(f"{where} is a folder, not a table file") from None
    except PermissionError:
        raise _table_error(f"{where}: permission denied") from None
    except Exception as exc:
        # Every fsspec backend has its own errors (missing driver, network, credentials, bad URL);
        # to the user they all mean "this table cannot be read", and the flow must stop cleanly.
        detail = redact(str(exc), *_secrets_in(storage_options))
        raise _table_error(f"cannot read {where}: {type(exc).__name__}: {detail}") from None
    if len(data) > MAX_TABLE_BYTES:
        raise _table_error(f"{where} is larger than {MAX_TABLE_BYTES // (1024 * 1024)} MB; split the table")
    return _parse_bytes(data, fmt, where, max_rows)


def _parse_bytes(data: bytes, fmt: str, where: str, max_rows: int) -> pd.DataFrame:
    if not data.strip():
        raise _table_error(f"{where} is empty")
    if fmt == "parquet":
        return _read_parquet(data, where)
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise _table_error(f"{where} is UTF-16 text; {_UTF8_ADVICE}")
    bom = 3 if data.startswith(b"\xef\xbb\xbf") else 0
    try:
        text = data[bom:].decode("utf-8")
    except UnicodeDecodeError:
        raise TableValidationError(_encoding_problems(data[bom:], bom, fmt, where)) from None
    if fmt in ("csv", "tsv"):
        return _read_csv(text, "\t" if fmt == "tsv" else ",", where, max_rows)
    if fmt == "jsonl":
        return _from_records(_parse_jsonl(text, where), where)
    return _from_records(_parse_json(text, where), where)


def _read_parquet(data: bytes, where: str) -> pd.DataFrame:
    try:
        frame = pd.read_parquet(io.BytesIO(data))
    except Exception as exc:
        # pyarrow raises many types (ArrowInvalid, OSError, ...) for a file that is not Parquet.
        raise _table_error(f"{where} is not a readable Parquet file: {type(exc).__name__}: {exc}") from None
    return _from_frame(frame)


def _from_frame(frame: pd.DataFrame) -> pd.DataFrame:
    # A named index is data (set_index("id")): keep it as a column. An unnamed one is row positions.
    named_index = any(name is not None for name in frame.index.names)
    out = frame.reset_index(drop=not named_index).astype(object)
    out.columns = [str(c).strip() for c in out.columns]
    return out


def _from_records(records: list[Any], where: str) -> pd.DataFrame:
    rows: list[dict[str, Any]] = []
    problems: list[RowProblem] = []
    for number, record in enumerate(records, start=1):
        if isinstance(record, Mapping):
            rows.append({str(k).strip(): v for k, v in record.items()})
        else:
            problems.append(
                RowProblem(number, None, f"is a {type(record).__name__}, not an object of column: value")
            )
    if problems:
        raise TableValidationError(problems, total_rows=len(records))
    if not rows:
        raise _table_error(f"{where} has no rows")
    columns: dict[str, None] = {}
    for row in rows:
        columns.update(dict.fromkeys(row))
        if len(columns) > MAX_COLUMNS:
            raise _table_error(f"{where} has more than {MAX_COLUMNS} columns")
    return pd.DataFrame(rows, columns=list(columns), dtype=object)


def _parse_json(text: str, where: str) -> list[Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise _table_error(
            f"{where} is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}"
        ) from None
    except (ValueError, RecursionError) as exc:
        raise _table_error(f"{where} is not valid JSON: {exc}") from None
    if isinstance(value, Mapping):
        raise _table_error(
            f"{where} is a JSON object; a table must be a JSON array of row objects "
            "(pandas: to_json(orient='records'))"
        )
    if not isinstance(value, list):
        raise _table_error(f"{where} must be a JSON array of row objects, not a {type(value).__name__}")
    return value


def _parse_jsonl(text: str, where: str) -> list[Any]:
    records: list[Any] = []
    problems: list[RowProblem] = []
    # split("\n"), not splitlines(): JSON strings may hold U+2028 and other characters splitlines breaks on.
    for line_number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as exc:
            records.append({})
            problems.append(
                RowProblem(
                    len(records),
                    None,
                    f"line {line_number} is not valid JSON: {exc.msg} (column {exc.colno})",
                )
            )
        except (ValueError, RecursionError) as exc:
            records.append({})
            problems.append(RowProblem(len(records), None, f"line {line_number} is not valid JSON: {exc}"))
        else:
            if not isinstance(records[-1], dict):
                kind = type(records[-1]).__name__
                problems.append(
                    RowProblem(
                        len(records), None, f"line {line_number} is a {kind}, not an object of column: value"
                    )
                )
    if problems:
        raise TableValidationError(problems, total_rows=len(records))
    if not records:
        raise _table_error(f"{where} has no rows")
    return records


def _read_csv(text: str, sep: str, where: str, max_rows: int) -> pd.DataFrame:
    try:
        # header=None: the header is read as a row so that duplicate column names survive (pandas
        # would rename them) and are reported; skip_blank_lines=False keeps row numbers aligned
        # with the file; na_filter=False keeps "NA", "null" and "" as the text they are.
        raw = pd.read_csv(
            io.StringIO(text),
            sep=sep,
            header=None,
            dtype=str,
            na_filter=False,
            index_col=False,
            skip_blank_lines=False,
            nrows=max_rows + 2,
            engine="c",
        )
    except pd.errors.EmptyDataError:
        raise _table_error(f"{where} is empty") from None
    except pd.errors.ParserError as exc:
        raise TableValidationError([_csv_parse_problem(text, sep, str(exc), where)]) from None
    except Exception as exc:
        # The C parser's failure modes on arbitrary bytes are not enumerated by pandas.
        raise _table_error(f"{where} cannot be read as CSV: {type(exc).__name__}: {exc}") from None
    if len(raw.columns) > MAX_COLUMNS:
        raise _table_error(f"{where} has more than {MAX_COLUMNS} columns")
    header = [str(h).strip() for h in raw.iloc[0].tolist()]
    body = raw.iloc[1:].reset_index(drop=True)
    body.columns = header
    if body.empty:
        raise _table_error(f"{where} has a header but no rows")
    return body


def _record_starts(text: str, sep: str, upto: int) -> list[tuple[int, list[str]]]:
    """(first physical line, cells) of CSV records 0..upto, as far as Python's csv module can tell.

    pandas reports positions as record numbers; users need the line they see in an editor."""
    records: list[tuple[int, list[str]]] = []
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=sep)
    line = 1
    try:
        for cells in reader:
            records.append((line, cells))
            line = reader.line_num + 1
            if len(records) > upto:
                break
    except csv.Error:
        pass  # a field over the csv module's size limit: report what is known
    return records


def _csv_parse_problem(text: str, sep: str, message: str, where: str) -> RowProblem:
    eof = re.search(r"EOF inside string starting at row (\d+)", message)
    ragged = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", message)
    if eof:
        record = int(eof.group(1))
        starts = _record_starts(text, sep, record)
        header = starts[0][1] if starts else []
        line = f"line {starts[record][0]}" if len(starts) > record else f"record {record + 1}"
        column: str | None = None
        if len(starts) > record:
            index = len(starts[record][1]) - 1
            column = _header_name(header, index)
        return RowProblem(
            record or None,
            column,
            f"broken CSV quoting: the quoted cell that starts on {line} is never closed (a '\"' is "
            f'missing), so the rest of {where} cannot be read; write a quote inside a cell as ""',
        )
    if ragged:
        expected, record, saw = int(ragged.group(1)), int(ragged.group(2)) - 1, int(ragged.group(3))
        starts = _record_starts(text, sep, record)
        line = f"line {starts[record][0]}" if len(starts) > record else f"record {record + 1}"
        return RowProblem(
            record,
            f"column {expected + 1}",
            f"has {saw} cells but the header has {expected} ({line}); quote cells that contain "
            f"{'a comma' if sep == ',' else 'a tab'}, or add the missing column names",
        )
    return RowProblem(None, None, f"{where} cannot be read as CSV: {message}")


def _header_name(header: list[str], index: int) -> str:
    if 0 <= index < len(header) and header[index].strip():
        return header[index].strip()
    return f"column {index + 1}"


def _encoding_problems(data: bytes, offset0: int, fmt: str, where: str) -> list[RowProblem]:
    """One problem per cell holding bytes that are not UTF-8, with the byte offset and line of each."""
    text = data.decode("utf-8", "surrogateescape")
    runs = _undecodable_runs(text, offset0)
    problems: list[RowProblem] = []
    pending = iter(runs)
    try:
        for row, column, value in _cells_in_file_order(text, fmt):
            count = len(_ESCAPED_BYTES.findall(value))
            if not count:
                continue
            run = next(pending, None)
            for _ in range(count - 1):
                next(pending, None)
            what = "the column name" if row is None else "the cell"
            problems.append(
                RowProblem(row, column, f"{what} is not valid UTF-8: {_describe_run(run)}; {_UTF8_ADVICE}")
            )
    except (csv.Error, ValueError, RecursionError):
        pass  # cannot locate cells in a file that is also malformed: the table-wide problem below says where
    if not problems:
        problems.append(
            RowProblem(None, None, f"{where} is not valid UTF-8: {_describe_run(runs[0])}; {_UTF8_ADVICE}")
        )
    return problems


def _undecodable_runs(text: str, offset0: int) -> list[tuple[int, int, bytes]]:
    """(byte offset, line, bytes) of each run of undecodable bytes, in file order."""
    runs: list[tuple[int, int, bytes]] = []
    offset, line, previous = offset0, 1, 0
    for match in _ESCAPED_BYTES.finditer(text):
        before = text[previous : match.start()]
        offset += len(before.encode("utf-8"))
        line += before.count("\n")
        raw = match.group().encode("utf-8", "surrogateescape")
        runs.append((offset, line, raw))
        offset += len(raw)
        previous = match.end()
    return runs


def _describe_run(run: tuple[int, int, bytes] | None) -> str:
    if run is None:
        return "bytes of another encoding"
    offset, line, raw = run
    shown = " ".join(f"0x{b:02X}" for b in raw[:4])
    # Nearly every non-UTF-8 table is Windows-1252/Latin-1; showing the character makes that obvious.
    guess = raw[:4].decode("cp1252", "replace")
    return f"byte {shown} ({guess!r} in Windows-1252) at byte offset {offset}, line {line}"


def _cells_in_file_order(text: str, fmt: str) -> Iterator[tuple[int | None, str, str]]:
    """(row, column, text) of every header and cell string, in the order they appear in the file."""
    if fmt in ("csv", "tsv"):
        reader = csv.reader(io.StringIO(text, newline=""), delimiter="\t" if fmt == "tsv" else ",")
        header: list[str] = []
        for number, cells in enumerate(reader):
            if number == 0:
                header = cells
                for index, name in enumerate(cells):
                    yield None, f"column {index + 1}", name
                continue
            for index, cell in enumerate(cells):
                yield number, _header_name(header, index), cell
        return
    if fmt == "jsonl":
        records = [json.loads(line) for line in text.split("\n") if line.strip()]
    else:
        records = json.loads(text)
    for number, record in enumerate(records if isinstance(records, list) else [], start=1):
        if not isinstance(record, dict):
            continue
        for key, value in record.items():
            yield number, key, key
            items = value if isinstance(value, list) else [value]
            for item in items:
                if isinstance(item, str):
                    yield number, key, item


def _check_shape(frame: pd.DataFrame, max_rows: int) -> None:
    if len(frame.columns) > MAX_COLUMNS:
        raise _table_error(f"the table has {len(frame.columns)} columns; the limit is {MAX_COLUMNS}")
    if len(frame) == 0:
        raise _table_error("the table has no rows")
    if len(frame) > max_rows:
        raise _table_error(f"the table has more than {max_rows} rows (max_rows); split it into several runs")


# --- planning ------------------------------------------------------------------------------------


@dataclass
class PlannedRow:
    """One valid, unique row: the request to send, the file-name stem to save it under, and the
    table's other columns (kept as metadata, never sent to a provider)."""

    row: int
    """1-based data row number, as in the table (the header is not counted)."""
    request: ImageRequest
    name: str
    """Relative file-name stem without suffix, `/`-separated, checked to stay inside the output."""
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def row_key(self) -> str:
        return self.request.row_key

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serializable dict that `from_dict` turns back into an equal `PlannedRow`."""
        return {
            "row": self.row,
            "name": self.name,
            "row_key": self.request.row_key,
            "request": self.request.model_dump(mode="json"),
            "extra": dict(self.extra),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PlannedRow:
        """Rebuild a row from `to_dict` output; reference files are not read again (their digests
        travel with the request)."""
        return cls(
            row=int(data["row"]),
            request=ImageRequest.model_validate(data["request"]),
            name=str(data["name"]),
            extra={str(k): str(v) for k, v in (data.get("extra") or {}).items()},
        )


@dataclass
class TablePlan:
    """The outcome of validating a whole table.

    `rows` holds the valid rows, one per distinct image (`row_key`); `duplicates` lists
    `(row, row whose image it shares)`; `problems` lists every problem of every row (and of the table
    itself, with `row=None`); `invalid_rows` the rows that have at least one problem; `blank_rows`
    the rows with no value at all, which are ignored. When the table itself is wrong (a table-level
    problem such as duplicate columns or a broken template), `rows` is empty.
    """

    rows: list[PlannedRow]
    duplicates: list[tuple[int, int]]
    problems: list[RowProblem]
    invalid_rows: list[int]
    total_rows: int
    on_invalid: Literal["fail", "skip"] = "fail"
    blank_rows: list[int] = field(default_factory=list)

    @property
    def table_problems(self) -> list[RowProblem]:
        """Problems of the table as a whole (no row): these stop a run even in skip mode."""
        return [p for p in self.problems if p.row is None]

    def raise_if_invalid(self) -> None:
        """Raise `TableValidationError` listing every problem when the run must not start.

        That is: any problem with `on_invalid="fail"`; and even with `on_invalid="skip"`, a problem
        of the table itself, or problems that leave no row to generate, since a run that silently
        does nothing would hide them."""
        if not self.problems:
            return
        if self.on_invalid == "fail" or self.table_problems or not self.rows:
            raise TableValidationError(self.problems, total_rows=self.total_rows)


def problems_to_records(problems: Sequence[RowProblem]) -> list[dict[str, Any]]:
    """Problems as `{"row", "column", "reason"}` dicts, for a table artifact or a CSV report."""
    return [p.to_dict() for p in problems]


@dataclass(frozen=True)
class _Column:
    index: int
    header: str
    key: str
    field: str | None
    """The request field (or `name`) this column fills, None for passthrough metadata."""


def _column_key(name: object) -> str:
    """How columns and template fields are matched: case-insensitive, surrounding spaces stripped,
    inner spaces and hyphens read as underscores (`Aspect Ratio` is `aspect_ratio`)."""
    return re.sub(r"[\s\-]+", "_", str(name).strip()).lower()


def _plain(value: Any) -> Any:
    """A cell as a plain Python value; None for every kind of missing value pandas produces."""
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if not isinstance(value, (str, bytes)) and hasattr(value, "tolist"):
        value = value.tolist()  # numpy scalars and arrays (Parquet list columns)
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def _as_text(value: Any) -> tuple[str | None, str | None]:
    """(text, None) for a scalar cell, (None, None) for a missing one, (None, reason) otherwise."""
    value = _plain(value)
    if value is None:
        return None, None
    if isinstance(value, str):
        return value, None
    if isinstance(value, bool):
        return ("true" if value else "false"), None
    if isinstance(value, int):
        return str(value), None
    if isinstance(value, float):
        # 2.0 from a numeric Parquet or JSON column means the whole number a user typed.
        return (str(int(value)) if value.is_integer() else repr(value)), None
    if isinstance(value, (list, tuple, dict, set, bytes, bytearray)):
        return None, f"a {type(value).__name__} is not a valid value here; expected text"
    return str(value), None


def _text_problem(text: str, limit: int) -> str | None:
    if len(text) > limit:
        return f"{len(text)} characters; the limit is {limit} per cell"
    if "\x00" in text:
        return "contains a NUL character (is the file UTF-16 or binary?)"
    if _SURROGATES.search(text):
        return "contains characters that are not valid Unicode text (lone surrogates)"
    return None


def _blank(text: str | None) -> bool:
    return text is None or not text.strip()


class _KeyedFormatter(string.Formatter):
    """`str.format` whose field names are matched like column names."""

    def get_value(self, key: int | str, args: Sequence[Any], kwargs: Mapping[str, Any]) -> Any:
        if isinstance(key, int):
            raise KeyError(key)
        return kwargs[_column_key(key)]


_FORMATTER = _KeyedFormatter()


def _template_fields(template: str, what: str) -> tuple[list[tuple[str, str]], str | None]:
    """The `(as written, key)` fields of a `{column}` template, or the reason it cannot be used."""
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        return [], f"{what} is not a valid template: {exc} (write a literal brace as {{{{ or }}}})"
    fields: list[tuple[str, str]] = []
    for _literal, name, spec, _conversion in parsed:
        if name is None:
            continue
        if name == "" or name.isdigit():
            return [], f"{what} has a positional field {{{name}}}; name a column instead, e.g. {{subject}}"
        if "." in name or "[" in name:
            return [], f"{what} field {{{name}}}: attribute and index access are not allowed"
        # A nested field or a huge width ({row:>999999999}) would let a template build any string.
        if spec and ("{" in spec or re.search(r"\d{4,}", spec)):
            return [], f"{what} field {{{name}:{spec}}}: this format specification is not allowed"
        fields.append((name, _column_key(name)))
    return fields, None


def _render(template: str, values: Mapping[str, Any]) -> tuple[str | None, str | None]:
    try:
        return _FORMATTER.vformat(template, (), values), None
    except (KeyError, IndexError, ValueError, TypeError, AttributeError, OverflowError) as exc:
        return None, f"cannot be rendered: {type(exc).__name__}: {exc}"


def name_problem(name: str) -> str | None:
    """Why `name` cannot be an image file-name stem, or None if it is safe.

    Safe means: a relative, `/`-separated path of at most `MAX_NAME_CHARS` characters whose every
    segment is non-empty, not `.`/`..`, does not start with `.` or end with a space or `.`, holds no
    control character, backslash or character Windows refuses (`<>:"|?*`), and is not a reserved
    device name (CON, NUL, COM1 ...). Such a name cannot leave the output directory anywhere.
    """
    if not name.strip():
        return "is empty"
    if len(name) > MAX_NAME_CHARS:
        return f"is {len(name)} characters; the limit is {MAX_NAME_CHARS}"
    if _CONTROL.search(name):
        return "contains a control character (newline, tab, NUL ...)"
    if _SURROGATES.search(name):
        return "contains characters that are not valid Unicode text"
    if "\\" in name:
        return "contains a backslash; use '/' to make subfolders"
    if name.startswith("/") or re.match(r"^[A-Za-z]:", name):
        return "is an absolute path; names are relative to the output location"
    bad = sorted(set(name) & _UNPORTABLE_NAME_CHARS)
    if bad:
        return f"contains {' '.join(bad)}, which file systems (Windows, macOS) refuse in names"
    for segment in name.split("/"):
        if segment in ("", ".", ".."):
            return "has an empty, '.' or '..' part; names must stay inside the output location"
        if segment.startswith("."):
            return f"has a part {segment!r} that starts with '.'; hidden files are easily lost"
        if segment != segment.rstrip(" ."):
            return f"has a part {segment!r} that ends with a space or '.', which Windows drops"
        if segment.split(".", 1)[0].strip().lower() in _RESERVED_NAMES:
            return f"has a part {segment!r} that is a reserved device name on Windows"
    try:
        safe_relpath(name)  # the output location's own rule: the two must never disagree
    except UnsafePathError as exc:
        return str(exc)
    return None


def _name_key(name: str) -> str:
    # macOS and Windows compare names case-insensitively (and macOS in NFD): collide as they would.
    return unicodedata.normalize("NFC", name).casefold()


def _strip_image_suffix(name: str) -> str:
    lower = name.lower()
    for suffix in _IMAGE_SUFFIXES:
        if lower.endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)]
    return name


def _reference_list(value: Any, limit: int) -> tuple[list[str], str | None]:
    """The references in a cell: a list, a JSON array string or a `|`-separated string."""
    value = _plain(value)
    if value is None:
        return [], None
    items: Any
    if isinstance(value, (list, tuple)):
        items = value
    elif isinstance(value, str):
        text = value.strip()
        if not text:
            return [], None
        if text.startswith("["):
            try:
                items = json.loads(text)
            except (ValueError, RecursionError) as exc:
                return [], f"looks like a JSON array but is not valid JSON: {exc}"
            if not isinstance(items, list):
                return [], "must be a JSON array of URLs or paths"
        else:
            items = text.split("|")
    else:
        return [], (
            f"a {type(value).__name__} is not a list of references; write URLs or paths separated "
            "by '|', or a JSON array"
        )
    refs: list[str] = []
    for item in items:
        item = _plain(item)
        if item is None:
            continue
        if not isinstance(item, str):
            return [], f"every reference must be a URL or a path; got a {type(item).__name__}"
        problem = _text_problem(item, limit)
        if problem:
            return [], f"a reference {problem}"
        if _CONTROL.search(item):
            return [], f"reference {item[:80]!r} contains a control character"
        if item.strip():
            refs.append(item.strip())
    return refs, None


@dataclass
class _References:
    """Local reference files are resolved inside one base folder and checked once per plan."""

    base: Path | None
    base_problem: str | None
    checked: dict[str, tuple[str, RequestValidationError | None]] = field(default_factory=dict)
    resolved: dict[str, tuple[str, str, str | None]] = field(default_factory=dict)

    @classmethod
    def open(cls, base_dir: str | os.PathLike[str] | None) -> _References:
        if base_dir is None or not str(base_dir).strip():
            return cls(None, None)
        try:
            base = Path(base_dir).expanduser().resolve(strict=True)
        except (OSError, RuntimeError, ValueError):
            return cls(None, f"reference_base_dir {str(base_dir)!r} does not exist")
        if not base.is_dir():
            return cls(None, f"reference_base_dir {str(base_dir)!r} is not a folder")
        return cls(base, None)

    def resolve(self, ref: str) -> tuple[str, str, str | None]:
        """(reference to send, digest, problem): URLs as they are, local files resolved and hashed.

        Remembered per reference: a table that names one file in every row resolves it once."""
        if ref not in self.resolved:
            self.resolved[ref] = self._resolve(ref)
        return self.resolved[ref]

    def _resolve(self, ref: str) -> tuple[str, str, str | None]:
        if is_url(ref):
            return ref, ref, None
        if "://" in ref or ref.startswith("data:"):
            return ref, "", f"{ref[:200]!r} is neither an http(s) URL nor a local file path"
        if self.base_problem:
            return ref, "", self.base_problem
        if self.base is None:
            return (
                ref,
                "",
                (
                    f"{ref[:200]!r} is a local file, but reference_base_dir is not set; set "
                    "reference_base_dir to the folder that holds the reference images (local files are "
                    "read only from inside it)"
                ),
            )
        candidate = Path(ref)
        if not candidate.is_absolute():
            candidate = self.base / candidate
        try:
            resolved = candidate.resolve()
        except (OSError, RuntimeError, ValueError) as exc:
            return ref, "", f"{ref[:200]!r} cannot be resolved: {exc}"
        # resolve() has followed every symlink and '..': what is checked is what will be read.
        if not resolved.is_relative_to(self.base):
            return (
                ref,
                "",
                (
                    f"{ref[:200]!r} resolves to {str(resolved)!r}, outside reference_base_dir "
                    f"{str(self.base)!r}; references must lie inside it (symlinks and '..' are followed)"
                ),
            )
        path = str(resolved)
        if path not in self.checked:
            self.checked[path] = check_reference_file(path)
        digest, problem = self.checked[path]
        if problem is not None:
            return path, "", _strip_field(problem.message, "reference_images")
        return path, digest, None


def _strip_field(message: str, field_name: str) -> str:
    prefix = f"{field_name}: "
    return message[len(prefix) :] if message.startswith(prefix) else message


@dataclass
class _Candidate:
    row: int
    request: ImageRequest
    row_key: str
    name: str
    extra: dict[str, str]


def plan_table(
    df: pd.DataFrame,
    *,
    provider: str,
    defaults: Mapping[str, Any] | None = None,
    prompt_template: str | None = None,
    name_template: str | None = None,
    reference_base_dir: str | os.PathLike[str] | None = None,
    on_invalid: Literal["fail", "skip"] = "fail",
    max_rows: int = DEFAULT_MAX_ROWS,
    max_cell_chars: int = MAX_CELL_CHARS,
) -> TablePlan:
    """Validate every row of `df` and turn each valid one into an `ImageRequest`; never raises for
    bad input: every problem of every row is in the returned plan (see `TablePlan.raise_if_invalid`).

    Columns (matched ignoring case and surrounding spaces; `Aspect Ratio` is `aspect_ratio`):
    `provider` (overrides the `provider` argument), `prompt`, `model`, `aspect_ratio`, `resolution`,
    `reference_images` (a list, a JSON array or a `|`-separated text of http(s) URLs or local paths),
    `orientation`, `google_search`, `image_search` (or `google_image_search`), `thinking_level`,
    `variant`, and `name`. Every other column is kept as passthrough metadata in `PlannedRow.extra`.

    A blank cell takes the value from `defaults` (same field names, except `provider` and `name`);
    `model` falls back to `catalog.DEFAULT_MODEL`. A blank prompt is rendered from `prompt_template`,
    whose `{column}` fields name other columns. A blank name is rendered from `name_template`
    (default `"{row:05d}-{row_key8}"`; fields: any column, `provider`, `model` and the other request
    fields as normalized, `row`, `row_key`, `row_key8`); a trailing image suffix (`.png`) is dropped.

    Local reference paths are resolved against `reference_base_dir`, after symlinks and `..`, and
    must lie inside it; with no base folder, local paths are refused. Rows that make the same image
    (same `row_key`) are planned once, the others listed in `duplicates`; two different images with
    the same file name (ignoring case) are a problem of the later row. Rows with every cell blank
    are ignored. Reads local reference files to check and hash them; makes no network call.
    """
    if len(df) > max_rows:
        problem = RowProblem(None, None, f"the table has {len(df)} rows; the limit is {max_rows} (max_rows)")
        return TablePlan([], [], [problem], [], len(df), on_invalid)

    table_problems: list[RowProblem] = []
    row_problems: dict[int, list[RowProblem]] = {}
    columns = _columns(df, table_problems)
    by_field = {c.field: c for c in columns if c.field is not None}
    by_key = {c.key: c for c in columns}
    default_values = _defaults(defaults, max_cell_chars, table_problems)

    prompt_template = prompt_template if prompt_template and prompt_template.strip() else None
    prompt_fields: list[tuple[str, str]] = []
    prompt_reported = False  # a missing prompt column is said once for the table, not once per row
    if prompt_template is not None:
        prompt_fields, reason = _template_fields(prompt_template, "prompt_template")
        if reason:
            table_problems.append(RowProblem(None, "prompt_template", reason))
            prompt_template = None
            prompt_reported = "prompt" not in by_field
    elif "prompt" not in by_field and "prompt" not in default_values:
        prompt_reported = True
        table_problems.append(
            RowProblem(
                None,
                "prompt",
                f"the table has no 'prompt' column (its columns: {', '.join(c.header for c in columns) or 'none'})"
                f"; add one, or set prompt_template{_separator_hint(columns)}",
            )
        )

    name_template = name_template if name_template and name_template.strip() else DEFAULT_NAME_TEMPLATE
    name_fields, reason = _template_fields(name_template, "name_template")
    if reason:
        table_problems.append(RowProblem(None, "name_template", reason))
    else:
        known = {*by_key, *REQUEST_COLUMNS, *_NAME_TEMPLATE_BUILTINS}
        for written, key in name_fields:
            if key not in known:
                table_problems.append(
                    RowProblem(
                        None,
                        "name_template",
                        f"{{{written}}} is neither a column nor one of "
                        f"{', '.join(_NAME_TEMPLATE_BUILTINS + REQUEST_COLUMNS)}",
                    )
                )
    name_ok = not any(p.column == "name_template" for p in table_problems)

    references = _References.open(reference_base_dir)
    values = df.to_numpy(dtype=object)
    candidates: list[_Candidate] = []
    blank_rows: list[int] = []
    for position in range(len(df)):
        row = position + 1
        cells = values[position]
        problems: list[RowProblem] = []
        candidate = _plan_row(
            row,
            cells,
            columns,
            by_field,
            by_key,
            provider=provider,
            defaults=default_values,
            prompt_template=prompt_template,
            prompt_fields=prompt_fields,
            prompt_reported=prompt_reported,
            name_template=name_template if name_ok else None,
            references=references,
            max_cell_chars=max_cell_chars,
            problems=problems,
            blank_rows=blank_rows,
        )
        if problems:
            row_problems[row] = problems
        elif candidate is not None:
            candidates.append(candidate)

    rows, duplicates = _deduplicate(candidates, by_field.get(NAME_COLUMN), row_problems)
    if not rows and not row_problems and not table_problems:
        table_problems.append(RowProblem(None, None, "the table has no rows"))
    if table_problems:
        rows, duplicates = [], []
    problems = table_problems + [p for row in sorted(row_problems) for p in row_problems[row]]
    return TablePlan(
        rows=rows,
        duplicates=duplicates,
        problems=problems,
        invalid_rows=sorted(row_problems),
        total_rows=len(df),
        on_invalid=on_invalid,
        blank_rows=blank_rows,
    )


def _columns(df: pd.DataFrame, problems: list[RowProblem]) -> list[_Column]:
    columns: list[_Column] = []
    seen: dict[str, _Column] = {}
    values = df.to_numpy(dtype=object)
    for index, raw in enumerate(df.columns):
        header = str(raw).strip()
        if not header:
            if any(
                not _blank(_as_text(v)[0]) or isinstance(_plain(v), (list, dict)) for v in values[:, index]
            ):
                problems.append(
                    RowProblem(
                        None, f"column {index + 1}", "has values but no column name; name it or delete it"
                    )
                )
            continue
        key = _column_key(header)
        canonical = _COLUMN_ALIASES.get(key, key)
        column = _Column(index, header, key, canonical if canonical in _KNOWN_COLUMNS else None)
        same = seen.get(column.field or key)
        if same is not None:
            problems.append(
                RowProblem(
                    None,
                    header,
                    f"columns {same.header!r} and {header!r} are the same column (names are compared "
                    "ignoring case and spaces, google_image_search is image_search); keep one",
                )
            )
            continue
        seen[column.field or key] = column
        columns.append(column)
    return columns


def _separator_hint(columns: list[_Column]) -> str:
    if len(columns) == 1 and (";" in columns[0].header or "\t" in columns[0].header):
        return " (the header looks ';'- or tab-separated: save the file comma-separated, or use .tsv)"
    return ""


def _defaults(defaults: Mapping[str, Any] | None, limit: int, problems: list[RowProblem]) -> dict[str, Any]:
    """Defaults by field: text for scalar fields, the raw value for reference_images."""
    out: dict[str, Any] = {}
    for raw_key, value in (defaults or {}).items():
        if _plain(value) is None or (isinstance(value, str) and not value.strip()):
            continue  # an unset default (a flow parameter left empty) asks for nothing
        key = _column_key(raw_key)
        key = _COLUMN_ALIASES.get(key, key)
        if key == "provider":
            problems.append(
                RowProblem(None, "provider", "defaults: set the provider with the provider argument")
            )
            continue
        if key == NAME_COLUMN:
            problems.append(RowProblem(None, "name", "defaults: names differ per row; use name_template"))
            continue
        if key not in _DEFAULTABLE:
            problems.append(
                RowProblem(None, str(raw_key), f"defaults: unknown field; allowed: {', '.join(_DEFAULTABLE)}")
            )
            continue
        if key == "reference_images":
            out[key] = value
            continue
        text, reason = _as_text(value)
        if reason is None and text is not None:
            reason = _text_problem(text, limit)
        if reason:
            problems.append(RowProblem(None, key, f"defaults: {reason}"))
        elif not _blank(text):
            out[key] = text
    return out


def _plan_row(
    row: int,
    cells: Any,
    columns: list[_Column],
    by_field: Mapping[str, _Column],
    by_key: Mapping[str, _Column],
    *,
    provider: str,
    defaults: Mapping[str, Any],
    prompt_template: str | None,
    prompt_fields: list[tuple[str, str]],
    prompt_reported: bool,
    name_template: str | None,
    references: _References,
    max_cell_chars: int,
    problems: list[RowProblem],
    blank_rows: list[int],
) -> _Candidate | None:
    """Everything about one row; appends every problem found to `problems`."""
    texts: dict[str, str | None] = {}
    bad: set[str] = set()
    for column in columns:
        if column.field == "reference_images":
            continue  # lists are welcome there; checked item by item below
        text: str | None
        reason: str | None
        if column.field is None:
            text, reason = _extra_text(cells[column.index]), None  # metadata: any JSON value is fine
        else:
            text, reason = _as_text(cells[column.index])
        if reason is None and text is not None:
            reason = _text_problem(text, max_cell_chars)
        if reason:
            problems.append(RowProblem(row, column.header, reason))
            bad.add(column.key)
        texts[column.key] = text
    ref_column = by_field.get("reference_images")
    ref_cell = _plain(cells[ref_column.index]) if ref_column else None
    if all(_blank(t) for t in texts.values()) and not bad and _reference_cell_blank(ref_cell):
        blank_rows.append(row)
        return None

    fields: dict[str, Any] = {}
    source: dict[str, str] = {}
    flagged = {c.field for c in columns if c.key in bad and c.field}
    if prompt_reported:
        flagged.add("prompt")
    for field_name in REQUEST_COLUMNS:
        if field_name == "reference_images" or field_name in flagged:
            continue
        field_column = by_field.get(field_name)
        value = texts.get(field_column.key) if field_column else None
        if not _blank(value):
            fields[field_name], source[field_name] = value, "table"
        elif field_name == "prompt" and prompt_template is not None:
            continue  # rendered below, before any default prompt
        elif field_name in defaults:
            fields[field_name], source[field_name] = defaults[field_name], "defaults"
    if "provider" not in fields:
        fields["provider"], source["provider"] = provider, "argument"  # a bad cell: None, reported once
    fields["provider"] = None if "provider" in flagged else str(fields["provider"]).strip().lower()
    if "model" not in flagged:
        fields.setdefault("model", DEFAULT_MODEL)

    if "prompt" not in fields and "prompt" not in flagged and prompt_template is not None:
        rendered = _render_prompt(row, prompt_template, prompt_fields, texts, by_key, bad, problems)
        if rendered is not None:
            fields["prompt"], source["prompt"] = rendered, "template"
        elif "prompt" in defaults:
            fields["prompt"], source["prompt"] = defaults["prompt"], "defaults"
        else:
            flagged.add("prompt")  # the template's problems already say why

    ref_header = ref_column.header if ref_column else "reference_images"
    raw_refs: Any = ref_cell
    if _reference_cell_blank(ref_cell) and "reference_images" in defaults:
        raw_refs, source["reference_images"] = defaults["reference_images"], "defaults"
    elif not _reference_cell_blank(ref_cell):
        source["reference_images"] = "table"
    refs, reason = _reference_list(raw_refs, max_cell_chars)
    if reason:
        problems.append(RowProblem(row, ref_header, reason))
        flagged.add("reference_images")
    else:
        sent: list[str] = []
        digests: list[str] = []
        for ref in refs:
            path, digest, ref_problem = references.resolve(ref)
            if ref_problem:
                problems.append(RowProblem(row, ref_header, ref_problem))
            sent.append(path)
            digests.append(digest)
        # With one digest per reference, normalize_request_fields trusts the files were checked
        # (they were, once per plan) and still applies the per-model count limit.
        fields["reference_images"] = tuple(sent)
        fields["reference_digests"] = tuple(digests)

    normalized, request_problems = normalize_request_fields(fields)
    for problem in request_problems:
        if problem.field in flagged:
            continue
        problems.append(_request_problem(row, problem, by_field, source))

    request: ImageRequest | None = None
    if not problems and not flagged:  # a flagged field has been reported, by the row or the table
        try:
            request = ImageRequest.model_validate(normalized)
        except RequestValidationError as exc:
            problems.append(_request_problem(row, exc, by_field, source))
        except ValidationError as exc:
            for error in exc.errors():
                location = str(error["loc"][0]) if error.get("loc") else None
                problems.append(RowProblem(row, location, str(error.get("msg"))))

    # row_key hashes the whole request: computed once here, not once per use.
    row_key = request.row_key if request is not None else None
    name = _row_name(row, texts, fields, request, row_key, by_field, name_template, bad, problems)
    if request is None or row_key is None or name is None or problems:
        return None
    extra = {c.header: _extra_text(cells[c.index]) for c in columns if c.field is None}
    return _Candidate(row, request, row_key, name, extra)


def _reference_cell_blank(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, str):
        return not value.strip()
    if isinstance(value, (list, tuple)):
        return all(_plain(v) is None or (isinstance(v, str) and not v.strip()) for v in value)
    return False


def _render_prompt(
    row: int,
    template: str,
    template_fields: list[tuple[str, str]],
    texts: Mapping[str, str | None],
    by_key: Mapping[str, _Column],
    bad: set[str],
    problems: list[RowProblem],
) -> str | None:
    missing = False
    for written, key in template_fields:
        column = by_key.get(key)
        if column is None:
            problems.append(
                RowProblem(
                    row,
                    written,
                    f"the row has no prompt, and prompt_template uses {{{written}}}, but the table has "
                    f"no {written!r} column",
                )
            )
            missing = True
        elif key in bad:
            missing = True
        elif _blank(texts.get(key)):
            problems.append(
                RowProblem(
                    row,
                    column.header,
                    f"is empty, but the row has no prompt and prompt_template uses {{{written}}}",
                )
            )
            missing = True
    if missing:
        return None
    rendered, reason = _render(template, {k: (v or "").strip() for k, v in texts.items()})
    if reason:
        problems.append(RowProblem(row, "prompt_template", reason))
    return rendered


def _request_problem(
    row: int, problem: RequestValidationError, by_field: Mapping[str, _Column], source: Mapping[str, str]
) -> RowProblem:
    name = problem.field
    column = by_field.get(name)
    reason = _strip_field(problem.message, name)
    origin = source.get(name)
    if origin == "defaults":
        reason += " (from defaults)"
    elif origin == "template":
        reason += " (rendered from prompt_template)"
    elif origin == "argument":
        reason += " (from the provider argument)"
    elif name == "model" and "model" not in source:
        reason += f" (the default model {DEFAULT_MODEL})"
    # The user's own header when the value is (or should have been) in that column.
    return RowProblem(row, column.header if column and origin in ("table", None) else name, reason)


def _row_name(
    row: int,
    texts: Mapping[str, str | None],
    fields: Mapping[str, Any],
    request: ImageRequest | None,
    row_key: str | None,
    by_field: Mapping[str, _Column],
    name_template: str | None,
    bad: set[str],
    problems: list[RowProblem],
) -> str | None:
    column = by_field.get(NAME_COLUMN)
    header = column.header if column else NAME_COLUMN
    if column is not None and column.key in bad:
        return None
    written = texts.get(column.key) if column else None
    if not _blank(written):
        assert written is not None
        name, origin = written.strip(), ""
    elif name_template is None:
        return None  # the template's table-level problem already says why
    else:
        # A row that is invalid for other reasons still gets its name checked, with a stand-in key,
        # so that the user sees every problem in one pass.
        row_key = row_key or "0" * 32
        values: dict[str, Any] = {k: (v or "").strip() for k, v in texts.items()}
        request_values = request.model_dump() if request is not None else dict(fields)
        for key in REQUEST_COLUMNS:
            value = request_values.get(key)
            values[key] = "" if value is None else value
        values.update(row=row, row_key=row_key, row_key8=row_key[:8])
        rendered, reason = _render(name_template, values)
        if reason or rendered is None:
            problems.append(RowProblem(row, "name_template", reason or "cannot be rendered"))
            return None
        name, origin = rendered.strip(), " (rendered from name_template)"
    name = unicodedata.normalize("NFC", _strip_image_suffix(name))
    reason = name_problem(name)
    if reason:
        problems.append(RowProblem(row, header, f"file name {name[:80]!r} {reason}{origin}"))
        return None
    return name


def _extra_text(value: Any) -> str:
    plain = _plain(value)
    if isinstance(plain, (list, tuple, dict)):
        return json.dumps(plain, ensure_ascii=False, default=str)
    text, _ = _as_text(plain)
    return text or ""


def _deduplicate(
    candidates: list[_Candidate], name_column: _Column | None, row_problems: dict[int, list[RowProblem]]
) -> tuple[list[PlannedRow], list[tuple[int, int]]]:
    """One planned row per image; later rows with the same image are duplicates, later rows with
    the same file name but another image are problems."""
    header = name_column.header if name_column else NAME_COLUMN
    first_by_key: dict[str, PlannedRow] = {}
    by_name: dict[str, PlannedRow] = {}
    rows: list[PlannedRow] = []
    duplicates: list[tuple[int, int]] = []
    for candidate in candidates:
        key = candidate.row_key
        original = first_by_key.get(key)
        if original is not None:
            duplicates.append((candidate.row, original.row))
            continue
        other = by_name.get(_name_key(candidate.name))
        if other is not None:
            case = " (names are compared ignoring case)" if other.name != candidate.name else ""
            row_problems.setdefault(candidate.row, []).append(
                RowProblem(
                    candidate.row,
                    header,
                    f"file name {candidate.name!r} is already used by row {other.row}, which makes a "
                    f"different image{case}; give row {other.row} or row {candidate.row} another name",
                )
            )
            continue
        planned = PlannedRow(candidate.row, candidate.request, candidate.name, candidate.extra)
        first_by_key[key] = planned
        by_name[_name_key(candidate.name)] = planned
        rows.append(planned)
    return rows, duplicates
