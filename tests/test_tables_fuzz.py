"""Fuzzing the table loader and planner: any input gives a plan or a TableValidationError, nothing else.

Each property runs with a modest number of examples so that the suite stays fast; a hang shows up
as a pytest-timeout failure.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import fsspec
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from prefect_nanobanana.errors import TableValidationError
from prefect_nanobanana.tables import REQUEST_COLUMNS, PlannedRow, TablePlan, load_table, plan_table

FUZZ = settings(
    max_examples=200,
    deadline=None,
    database=None,  # nothing written into the working tree; a failure prints its reproducing example
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
pytestmark = pytest.mark.timeout(120)

COLUMNS = [*REQUEST_COLUMNS, "name", "google_image_search", "subject", "Style", " Prompt ", "note", ""]
_counter = itertools.count()


@pytest.fixture(scope="module")
def base_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("fuzz-refs")
    Image.new("RGB", (4, 4), (1, 2, 3)).save(base / "a.png")
    return base


def check(result: TablePlan) -> None:
    """The invariants of every plan, whatever went in."""
    rows = [r.row for r in result.rows]
    assert rows == sorted(set(rows))
    assert not set(rows) & set(result.invalid_rows)
    assert not set(rows) & {dup for dup, _ in result.duplicates}
    for problem in result.problems:
        assert problem.reason
        assert problem.row is None or 1 <= problem.row <= result.total_rows
    for row in result.rows:
        assert PlannedRow.from_dict(json.loads(json.dumps(row.to_dict()))) == row
    try:
        result.raise_if_invalid()
    except TableValidationError as exc:
        assert exc.problems == result.problems


def load_and_plan(source: Any, base_dir: Path, **kwargs: Any) -> None:
    try:
        frame = load_table(source, **{k: v for k, v in kwargs.items() if k == "format"})
        options = {k: v for k, v in kwargs.items() if k != "format"}
        result = plan_table(
            frame, provider="toapis", defaults={}, reference_base_dir=str(base_dir), **options
        )
    except TableValidationError as exc:
        assert exc.problems
        return
    check(result)


cells = st.one_of(
    st.none(),
    st.text(max_size=30),
    st.sampled_from(
        [
            "",
            "  ",
            "NA",
            "nano-banana-2",
            "gemini-2.5-flash-image",
            "ttapi",
            "TOAPIS",
            "16:9",
            "1:8",
            "4K",
            "0.5k",
            "true",
            "maybe",
            "-1",
            "1e309",
            "inf",
            "nan",
            "../x",
            "a.png",
            "/etc/passwd.png",
            "https://x.test/a.png",
            '["a.png", "https://x.test/b.png"]',
            "a.png|b.png",
            "{row}",
            "CON",
            "x" * 1001,
        ]
    ),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.lists(st.one_of(st.text(max_size=10), st.integers(), st.none()), max_size=4),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)
any_row = st.dictionaries(st.sampled_from(COLUMNS) | st.text(max_size=8), cells, max_size=8)
# Rows that are mostly valid, so that naming, duplicates and collisions are exercised too.
plausible_row = st.fixed_dictionaries(
    {"prompt": st.sampled_from(["a cat", "a dog", "A cat "]) | st.text(min_size=1, max_size=20)},
    optional={
        "model": st.sampled_from(["nano-banana-2", "nano-banana-pro", "nano-banana"]),
        "aspect_ratio": st.sampled_from(["1:1", "16:9", "", "1:8"]),
        "variant": st.sampled_from(["", "0", "1", 2]),
        "name": st.sampled_from(["a", "A", "b/c", "", "../d"]) | st.text(max_size=12),
        "reference_images": st.sampled_from(["a.png", "", "https://x.test/a.png", ["a.png", "a.png"]]),
        "subject": st.text(max_size=5),
    },
)
rows = st.lists(any_row | plausible_row, max_size=6)
templates = (
    st.none()
    | st.text(max_size=20)
    | st.sampled_from(["A {subject} in {style}", "{row:05d}-{row_key8}", "{model}/{name}", "{x:>5}", "{"])
)


# Random bytes rarely get past the header; a plausible header in front lets them reach the planner.
table_bytes = st.one_of(
    st.binary(max_size=400),
    st.tuples(
        st.sampled_from([b"prompt\n", b"prompt,model,name\n", b"\xef\xbb\xbfprompt,reference_images\n"]),
        st.binary(max_size=300),
    ).map(b"".join),
)


@FUZZ
@given(data=table_bytes)
def test_arbitrary_bytes(data: bytes, base_dir: Path) -> None:
    load_and_plan(data, base_dir, format="csv")


@FUZZ
@given(data=table_bytes, suffix=st.sampled_from([".csv", ".tsv", ".json", ".jsonl", ".parquet"]))
def test_arbitrary_files_through_fsspec(data: bytes, suffix: str, base_dir: Path) -> None:
    url = f"memory://fuzz/{next(_counter)}{suffix}"
    fsspec.filesystem("memory").pipe(url, data)
    try:
        load_and_plan(url, base_dir)
    finally:
        fsspec.filesystem("memory").rm(url)


csv_text = st.lists(
    st.lists(
        st.one_of(st.text(max_size=12), st.sampled_from(['"', '""', ",", "\n", "\r\n", "prompt", "\x00"])),
        max_size=5,
    ),
    max_size=6,
).map(lambda lines: "\n".join(",".join(cells) for cells in lines))


@FUZZ
@given(header=st.lists(st.sampled_from(COLUMNS), min_size=1, max_size=6), body=csv_text)
def test_arbitrary_csv_text(header: list[str], body: str, base_dir: Path) -> None:
    load_and_plan((",".join(header) + "\n" + body).encode("utf-8", "surrogatepass"), base_dir, format="csv")


@FUZZ
@given(
    table=rows,
    prompt_template=templates,
    name_template=templates,
    on_invalid=st.sampled_from(["fail", "skip"]),
)
def test_arbitrary_cell_values(
    table: list[dict[str, Any]],
    prompt_template: str | None,
    name_template: str | None,
    on_invalid: str,
    base_dir: Path,
) -> None:
    load_and_plan(
        table, base_dir, prompt_template=prompt_template, name_template=name_template, on_invalid=on_invalid
    )


@FUZZ
@given(table=rows)
def test_arbitrary_rows_as_json_and_dataframe(table: list[dict[str, Any]], base_dir: Path) -> None:
    load_and_plan(json.dumps(table, default=str), base_dir)
    try:
        frame = pd.DataFrame(table)
    except (ValueError, TypeError):
        return
    load_and_plan(frame, base_dir)


@FUZZ
@given(defaults=st.dictionaries(st.sampled_from([*COLUMNS, "colour"]), cells, max_size=5))
def test_arbitrary_defaults(defaults: dict[str, Any], base_dir: Path) -> None:
    try:
        result = plan_table(
            load_table([{"prompt": "a"}, {"prompt": "b", "model": "nano-banana-2"}]),
            provider="toapis",
            defaults=defaults,
            reference_base_dir=str(base_dir),
        )
    except TableValidationError:
        return
    check(result)
