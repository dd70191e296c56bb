"""Credentials blocks: Prefect's standard block suite, client building, and the secret staying secret."""

from __future__ import annotations

from pathlib import Path

import pytest
from nb_testing import FAKE_KEY
from PIL import Image
from prefect.testing.standard_test_suites import BlockStandardTestSuite

import prefect_nanobanana
from prefect_nanobanana import ToAPIsCredentials, TTAPICredentials
from prefect_nanobanana.providers.toapis import ToAPIsClient
from prefect_nanobanana.providers.ttapi import TTAPIClient

LOGO = Path(prefect_nanobanana.__file__).parent / "assets" / "logo.png"


class _Suite(BlockStandardTestSuite):
    def test_has_a_valid_image(self, block: type) -> None:  # type: ignore[override]
        # The standard check downloads the logo; there is no network here, so check the logo we ship
        # and that the block points at it.
        assert block._logo_url is not None and str(block._logo_url).endswith(
            "prefect_nanobanana/assets/logo.png"
        )
        with Image.open(LOGO) as image:
            assert image.width == image.height
            assert 1000 > image.width > 45


class TestToAPIsCredentials(_Suite):
    @pytest.fixture
    def block(self) -> type:
        return ToAPIsCredentials


class TestTTAPICredentials(_Suite):
    @pytest.fixture
    def block(self) -> type:
        return TTAPICredentials


def test_toapis_block_builds_a_configured_client() -> None:
    creds = ToAPIsCredentials(
        api_key=FAKE_KEY, base_url="http://127.0.0.1:9/v1", submit_rate=7, poll_first_delay=1
    )
    client = creds.get_client()
    assert isinstance(client, ToAPIsClient)
    assert client.poll_policy.first_delay == 1
    assert (
        FAKE_KEY not in repr(client)
        and FAKE_KEY not in repr(creds)
        and FAKE_KEY not in str(creds.model_dump())
    )


def test_ttapi_block_builds_a_configured_client() -> None:
    creds = TTAPICredentials(api_key=FAKE_KEY)
    client = creds.get_client()
    assert isinstance(client, TTAPIClient)
    assert FAKE_KEY not in repr(client) and FAKE_KEY not in repr(creds)


def test_blocks_are_found_through_the_collections_entry_point() -> None:
    from importlib.metadata import entry_points

    names = {ep.value for ep in entry_points(group="prefect.collections")}
    assert "prefect_nanobanana" in names
    from prefect.blocks.core import Block

    registered = [
        c for c in vars(prefect_nanobanana).values() if isinstance(c, type) and Block.is_block_class(c)
    ]
    assert {c.get_block_type_slug() for c in registered} == {"toapis-credentials", "ttapi-credentials"}
