"""Prompt tables: every loader format, every planning rule, and a corpus of bad tables."""

from __future__ import annotations

import gzip
import json
import os
import shutil
from pathlib import Path
from typing import Any

import fsspec
import pandas as pd
import pytest
from PIL import Image

from prefect_nanobanana.errors import RowProblem, TableValidationError
from prefect_nanobanana.models import MAX_REFERENCE_BYTES, file_sha256
from prefect_nanobanana.tables import (
    DEFAULT_NAME_TEMPLATE,
    MAX_NAME_CHARS,
    PlannedRow,
    TablePlan,
    load_table,
    name_problem,
    plan_table,
    problems_to_records,
)

REPO = Path(__file__).resolve().parents[1]
CORPUS = Path(__file__).parent / "data" / "bad_tables"
EXAMPLES = REPO / "examples"


def write_png(path: Path, color: tuple[int, int, int] = (200, 30, 30)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 8), color).save(path)
    return path


def plan(rows: Any, **kwargs: Any) -> TablePlan:
    kwargs.setdefault("provider", "toapis")
    kwargs.setdefault("defaults", {})
    return plan_table(load_table(rows), **kwargs)


def where(problems: list[RowProblem]) -> set[tuple[int | None, str | None]]:
    return {(p.row, p.column) for p in problems}


def load_error(source: Any, **kwargs: Any) -> TableValidationError:
    with pytest.raises(TableValidationError) as info:
        load_table(source, **kwargs)
    return info.value


# --- loading -------------------------------------------------------------------------------------

SAMPLE = [
    {"prompt": "NA", "model": "nano-banana-2", "variant": "007"},
    {"prompt": "None", "model": "", "variant": ""},
]


