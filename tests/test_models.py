"""Request validation: one test per documented rule (catalog.py / models.py), and the row key.

Each refusal must name the field, the offending value and what is allowed, so that a user can fix the
row from the message alone.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from prefect_nanobanana.catalog import ALL_RATIOS, EXTREME_RATIOS, STANDARD_RATIOS, resolve_model
from prefect_nanobanana.errors import RequestValidationError
from prefect_nanobanana.models import ImageJob, ImageRequest, JobResult, JobStatus, normalize_request_fields


def make(**fields: Any) -> ImageRequest:
    fields.setdefault("provider", "toapis")
    fields.setdefault("prompt", "a cat on a banana")
    fields.setdefault("model", "gemini-3-pro-image-preview")
    return ImageRequest(**fields)


def refused(**fields: Any) -> RequestValidationError:
    with pytest.raises(RequestValidationError) as info:
        make(**fields)
    return info.value


def image_file(path: Path, color: tuple[int, int, int] = (10, 20, 30), fmt: str = "PNG") -> Path:
    Image.new("RGB", (8, 8), color).save(path, format=fmt)
    return path


# --- aspect ratios ---------------------------------------------------------------------------------


@pytest.mark.parametrize("ratio", EXTREME_RATIOS)
def test_extreme_ratios_only_on_31_flash(ratio: str) -> None:
    assert make(model="gemini-3.1-flash-image-preview", aspect_ratio=ratio).aspect_ratio == ratio
    assert (
        make(provider="ttapi", model="gemini-3.1-flash-image-preview", aspect_ratio=ratio).aspect_ratio
        == ratio
    )
    for provider, model in [
        ("toapis", "gemini-3-pro-image-preview"),
        ("toapis", "gemini-2.5-flash-image-preview"),
        ("toapis", "gemini-3-pro-image-preview-official"),
        ("ttapi", "gemini-3-pro-image-preview"),
    ]:
        error = refused(provider=provider, model=model, aspect_ratio=ratio)
        assert error.field == "aspect_ratio"
        assert error.value == ratio
        assert "aspect_ratio" in error.message and ratio in error.message
        assert "16:9" in error.message and ratio not in (error.allowed or [])


def test_31_official_takes_4_1_and_8_1_but_not_1_4_or_1_8() -> None:
    model = "gemini-3.1-flash-image-preview-official"
    assert make(model=model, aspect_ratio="4:1").aspect_ratio == "4:1"
    assert make(model=model, aspect_ratio="8:1").aspect_ratio == "8:1"
    for ratio in ("1:4", "1:8"):
        error = refused(model=model, aspect_ratio=ratio)
        assert error.field == "aspect_ratio"
        assert "8:1" in error.message


def test_toapis_25_flash_takes_seven_ratios() -> None:
    for ratio in ("1:1", "16:9", "9:16", "4:3", "3:4", "3:2", "2:3"):
        make(model="nano-banana", aspect_ratio=ratio)
    error = refused(model="nano-banana", aspect_ratio="21:9")
    assert error.field == "aspect_ratio"
    assert error.allowed == ["1:1", "16:9", "9:16", "4:3", "3:4", "3:2", "2:3"]


def test_ttapi_aspect_ratio_only_for_gemini_3_and_later() -> None:
    for model in ("gemini-2.5-flash-image", "gemini-2.5-flash-image-preview"):
        error = refused(provider="ttapi", model=model, aspect_ratio="1:1")
        assert error.field == "aspect_ratio"
        assert "gemini-3 and later" in error.message
    assert (
        make(provider="ttapi", model="gemini-3-pro-image-preview", aspect_ratio="21:9").aspect_ratio == "21:9"
    )


def test_aspect_ratio_spelling_is_normalized() -> None:
    assert make(aspect_ratio=" 16 / 9 ").aspect_ratio == "16:9"
    assert set(ALL_RATIOS) == set(STANDARD_RATIOS) | set(EXTREME_RATIOS)


# --- resolutions -----------------------------------------------------------------------------------


def test_half_k_only_on_31_flash_at_toapis() -> None:
    assert make(model="gemini-3.1-flash-image-preview", resolution="0.5K").resolution == "0.5K"
    assert make(model="gemini-3.1-flash-image-preview", resolution="512").resolution == "0.5K"
    for provider, model in [
        ("toapis", "gemini-3-pro-image-preview"),
        ("toapis", "gemini-3.1-flash-image-preview-official"),
        ("ttapi", "gemini-3.1-flash-image-preview"),
    ]:
        error = refused(provider=provider, model=model, resolution="0.5K")
        assert error.field == "resolution"
        assert "0.5K" in error.message and "1K, 2K, 4K" in error.message


def test_25_flash_only_1k_at_toapis() -> None:
    assert make(model="nano-banana", resolution="1k").resolution == "1K"
    for size in ("2K", "4K"):
        error = refused(model="nano-banana", resolution=size)
        assert error.field == "resolution"
        assert error.allowed == ["1K"]
        assert "allowed: 1K" in error.message


def test_models_without_sizes_take_none_and_1k_means_default() -> None:
    assert make(model="gemini-2.5-flash-image-official", resolution="1K").resolution is None
    error = refused(model="gemini-2.5-flash-image-official", resolution="2K")
    assert error.field == "resolution"
    assert "one size" in error.message


def test_resolution_case_and_default() -> None:
    assert make(resolution="4k").resolution == "4K"
    assert make().resolution == "1K"
    error = refused(resolution="8K")
    assert error.field == "resolution" and "1K, 2K, 4K" in error.message


# --- references ------------------------------------------------------------------------------------


def test_at_most_14_references() -> None:
    urls = tuple(f"https://example.com/{i}.png" for i in range(15))
    assert len(make(reference_images=urls[:14]).reference_images) == 14
    error = refused(reference_images=urls)
    assert error.field == "reference_images"
    assert "15 images" in error.message and "at most 14" in error.message


def test_at_most_3_references_on_25_official() -> None:
    urls = tuple(f"https://example.com/{i}.png" for i in range(4))
    make(model="gemini-2.5-flash-image-official", reference_images=urls[:3])
    error = refused(model="gemini-2.5-flash-image-official", reference_images=urls)
    assert error.field == "reference_images"
    assert "at most 3" in error.message


def test_reference_file_missing_or_unreadable(tmp_path: Path) -> None:
    error = refused(reference_images=(str(tmp_path / "missing.png"),))
    assert error.field == "reference_images"
    assert "missing.png" in error.message and "cannot read" in error.message
    folder = tmp_path / "folder.png"
    folder.mkdir()
    error = refused(reference_images=(str(folder),))
    assert error.field == "reference_images" and "cannot read" in error.message


def test_reference_file_oversized(tmp_path: Path) -> None:
    big = tmp_path / "big.png"
    big.write_bytes(b"\0" * (10 * 1024 * 1024 + 1))
    error = refused(reference_images=(str(big),))
    assert error.field == "reference_images"
    assert "10 MB" in error.message


@pytest.mark.parametrize("name", ["anim.gif", "scan.tiff", "notes.txt", "noext"])
def test_reference_file_wrong_type(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.write_bytes(b"whatever")
    error = refused(reference_images=(str(path),))
    assert error.field == "reference_images"
    assert ".jpg, .jpeg, .png, .webp" in error.message
    assert error.allowed == [".jpg", ".jpeg", ".png", ".webp"]


def test_reference_data_uris_and_other_schemes_are_refused() -> None:
    for ref in ("data:image/png;base64,AAAA", "s3://bucket/a.png", "ftp://host/a.png"):
        error = refused(reference_images=(ref,))
        assert error.field == "reference_images"
        assert "neither an http(s) URL nor a local file path" in error.message


def test_references_from_a_pipe_separated_cell(tmp_path: Path) -> None:
    local = image_file(tmp_path / "a.png")
    request = make(reference_images=f"https://example.com/x.png | {local}")
    assert request.reference_images == ("https://example.com/x.png", str(local))
    assert request.local_references() == [str(local)]
    assert len(request.reference_digests) == 2


# --- options ---------------------------------------------------------------------------------------


def test_thinking_level_only_where_documented() -> None:
    assert make(model="nano-banana-pro-official", thinking_level="low").thinking_level == "LOW"
    assert make(model="nano-banana-2-official", thinking_level="Minimal").thinking_level == "MINIMAL"
    assert make(provider="ttapi", model="nano-banana-2", thinking_level="high").thinking_level == "High"
    for provider, model in [
        ("toapis", "gemini-3-pro-image-preview"),
        ("toapis", "gemini-3.1-flash-image-preview"),
        ("toapis", "gemini-2.5-flash-image-official"),
        ("ttapi", "gemini-3-pro-image-preview"),
        ("ttapi", "gemini-2.5-flash-image"),
    ]:
        error = refused(provider=provider, model=model, thinking_level="High")
        assert error.field == "thinking_level"
        assert "documented only for" in error.message


def test_thinking_level_values() -> None:
    error = refused(model="nano-banana-pro-official", thinking_level="extreme")
    assert error.field == "thinking_level"
    assert error.allowed == ["MINIMAL", "LOW", "MEDIUM", "HIGH"]
    assert "MINIMAL, LOW, MEDIUM, HIGH" in error.message
    error = refused(provider="ttapi", model="nano-banana-2", thinking_level="medium")
    assert error.allowed == ["Minimal", "High"]


def test_orientation_only_on_3_pro_and_25_at_toapis() -> None:
    assert make(orientation="Portrait").orientation == "portrait"
    assert make(model="nano-banana", orientation="landscape").orientation == "landscape"
    for provider, model in [
        ("toapis", "gemini-3.1-flash-image-preview"),
        ("toapis", "gemini-3-pro-image-preview-official"),
        ("ttapi", "gemini-3-pro-image-preview"),
    ]:
        error = refused(provider=provider, model=model, orientation="portrait")
        assert error.field == "orientation"
        assert "gemini-3-pro-image-preview" in error.message or provider == "ttapi"
    error = refused(orientation="diagonal")
    assert error.field == "orientation" and error.allowed == ["landscape", "portrait"]


def test_google_search_only_on_31_flash_at_toapis() -> None:
    assert make(model="nano-banana-2", google_search="true").google_search is True
    error = refused(google_search=True)
    assert error.field == "google_search"
    assert "gemini-3.1-flash-image-preview" in error.message
    # "false" for an option the model lacks asks for nothing and is dropped.
    assert make(google_search=False).google_search is None
    assert make(provider="ttapi", google_search=True).google_search is True


def test_image_search_needs_google_search() -> None:
    error = refused(model="nano-banana-2", image_search=True)
    assert error.field == "image_search"
    assert "google_search: true" in error.message
    assert make(model="nano-banana-2", image_search=True, google_search=True).image_search is True
    assert make(model="nano-banana-2", google_image_search="yes", google_search="1").image_search is True
    error = refused(provider="ttapi", image_search=True, google_search=True)
    assert error.field == "image_search"


def test_booleans_must_be_booleans() -> None:
    error = refused(model="nano-banana-2", google_search="maybe")
    assert error.field == "google_search"
    assert "true or false" in error.message


# --- model, prompt, provider, variant --------------------------------------------------------------


@pytest.mark.parametrize(
    ("provider", "name", "canonical"),
    [
        ("toapis", "nano-banana-pro", "gemini-3-pro-image-preview"),
        ("toapis", "Nano-Banana-2", "gemini-3.1-flash-image-preview"),
        ("toapis", "nano-banana", "gemini-2.5-flash-image-preview"),
        ("toapis", "gemini-2.5-flash-image", "gemini-2.5-flash-image-preview"),
        ("toapis", "nano-banana-2-lite-official", "gemini-3.1-flash-image-preview-official"),
        ("toapis", " GEMINI-3-PRO-IMAGE-PREVIEW ", "gemini-3-pro-image-preview"),
        ("ttapi", "nano-banana", "gemini-2.5-flash-image"),
        ("ttapi", "nano-banana-2", "gemini-3.1-flash-image-preview"),
        ("ttapi", "gemini-2.5-flash-image-preview", "gemini-2.5-flash-image-preview"),
    ],
)
def test_alias_normalization(provider: str, name: str, canonical: str) -> None:
    assert make(provider=provider, model=name).model == canonical
    assert resolve_model(provider, name) is not None  # type: ignore[arg-type]


def test_unknown_model_lists_the_allowed_ids_and_aliases() -> None:
    error = refused(model="gemini-1.0-image")
    assert error.field == "model"
    assert "gemini-3-pro-image-preview" in error.message and "nano-banana-pro" in error.message
    error = refused(provider="ttapi", model="gemini-3-pro-image-preview-official")
    assert error.field == "model"
    assert error.allowed == [
        "gemini-2.5-flash-image",
        "gemini-2.5-flash-image-preview",
        "gemini-3-pro-image-preview",
        "gemini-3.1-flash-image-preview",
    ]


def test_unknown_provider() -> None:
    error = refused(provider="midjourney")
    assert error.field == "provider"
    assert "toapis, ttapi" in error.message


def test_prompt_required_and_25_flash_length_limit_at_toapis() -> None:
    for prompt in ("", "   "):
        error = refused(prompt=prompt)
        assert error.field == "prompt"
    assert make(prompt="  padded  ").prompt == "padded"
    error = refused(model="nano-banana", prompt="x" * 1001)
    assert error.field == "prompt" and "at most 1000" in error.message
    assert make(model="nano-banana-pro", prompt="x" * 5000)


def test_variant_must_be_a_whole_number() -> None:
    for value in (-1, 1.5, "two"):
        error = refused(variant=value)
        assert error.field == "variant"
    assert make(variant="3").variant == 3


def test_every_problem_of_a_row_is_reported_at_once() -> None:
    _, problems = normalize_request_fields(
        {
            "provider": "toapis",
            "prompt": "x",
            "model": "nano-banana",
            "resolution": "4K",
            "aspect_ratio": "21:9",
            "variant": -2,
        }
    )
    assert {p.field for p in problems} == {"resolution", "aspect_ratio", "variant"}
    with pytest.raises(RequestValidationError) as info:
        make(model="nano-banana", resolution="4K", aspect_ratio="21:9")
    assert "resolution" in info.value.message and "aspect_ratio" in info.value.message


def test_unknown_fields_are_refused() -> None:
    with pytest.raises(ValueError):
        make(colour="blue")


# --- row key ---------------------------------------------------------------------------------------


def test_row_key_is_stable_and_usable_as_an_id() -> None:
    key = make().row_key
    assert key == make().row_key
    assert len(key) == 32 and all(c in "0123456789abcdef" for c in key)
    # The same image asked for in different spellings is the same row.
    assert make(model="nano-banana-pro", prompt="  a cat on a banana ", resolution="1k").row_key == key
    assert make(google_search=False).row_key == key  # "false" for an option the model lacks


def test_row_key_survives_a_json_round_trip() -> None:
    request = make(aspect_ratio="16:9", reference_images=("https://example.com/a.png",))
    again = ImageRequest.model_validate(json.loads(request.model_dump_json()))
    assert again.row_key == request.row_key


@pytest.mark.parametrize(
    "change",
    [
        {"prompt": "a dog on a banana"},
        {"model": "nano-banana-2"},
        {"provider": "ttapi"},
        {"aspect_ratio": "16:9"},
        {"resolution": "2K"},
        {"orientation": "portrait"},
        {"reference_images": ("https://example.com/a.png",)},
        {"variant": 1},
    ],
)
def test_row_key_changes_with_every_image_changing_field(change: dict[str, Any]) -> None:
    assert make(**change).row_key != make().row_key


def test_row_key_changes_with_search_and_thinking_options() -> None:
    base = make(model="nano-banana-2")
    assert make(model="nano-banana-2", google_search=True).row_key != base.row_key
    assert (
        make(model="nano-banana-2", google_search=True, image_search=True).row_key
        != make(model="nano-banana-2", google_search=True).row_key
    )
    assert (
        make(model="nano-banana-2-official", thinking_level="HIGH").row_key
        != make(model="nano-banana-2-official").row_key
    )


def test_row_key_follows_local_reference_content_not_path(tmp_path: Path) -> None:
    first = image_file(tmp_path / "a.png", (1, 2, 3))
    same_content = tmp_path / "elsewhere" / "renamed.png"
    same_content.parent.mkdir()
    same_content.write_bytes(first.read_bytes())
    key = make(reference_images=(str(first),)).row_key
    assert make(reference_images=(str(same_content),)).row_key == key
    image_file(first, (200, 100, 0))  # same path, new content
    assert make(reference_images=(str(first),)).row_key != key


def test_row_key_follows_reference_order(tmp_path: Path) -> None:
    a = image_file(tmp_path / "a.png", (1, 1, 1))
    b = image_file(tmp_path / "b.png", (2, 2, 2))
    assert make(reference_images=(str(a), str(b))).row_key != make(reference_images=(str(b), str(a))).row_key


# --- records ---------------------------------------------------------------------------------------


def test_job_status_terminal() -> None:
    assert {s for s in JobStatus if s.terminal} == {JobStatus.SUCCEEDED, JobStatus.FAILED}


def test_records_are_json_serializable() -> None:
    result = JobResult(provider="toapis", job_id="t", image_url="https://x/a.png", cost_usd=0.02)
    job = ImageJob(provider="toapis", job_id="t", row_key="r", model="m", result=result)
    assert ImageJob.model_validate_json(job.model_dump_json()) == job