def test_csv_cells_are_read_verbatim(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text(" Prompt ,model,variant\nNA,nano-banana-2,007\nNone,,\nnull,n/a,1.0\n", encoding="utf-8")
    frame = load_table(path)
    assert list(frame.columns) == ["Prompt", "model", "variant"]
    assert frame.to_dict("records") == [
        {"Prompt": "NA", "model": "nano-banana-2", "variant": "007"},
        {"Prompt": "None", "model": "", "variant": ""},
        {"Prompt": "null", "model": "n/a", "variant": "1.0"},
    ]


def test_csv_with_bom_crlf_and_multiline_cells(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_bytes(b'\xef\xbb\xbfprompt,name\r\n"two\r\nlines, and a ""quote""",a\r\n')
    frame = load_table(str(path))
    assert list(frame.columns) == ["prompt", "name"]
    assert frame.iloc[0]["prompt"] == 'two\r\nlines, and a "quote"'


def test_tsv_and_gzip(tmp_path: Path) -> None:
    (tmp_path / "t.tsv").write_text("prompt\tmodel\na, b\tnano-banana-2\n", encoding="utf-8")
    assert load_table(tmp_path / "t.tsv").iloc[0].tolist() == ["a, b", "nano-banana-2"]
    (tmp_path / "t.csv.gz").write_bytes(gzip.compress(b"prompt\nzipped\n"))
    assert load_table(tmp_path / "t.csv.gz").iloc[0]["prompt"] == "zipped"


def test_parquet_keeps_values_and_lists(tmp_path: Path) -> None:
    path = tmp_path / "t.parquet"
    pd.DataFrame(
        {
            "prompt": ["a", "b"],
            "variant": [1, 2],
            "google_search": [True, False],
            "reference_images": [["https://x.test/1.png"], []],
        }
    ).to_parquet(path)
    frame = load_table(path)
    result = plan_table(frame, provider="toapis", defaults={"model": "nano-banana-2"})
    assert not result.problems
    assert [r.request.variant for r in result.rows] == [1, 2]
    assert result.rows[0].request.reference_images == ("https://x.test/1.png",)
    assert result.rows[0].request.google_search is True


def test_json_records_and_jsonl(tmp_path: Path) -> None:
    frame = pd.DataFrame(SAMPLE)
    frame.to_json(tmp_path / "t.json", orient="records")
    frame.to_json(tmp_path / "t.jsonl", orient="records", lines=True)
    (tmp_path / "t.ndjson").write_text("\n".join(json.dumps(r) for r in SAMPLE) + "\n\n", encoding="utf-8")
    (tmp_path / "rows.txt").write_text(json.dumps(SAMPLE), encoding="utf-8")
    for name, fmt in (("t.json", None), ("t.jsonl", None), ("t.ndjson", None), ("rows.txt", "json")):
        loaded = load_table(tmp_path / name, format=fmt)
        assert loaded.to_dict("records") == SAMPLE, name


def test_json_keeps_types_without_guessing() -> None:
    frame = load_table(
        '[{"prompt": "1e5", "variant": 2, "google_search": true, "reference_images": ["a", "b"]}]'
    )
    row = frame.iloc[0]
    assert row["prompt"] == "1e5" and row["variant"] == 2 and row["google_search"] is True
    assert row["reference_images"] == ["a", "b"]


def test_inline_rows_dataframe_json_string_csv_text_and_bytes() -> None:
    expected = pd.DataFrame(SAMPLE).to_dict("records")
    assert load_table(SAMPLE).to_dict("records") == expected
    assert load_table(pd.DataFrame(SAMPLE)).to_dict("records") == expected
    assert load_table(json.dumps(SAMPLE)).to_dict("records") == expected
    assert load_table("prompt,variant\nNA,007\n").to_dict("records") == [{"prompt": "NA", "variant": "007"}]
    assert load_table(b"prompt\nfrom bytes\n").iloc[0]["prompt"] == "from bytes"
    jsonl = "\n".join(json.dumps(r) for r in SAMPLE)
    assert load_table(jsonl).to_dict("records") == expected


def test_dataframe_index_is_kept_only_when_named() -> None:
    frame = pd.DataFrame({"id": ["a", "b"], "prompt": ["x", "y"]})
    assert list(load_table(frame.set_index("id")).columns) == ["id", "prompt"]
    assert list(load_table(frame[frame.prompt == "y"]).columns) == ["id", "prompt"]


def test_inline_text_versus_paths(tmp_path: Path) -> None:
    (tmp_path / "t.csv").write_text("prompt\nfrom file\n", encoding="utf-8")
    assert load_table(f"{tmp_path}/t.csv\n").iloc[0]["prompt"] == "from file"  # pasted with a newline
    assert load_table("prompt\rclassic mac\r").iloc[0]["prompt"] == "classic mac"


def test_fsspec_urls() -> None:
    with fsspec.open("memory://tables/t.csv", "wb") as fh:
        fh.write(b"prompt,model\nin memory,nano-banana-2\n")
    frame = load_table("memory://tables/t.csv")
    assert frame.iloc[0]["prompt"] == "in memory"
    fs = fsspec.filesystem("memory")
    fs.pipe("memory://tables/t.parquet", pd.DataFrame({"prompt": ["pq"]}).to_parquet())
    assert load_table("memory://tables/t.parquet").iloc[0]["prompt"] == "pq"


def test_s3_url_on_a_moto_server(monkeypatch: pytest.MonkeyPatch) -> None:
    from moto.server import ThreadedMotoServer

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    try:
        host, port = server.get_host_and_port()
        options = {"client_kwargs": {"endpoint_url": f"http://{host}:{port}"}, "skip_instance_cache": True}
        fs = fsspec.filesystem("s3", **options)
        fs.mkdir("tables")
        fs.pipe("tables/prompts.csv", b"prompt,model\nfrom s3,nano-banana-2\n")
        frame = load_table("s3://tables/prompts.csv", storage_options=options)
        assert frame.iloc[0]["prompt"] == "from s3"
        assert "no such file" in str(load_error("s3://tables/missing.csv", storage_options=options))
    finally:
        server.stop()


def test_file_url(tmp_path: Path) -> None:
    (tmp_path / "t.csv").write_text("prompt\nvia file url\n", encoding="utf-8")
    assert load_table(f"file://{tmp_path}/t.csv").iloc[0]["prompt"] == "via file url"


@pytest.mark.parametrize(
    ("content", "name", "expected"),
    [
        (None, "missing.csv", "no such file"),
        (b"", "empty.csv", "is empty"),
        (b"  \n\n", "blank.csv", "is empty"),
        (b"prompt,model\n", "header.csv", "header but no rows"),
        (b"[]", "empty.json", "has no rows"),
        (b"\n\n", "empty.jsonl", "is empty"),
        (b'{"prompt": "x"}', "object.json", "JSON array of row objects"),
        (b"[1, 2", "broken.json", "not valid JSON"),
        (b"PK\x03\x04", "t.xlsx", "save it as CSV UTF-8"),
        (b"prompt\nx\n", "t.dat", "cannot tell the format"),
        (b"not parquet", "t.parquet", "not a readable Parquet file"),
        (b"\xff\xfep\x00r\x00", "utf16.csv", "UTF-16"),
    ],
)
def test_unreadable_sources(tmp_path: Path, content: bytes | None, name: str, expected: str) -> None:
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    error = load_error(path)
    assert expected in str(error)
    assert all(p.row is None for p in error.problems)


def test_directory_unknown_format_and_unsupported_source(tmp_path: Path) -> None:
    (tmp_path / "folder.csv").mkdir()
    assert "is a folder" in str(load_error(tmp_path / "folder.csv"))
    assert "not supported" in str(load_error(tmp_path / "t.csv", format="xml"))
    assert "unsupported table source" in str(load_error(42))  # type: ignore[arg-type]
    assert "Protocol not known" in str(load_error("nosuchproto://bucket/t.csv"))


def test_error_messages_hide_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    error = load_error("memory://user:hunter22@host/missing.csv?X-Amz-Signature=topsecret")
    assert "hunter22" not in str(error) and "topsecret" not in str(error)

    def leaky_open(path: str, *args: Any, **options: Any) -> Any:
        raise RuntimeError(f"endpoint refused key={options['key']} secret={options['client']['secret']}")

    monkeypatch.setattr(fsspec, "open", leaky_open)
    error = load_error(
        "s3://bucket/t.csv", storage_options={"key": "AKIAEXAMPLE", "client": {"secret": "s3cr3tvalue"}}
    )
    assert "s3cr3tvalue" not in str(error) and "AKIAEXAMPLE" not in str(error)
    assert "cannot read s3://bucket/t.csv: RuntimeError" in str(error)


def test_inline_rows_must_be_objects() -> None:
    error = load_error([{"prompt": "ok"}, "just text", 3])  # type: ignore[list-item]
    assert where(error.problems) == {(2, None), (3, None)}
    assert "has no rows" in str(load_error([]))
    assert "has no rows" in str(load_error(pd.DataFrame({"prompt": []})))


def test_jsonl_reports_every_bad_line() -> None:
    error = load_error('{"prompt": "a"}\n{bad\n\n[1]\n{"prompt": "b"}\n"text"', format="jsonl")
    assert where(error.problems) == {(2, None), (3, None), (5, None)}
    assert "line 2 is not valid JSON" in str(error)


def test_non_utf8_names_each_cell_with_offset_and_line() -> None:
    data = b"prompt,model\nok,nano-banana-2\ncaf\xe9,nano-banana-2\nfine,\xff\xfe\n"
    error = load_error(data)
    assert where(error.problems) == {(2, "prompt"), (3, "model")}
    first, second = error.problems
    e9, ff = data.index(b"\xe9"), data.index(b"\xff")
    assert "byte 0xE9" in first.reason and f"byte offset {e9}" in first.reason
    assert "line 3" in first.reason and "'é' in Windows-1252" in first.reason
    assert f"byte offset {ff}" in second.reason and "line 4" in second.reason
    assert "save the table as UTF-8" in str(error)


def test_non_utf8_with_bom_counts_offsets_from_file_start(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_bytes(b"\xef\xbb\xbfprompt\n\xe9\n")
    (problem,) = load_error(path).problems
    assert "byte offset 10" in problem.reason


def test_non_utf8_in_json_names_the_key() -> None:
    error = load_error(b'[{"prompt": "ok"}, {"prompt": "caf\xe9"}]')
    assert where(error.problems) == {(2, "prompt")}


def test_broken_quoting_names_the_line_where_the_cell_starts() -> None:
    text = 'prompt,model\n"multi\nline",a\nok,b\n"never closed,c\nmore,d\n'
    (problem,) = load_error(text).problems
    assert (problem.row, problem.column) == (3, "prompt")
    assert "starts on line 5" in problem.reason


def test_ragged_row_names_its_line() -> None:
    (problem,) = load_error('prompt,model\n"a\nb",x\nc,d,e\n').problems
    assert (problem.row, problem.column) == (2, "column 3")
    assert "line 4" in problem.reason and "has 3 cells but the header has 2" in problem.reason


def test_row_limit_on_load_and_plan() -> None:
    rows = [{"prompt": f"p{i}"} for i in range(5)]
    assert "more than 3 rows" in str(load_error(rows, max_rows=3))
    assert "more than 3 rows" in str(load_error("prompt\n" + "x\n" * 5, max_rows=3))
    result = plan_table(pd.DataFrame(rows), provider="toapis", defaults={}, max_rows=3)
    assert result.rows == [] and result.problems[0].row is None and "limit is 3" in result.problems[0].reason


# --- planning: fields, defaults, templates -------------------------------------------------------


def test_row_becomes_request_with_table_values_over_defaults() -> None:
    result = plan(
        [
            {"prompt": "a cat", "aspect_ratio": "", "resolution": "4k"},
            {"prompt": "a dog", "aspect_ratio": "1:1", "resolution": ""},
        ],
        defaults={"model": "nano-banana-pro", "aspect_ratio": "16:9", "resolution": "2K"},
    )
    assert not result.problems
    first, second = (r.request for r in result.rows)
    assert (first.model, first.aspect_ratio, first.resolution) == ("gemini-3-pro-image-preview", "16:9", "4K")
    assert (second.aspect_ratio, second.resolution) == ("1:1", "2K")


def test_default_model_and_provider_column_override() -> None:
    result = plan(
        [{"prompt": "a", "provider": ""}, {"prompt": "b", "provider": " TTAPI ", "model": "nano-banana"}],
        provider="toapis",
    )
    assert not result.problems
    assert [(r.request.provider, r.request.model) for r in result.rows] == [
        ("toapis", "gemini-3-pro-image-preview"),
        ("ttapi", "gemini-2.5-flash-image"),
    ]


def test_column_names_match_ignoring_case_and_spaces() -> None:
    result = plan(
        [
            {
                " PROMPT ": "a",
                "Aspect Ratio": "4:3",
                "Google-Image-Search": "yes",
                "google search": "yes",
                "Model": "nano-banana-2",
            }
        ]
    )
    assert not result.problems
    request = result.rows[0].request
    assert (request.aspect_ratio, request.google_search, request.image_search) == ("4:3", True, True)


def test_json_typed_values_are_accepted() -> None:
    result = plan('[{"prompt": "a", "model": "nano-banana-2", "variant": 2.0, "google_search": true}]')
    assert not result.problems
    assert (result.rows[0].request.variant, result.rows[0].request.google_search) == (2, True)


def test_prompt_template_fills_blank_prompts_only() -> None:
    result = plan(
        [
            {"prompt": "", "Subject": "fox", "style": "ink"},
            {"prompt": "verbatim {subject}", "Subject": "owl", "style": ""},
        ],
        prompt_template="A {subject} in {Style} style",
    )
    assert not result.problems
    assert [r.request.prompt for r in result.rows] == ["A fox in ink style", "verbatim {subject}"]
    assert result.rows[0].extra == {"Subject": "fox", "style": "ink"}


def test_prompt_template_missing_column_or_value_is_a_row_problem() -> None:
    result = plan(
        [
            {"prompt": "", "subject": "fox"},
            {"prompt": "", "subject": "", "model": "nano-banana-2"},
            {"prompt": "has one", "subject": ""},
        ],
        prompt_template="A {subject} by {artist}",
    )
    assert where(result.problems) == {(1, "artist"), (2, "subject"), (2, "artist")}
    assert result.invalid_rows == [1, 2]
    assert [r.row for r in result.rows] == [3]  # planned, but raise_if_invalid stops a run in fail mode
    assert "no 'artist' column" in str(result.problems[0])


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("A {subject", "not a valid template"),
        ("A {} cat", "positional field"),
        ("A {0} cat", "positional field"),
        ("A {subject.__class__}", "attribute and index access"),
        ("A {subject[0]}", "attribute and index access"),
        ("A {subject:>99999999}", "format specification"),
        ("A {subject:{style}}", "format specification"),
    ],
)
def test_bad_prompt_template_is_a_table_problem(template: str, message: str) -> None:
    result = plan([{"prompt": "", "subject": "fox", "style": "x"}], prompt_template=template)
    assert result.problems[0].row is None and result.problems[0].column == "prompt_template"
    assert message in result.problems[0].reason
    assert result.rows == []
    with pytest.raises(TableValidationError):
        result.raise_if_invalid()


def test_template_render_error_is_a_row_problem() -> None:
    result = plan([{"prompt": "", "subject": "fox"}], prompt_template="A {subject:d}")
    assert where(result.problems) == {(1, "prompt_template")}


def test_missing_prompt_column_is_one_table_problem() -> None:
    result = plan([{"model": "nano-banana-2"}, {"model": "nano-banana"}])
    (problem,) = result.problems
    assert (problem.row, problem.column) == (None, "prompt")
    assert "add one, or set prompt_template" in problem.reason
    hint = plan("prompt;model\na;b\n").problems[0].reason
    assert "';'- or tab-separated" in hint


def test_empty_prompts_with_default_prompt() -> None:
    result = plan([{"prompt": "", "variant": "1"}, {"prompt": "own"}], defaults={"prompt": "fallback"})
    assert [r.request.prompt for r in result.rows] == ["fallback", "own"]
    result = plan([{"prompt": " ", "model": "nano-banana-2"}])
    assert where(result.problems) == {(1, "prompt")}


def test_defaults_problems_are_table_problems() -> None:
    result = plan(
        [{"prompt": "a"}],
        defaults={"provider": "ttapi", "name": "x", "colour": "red", "variant": ["x"], "model": None},
    )
    assert where(result.problems) == {(None, "provider"), (None, "name"), (None, "colour"), (None, "variant")}
    assert result.rows == []


def test_bad_default_is_named_as_coming_from_defaults() -> None:
    result = plan([{"prompt": "a"}, {"prompt": "b", "aspect_ratio": "1:1"}], defaults={"aspect_ratio": "1:8"})
    assert where(result.problems) == {(1, "aspect_ratio")}
    assert "(from defaults)" in result.problems[0].reason
    assert [r.row for r in result.rows] == [2]


def test_passthrough_columns_are_kept_as_text() -> None:
    result = plan('[{"prompt": "a", "campaign": "q3", "tags": ["x", "y"], "count": 3, "note": null}]')
    assert result.rows[0].extra == {"campaign": "q3", "tags": '["x", "y"]', "count": "3", "note": ""}
    assert "campaign" not in result.rows[0].request.model_dump()


def test_duplicate_columns_are_a_table_problem() -> None:
    frame = pd.DataFrame([["a", "b"]], columns=["Prompt", "prompt "])
    result = plan_table(frame, provider="toapis", defaults={})
    assert where(result.problems) == {(None, "prompt")}
    assert "'Prompt' and 'prompt'" in result.problems[0].reason
    result = plan(
        [
            {
                "prompt": "a",
                "model": "nano-banana-2",
                "google_search": "1",
                "image_search": "1",
                "google_image_search": "1",
            }
        ]
    )
    assert where(result.problems) == {(None, "google_image_search")}
    assert plan("prompt,prompt\na,b\n").problems[0].row is None


def test_unnamed_columns() -> None:
    assert not plan("prompt,\na,\nb,\n").problems  # a trailing comma in every line
    assert where(plan("prompt,\na,x\n").problems) == {(None, "column 2")}


def test_blank_rows_are_ignored() -> None:
    result = plan("prompt,model\na,\n,\n  ,  \nb,\n")
    assert [r.row for r in result.rows] == [1, 4]
    assert result.blank_rows == [2, 3]
    assert plan(pd.DataFrame({"prompt": ["", " "]})).problems[0].reason == "the table has no rows"


def test_empty_dataframe_is_a_table_problem() -> None:
    result = plan_table(pd.DataFrame({"prompt": []}), provider="toapis", defaults={})
    assert result.problems == [RowProblem(None, None, "the table has no rows")]


# --- planning: bad values --------------------------------------------------------------------------


def test_wrong_types_name_row_and_column() -> None:
    result = plan(
        [
            {"prompt": "a", "model": "nano-banana-2", "variant": "abc"},
            {"prompt": "b", "model": "nano-banana-2", "google_search": "maybe"},
            {"prompt": "c", "model": "nano-banana-2", "variant": "1.5"},
            {"prompt": "d", "model": "nano-banana-2", "variant": "inf"},
        ]
    )
    assert where(result.problems) == {(1, "variant"), (2, "google_search"), (3, "variant"), (4, "variant")}
    assert "'maybe' is not a boolean" in str(TableValidationError(result.problems))


def test_unknown_model_and_provider() -> None:
    result = plan([{"prompt": "a", "model": "dall-e-3"}, {"prompt": "b", "provider": "openai"}])
    assert where(result.problems) == {(1, "model"), (2, "provider")}
    assert "allowed:" in result.problems[0].reason
    result = plan([{"prompt": "a"}], provider="nobody")
    assert "(from the provider argument)" in result.problems[0].reason


def test_all_problems_of_all_rows_are_reported_at_once() -> None:
    result = plan(
        [
            {
                "prompt": "",
                "model": "nano-banana-pro",
                "aspect_ratio": "1:8",
                "variant": "x",
                "name": "../up",
            },
            {
                "prompt": "ok",
                "model": "nano-banana-pro",
                "aspect_ratio": "16:9",
                "variant": "",
                "name": "good",
            },
            {"prompt": "b", "model": "nano-banana-pro", "aspect_ratio": "", "variant": "-2", "name": "CON"},
        ]
    )
    assert where(result.problems) == {
        (1, "prompt"),
        (1, "aspect_ratio"),
        (1, "variant"),
        (1, "name"),
        (3, "variant"),
        (3, "name"),
    }
    assert result.invalid_rows == [1, 3]
    with pytest.raises(TableValidationError) as info:
        result.raise_if_invalid()
    assert info.value.total_rows == 3
    assert "2 invalid row(s) of 3" in str(info.value)


def test_skip_mode_plans_the_valid_rows() -> None:
    rows = [{"prompt": "a", "aspect_ratio": "1:8"}, {"prompt": "b"}, {"prompt": "c", "variant": "x"}]
    result = plan(rows, on_invalid="skip")
    assert [r.row for r in result.rows] == [2]
    assert result.invalid_rows == [1, 3]
    result.raise_if_invalid()  # skipping is allowed: the problems are in the plan for the report
    assert problems_to_records(result.problems)[0] == {
        "row": 1,
        "column": "aspect_ratio",
        "reason": result.problems[0].reason,
    }


def test_skip_mode_still_stops_on_table_problems_or_when_nothing_is_left() -> None:
    with pytest.raises(TableValidationError):
        plan([{"prompt": "a"}], defaults={"colour": "red"}, on_invalid="skip").raise_if_invalid()
    with pytest.raises(TableValidationError):
        plan([{"prompt": "a", "variant": "x"}], on_invalid="skip").raise_if_invalid()


def test_huge_cell_is_a_row_problem(tmp_path: Path) -> None:
    path = tmp_path / "huge.csv"
    path.write_text(f"prompt,note\nfine,\n{'x' * 100_001},\nok,{'y' * 100_001}\n", encoding="utf-8")
    result = plan_table(load_table(path), provider="toapis", defaults={}, on_invalid="skip")
    assert where(result.problems) == {(2, "prompt"), (3, "note")}
    assert "100001 characters; the limit is 100000" in result.problems[0].reason
    assert [r.row for r in result.rows] == [1]


def test_model_prompt_limit_is_checked() -> None:
    result = plan([{"prompt": "x" * 1001, "model": "gemini-2.5-flash-image"}])
    assert where(result.problems) == {(1, "prompt")}
    assert "at most 1000" in result.problems[0].reason


def test_nul_and_surrogates_in_cells() -> None:
    result = plan([{"prompt": "a\x00b"}, {"prompt": "ok", "note": "bad \udce9"}])
    assert where(result.problems) == {(1, "prompt"), (2, "note")}


def test_list_in_a_scalar_column_is_a_row_problem() -> None:
    result = plan([{"prompt": ["a", "b"]}, {"prompt": "x", "model": {"id": 1}}])
    assert where(result.problems) == {(1, "prompt"), (2, "model")}


def test_provider_options() -> None:
    result = plan(
        [
            {"prompt": "a", "model": "gemini-3-pro-image-preview", "thinking_level": "high"},
            {"prompt": "b", "model": "nano-banana-2", "image_search": "true"},
            {"prompt": "c", "model": "nano-banana-pro-official", "thinking_level": "high"},
            {"prompt": "d", "model": "nano-banana-pro", "orientation": "Portrait"},
        ]
    )
    assert where(result.problems) == {(1, "thinking_level"), (2, "image_search")}
    assert [r.request.thinking_level for r in result.rows if r.row == 3] == ["HIGH"]
    assert [r.request.orientation for r in result.rows if r.row == 4] == ["portrait"]


# --- planning: names, duplicates and collisions -------------------------------------------------


def test_default_name_template() -> None:
    result = plan([{"prompt": "a"}, {"prompt": "b"}])
    assert DEFAULT_NAME_TEMPLATE == "{row:05d}-{row_key8}"
    assert [r.name for r in result.rows] == [f"{r.row:05d}-{r.request.row_key[:8]}" for r in result.rows]


def test_name_template_fields_and_explicit_names() -> None:
    result = plan(
        [
            {"prompt": "a", "Subject": "fox", "name": ""},
            {"prompt": "b", "Subject": "owl", "name": "explicit/Owl.PNG"},
        ],
        defaults={"model": "nano-banana-2"},
        name_template="{model}/{subject}-{row:03d}-{row_key}",
    )
    assert not result.problems
    first, second = result.rows
    assert first.name == f"gemini-3.1-flash-image-preview/fox-001-{first.request.row_key}"
    assert second.name == "explicit/Owl"


def test_name_template_unknown_field_is_a_table_problem() -> None:
    result = plan([{"prompt": "a"}], name_template="{nothing}-{row}")
    assert where(result.problems) == {(None, "name_template")}


def test_name_from_template_is_checked_too() -> None:
    result = plan(
        [{"prompt": "a", "subject": "../../etc"}, {"prompt": "b", "subject": "ok"}], name_template="{subject}"
    )
    assert where(result.problems) == {(1, "name")}
    assert "(rendered from name_template)" in result.problems[0].reason


@pytest.mark.parametrize(
    "name",
    [
        "../evil",
        "a/../../b",
        "a/./b",
        "/abs",
        "C:/windows",
        "a\\b",
        "a//b",
        "a/",
        "nul\x00",
        "line\nbreak",
        "CON",
        "sub/lpt1.txt",
        "Aux",
        ".hidden",
        "trailing.",
        "trailing ",
        "what?",
        'quote"d',
        "pipe|d",
        "x" * (MAX_NAME_CHARS + 1),
        " ",
    ],
)
def test_unsafe_names_are_refused(name: str) -> None:
    assert name_problem(name) is not None
    result = plan([{"prompt": "a", "name": name}])
    if name == name.strip():  # a name cell is stripped of surrounding spaces first
        assert where(result.problems) == {(1, "name")}


@pytest.mark.parametrize(
    "name", ["cat", "posters/cat-01", "a b/c_d.e", "ünïcödé/猫", "x" * MAX_NAME_CHARS, "console"]
)
def test_safe_names_are_accepted(name: str) -> None:
    assert name_problem(name) is None


def test_duplicate_rows_are_generated_once() -> None:
    result = plan(
        [
            {"prompt": "same", "name": "first"},
            {"prompt": "other"},
            {"prompt": " same ", "name": "second"},
            {"prompt": "same", "variant": "1"},
            {"prompt": "same", "name": ""},
        ]
    )
    assert not result.problems
    assert [r.row for r in result.rows] == [1, 2, 4]
    assert result.duplicates == [(3, 1), (5, 1)]


def test_name_collisions_name_both_rows() -> None:
    result = plan(
        [
            {"prompt": "a", "name": "shared"},
            {"prompt": "b", "name": "other"},
            {"prompt": "c", "name": "Shared.png"},
        ],
        on_invalid="skip",
    )
    (problem,) = result.problems
    assert (problem.row, problem.column) == (3, "name")
    assert "row 1" in problem.reason and "ignoring case" in problem.reason
    assert [r.row for r in result.rows] == [1, 2]


# --- planning: reference images -------------------------------------------------------------------


@pytest.fixture
def refs(tmp_path: Path) -> Path:
    base = tmp_path / "refs"
    write_png(base / "a.png")
    write_png(base / "sub" / "b.png", (0, 0, 255))
    write_png(tmp_path / "outside.png")
    (base / "inside-link.png").symlink_to(base / "a.png")
    (base / "outside-link.png").symlink_to(tmp_path / "outside.png")
    (base / "dir-link").symlink_to(tmp_path, target_is_directory=True)
    return base


def test_reference_forms(refs: Path) -> None:
    url = "https://example.com/x.png"
    rows = [
        {"prompt": "1", "reference_images": f"a.png | {url}"},
        {"prompt": "2", "reference_images": json.dumps(["sub/b.png", url])},
        {"prompt": "3", "reference_images": [str(refs / "a.png")]},
        {"prompt": "4", "reference_images": "sub/../a.png|inside-link.png"},
    ]
    result = plan(rows, reference_base_dir=str(refs))
    assert not result.problems
    by_row = {r.row: r.request for r in result.rows}
    assert by_row[1].reference_images == (str(refs / "a.png"), url)
    assert by_row[1].reference_digests == (file_sha256(refs / "a.png"), url)
    assert by_row[2].reference_images == (str(refs / "sub" / "b.png"), url)
    assert by_row[3].reference_images == (str(refs / "a.png"),)
    assert by_row[4].reference_images == (str(refs / "a.png"), str(refs / "a.png"))


def test_same_reference_content_is_the_same_image(refs: Path) -> None:
    shutil.copy(refs / "a.png", refs / "copy.png")
    result = plan(
        [{"prompt": "p", "reference_images": "a.png"}, {"prompt": "p", "reference_images": "copy.png"}],
        reference_base_dir=refs,
    )
    assert result.duplicates == [(2, 1)]


def test_references_outside_the_base_dir_are_refused(refs: Path) -> None:
    rows = [
        {"prompt": "1", "reference_images": "../outside.png"},
        {"prompt": "2", "reference_images": str(refs.parent / "outside.png")},
        {"prompt": "3", "reference_images": "outside-link.png"},
        {"prompt": "4", "reference_images": "dir-link/outside.png"},
        {"prompt": "5", "reference_images": "a.png"},
    ]
    result = plan(rows, reference_base_dir=str(refs), on_invalid="skip")
    assert where(result.problems) == {(n, "reference_images") for n in (1, 2, 3, 4)}
    assert all("outside reference_base_dir" in p.reason for p in result.problems)
    assert [r.row for r in result.rows] == [5]


def test_local_reference_without_base_dir_is_refused(refs: Path) -> None:
    result = plan(
        [
            {"prompt": "a", "reference_images": str(refs / "a.png")},
            {"prompt": "b", "reference_images": "https://x.test/a.png"},
        ]
    )
    assert where(result.problems) == {(1, "reference_images")}
    assert "set reference_base_dir" in result.problems[0].reason
    result = plan([{"prompt": "a", "reference_images": "a.png"}], reference_base_dir=refs / "nope")
    assert "does not exist" in result.problems[0].reason


def test_bad_reference_files(refs: Path) -> None:
    (refs / "notes.txt").write_text("text", encoding="utf-8")
    with open(refs / "huge.png", "wb") as fh:
        fh.truncate(MAX_REFERENCE_BYTES + 1)  # sparse: nothing is written
    (refs / "folder.png").mkdir()
    rows = [
        {"prompt": "1", "reference_images": "missing.png"},
        {"prompt": "2", "reference_images": "notes.txt"},
        {"prompt": "3", "reference_images": "huge.png"},
        {"prompt": "4", "reference_images": "folder.png"},
        {"prompt": "5", "reference_images": "s3://bucket/a.png"},
        {"prompt": "6", "reference_images": "[not json"},
        {"prompt": "7", "reference_images": "[1, 2]"},
    ]
    result = plan(rows, reference_base_dir=refs)
    reasons = {p.row: p.reason for p in result.problems}
    assert set(reasons) == {1, 2, 3, 4, 5, 6, 7}
    assert all(p.column == "reference_images" for p in result.problems)
    assert "cannot read" in reasons[1]
    assert "must be a .jpg" in reasons[2]
    assert "the limit is 10 MB" in reasons[3]
    assert "neither an http(s) URL" in reasons[5]
    assert "not valid JSON" in reasons[6]


def test_too_many_references_and_default_references(refs: Path) -> None:
    urls = "|".join(f"https://x.test/{i}.png" for i in range(4))
    result = plan([{"prompt": "a", "model": "nano-banana-official", "reference_images": urls}])
    assert where(result.problems) == {(1, "reference_images")}
    result = plan(
        [{"prompt": "a"}, {"prompt": "b", "reference_images": "https://x.test/own.png"}],
        defaults={"reference_images": ["a.png"]},
        reference_base_dir=refs,
    )
    assert [r.request.reference_images for r in result.rows] == [
        (str(refs / "a.png"),),
        ("https://x.test/own.png",),
    ]


# --- planned rows ---------------------------------------------------------------------------------


def test_planned_row_round_trips_through_json(refs: Path) -> None:
    result = plan(
        [{"prompt": "a", "reference_images": "a.png", "campaign": "q3", "name": "posters/a"}],
        reference_base_dir=refs,
    )
    row = result.rows[0]
    text = json.dumps(row.to_dict())
    os.remove(refs / "a.png")  # rebuilding must not read the reference again
    again = PlannedRow.from_dict(json.loads(text))
    assert again == row
    assert again.row_key == row.request.row_key


# --- the example table ----------------------------------------------------------------------------


def test_example_table() -> None:
    frame = load_table(EXAMPLES / "prompts.csv")
    assert list(frame.columns)[:7] == [
        "provider",
        "prompt",
        "model",
        "aspect_ratio",
        "resolution",
        "reference_images",
        "name",
    ]
    result = plan_table(
        frame,
        provider="toapis",
        defaults={},
        prompt_template="A {subject} in {style} style",
        reference_base_dir=str(EXAMPLES),
        on_invalid="skip",
    )
    assert result.total_rows >= 12
    (problem,) = result.problems
    assert (problem.column, "1:8") == ("aspect_ratio", problem.reason[1:4])
    assert len(result.rows) == result.total_rows - 1
    result.raise_if_invalid()
    requests = [r.request for r in result.rows]
    assert {r.provider for r in requests} == {"toapis", "ttapi"}
    assert {r.spec.family for r in requests} == {
        "gemini-3-pro-image",
        "gemini-3.1-flash-image",
        "gemini-2.5-flash-image",
    }
    assert len({r.aspect_ratio for r in requests}) >= 5 and len({r.resolution for r in requests}) >= 3
    assert [r.reference_images for r in requests if r.reference_images] == [
        (str(EXAMPLES / "refs" / "banana.png"),)
    ]
    assert sum(r.extra["subject"] != "" for r in result.rows) >= 3
    assert any(r.request.prompt == "A robot chef in watercolor style" for r in result.rows)


# --- the corpus of bad tables --------------------------------------------------------------------

BAD_TABLES: dict[str, tuple[dict[str, Any], set[tuple[int | None, str | None]]]] = {
    "missing_prompt_column.csv": ({}, {(None, "prompt")}),
    "missing_template_column.csv": (
        {"prompt_template": "A {subject} by {artist}"},
        {(1, "artist"), (3, "subject"), (3, "artist")},
    ),
    "empty_prompt.csv": ({}, {(2, "prompt")}),
    "unknown_model.csv": ({}, {(1, "model")}),
    "unknown_provider.csv": ({}, {(1, "provider")}),
    "ratio_model_lacks.csv": ({}, {(2, "aspect_ratio"), (3, "aspect_ratio")}),
    "resolution_model_lacks.csv": ({}, {(1, "resolution"), (2, "resolution")}),
    "too_many_references.csv": ({}, {(1, "reference_images")}),
    "unreadable_reference.csv": ({}, {(1, "reference_images"), (2, "reference_images")}),
    "oversized_reference.csv": ({}, {(1, "reference_images")}),
    "reference_outside_base.csv": ({}, {(1, "reference_images"), (2, "reference_images")}),
    "reference_symlink_escape.csv": ({}, {(1, "reference_images")}),
    "name_escapes_output.csv": ({}, {(n, "name") for n in (1, 2, 3, 4)}),
    "unsafe_names.csv": ({}, {(n, "name") for n in (1, 2, 3, 4)}),
    "name_collision.csv": ({}, {(3, "name")}),
    "wrong_types.csv": ({}, {(1, "variant"), (2, "google_search"), (3, "variant"), (4, "orientation")}),
    "option_model_lacks.csv": ({}, {(1, "thinking_level"), (2, "image_search")}),
    "broken_quoting.csv": ({}, {(2, "prompt")}),
    "ragged_row.csv": ({}, {(2, "column 3")}),
    "non_utf8.csv": ({}, {(2, "prompt")}),
    "bad_lines.jsonl": ({}, {(2, None), (3, None)}),
    "huge_cell.csv": ({}, {(2, "prompt")}),
}
GENERATED = {"huge_cell.csv", "refs/huge.png", "refs/link-outside.png"}


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    """A copy of the corpus plus the files too big or too machine-specific to commit."""
    base = tmp_path / "bad_tables"
    shutil.copytree(CORPUS, base)
    (base / "huge_cell.csv").write_text(f"prompt\nfine\n{'x' * 100_001}\n", encoding="utf-8")
    with open(base / "refs" / "huge.png", "wb") as fh:
        fh.truncate(MAX_REFERENCE_BYTES + 1)
    (base / "refs" / "link-outside.png").symlink_to(write_png(tmp_path / "secret.png"))
    return base


def test_every_corpus_file_has_a_case() -> None:
    files = {p.relative_to(CORPUS).as_posix() for p in CORPUS.rglob("*") if p.is_file()}
    assert files - {"refs/notes.txt"} == set(BAD_TABLES) - GENERATED


@pytest.mark.parametrize("name", sorted(BAD_TABLES))
def test_bad_table(corpus: Path, name: str) -> None:
    options, expected = BAD_TABLES[name]
    with pytest.raises(TableValidationError) as info:
        frame = load_table(corpus / name)
        result = plan_table(frame, provider="toapis", defaults={}, reference_base_dir=str(corpus), **options)
        result.raise_if_invalid()
    error = info.value
    assert where(error.problems) == expected
    text = str(error)
    for row, column in expected:
        prefix = f"row {row}" if row is not None else "table"
        assert (f"{prefix}, column '{column}'" if column else f"{prefix}:") in text
