"""Credentials blocks for ToAPIs and TTAPI.

The API key is a `SecretStr`: Prefect stores it encrypted, the UI masks it, and it reaches only the
provider client's request headers, never a log line, a parameter, a result or an error message.
"""

from __future__ import annotations

import os
from typing import Any, ClassVar, Union

from prefect.blocks.abstract import CredentialsBlock
from pydantic import Field, SecretStr

from ..catalog import ProviderName
from ..providers.base import ImageProvider, PollPolicy
from ..providers.toapis import ToAPIsClient
from ..providers.ttapi import TTAPIClient

LOGO_URL = "https://raw.githubusercontent.com/prefect-nanobanana/prefect-nanobanana/main/prefect_nanobanana/assets/logo.png"


class ToAPIsCredentials(CredentialsBlock):
    """Credentials and connection settings for the ToAPIs image API (Nano Banana models).

    Example:
        Load stored credentials and generate one image:
        ```python
        from prefect_nanobanana import ImageRequest
        from prefect_nanobanana import ToAPIsCredentials

        credentials = ToAPIsCredentials.load("BLOCK_NAME")
        async with credentials.get_client() as client:
            job = await client.submit(ImageRequest(provider="toapis", prompt="a banana", model="nano-banana-pro"))
        ```
    """

    _block_type_name = "ToAPIs Credentials"
    _block_type_slug = "toapis-credentials"
    _logo_url = LOGO_URL  # type: ignore[assignment]
    _documentation_url = "https://docs.toapis.com/docs/en/quickstart"  # type: ignore[assignment]
    _description = "API key and settings for Nano Banana image generation through ToAPIs."
    provider: ClassVar[ProviderName] = "toapis"

    api_key: SecretStr = Field(
        title="API key",
        description="ToAPIs API key (console: toapis.com/console/token). Sent only as a Bearer header.",
    )
    base_url: str = Field(
        default="https://toapis.com",
        title="Base URL",
        description=(
            "API host; `/v1` is added. The China site is https://toapis.cn. Point it at "
            "`nanobanana emulator` for tests."
        ),
    )
    timeout: float = Field(
        default=30.0, gt=0, title="Request timeout (s)", description="Timeout of each HTTP call, in seconds."
    )
    submit_rate: float = Field(
        default=5.0,
        gt=0,
        title="Submit rate (per s)",
        description="Submissions per second for this account (ToAPIs default group: 5; vip 16.7; svip 33.3).",
    )
    submit_burst: float = Field(
        default=50.0,
        gt=0,
        title="Submit burst",
        description="Submit burst size (default group: 50 per 10 s).",
    )
    query_rate: float = Field(
        default=50.0,
        gt=0,
        title="Query rate (per s)",
        description="Status queries per second (default group: 50).",
    )
    query_burst: float = Field(
        default=500.0, gt=0, title="Query burst", description="Status query burst size (default group: 500)."
    )
    poll_first_delay: float = Field(
        default=5.0,
        ge=0,
        title="First poll after (s)",
        description="Seconds before the first status poll (docs: 5).",
    )
    poll_min_interval: float = Field(
        default=5.0, gt=0, title="Poll interval min (s)", description="Shortest wait between polls (docs: 5)."
    )
    poll_max_interval: float = Field(
        default=10.0,
        gt=0,
        title="Poll interval max (s)",
        description="Longest wait between polls (docs: 10).",
    )
    poll_deadline: float = Field(
        default=900.0,
        gt=0,
        title="Wait deadline (s)",
        description="Give up waiting for one job after this many seconds; a rerun picks the job up again.",
    )

    def poll_policy(self) -> PollPolicy:
        return PollPolicy(
            self.poll_first_delay, self.poll_min_interval, self.poll_max_interval, self.poll_deadline
        )

    def get_client(self, *args: Any, **kwargs: Any) -> ToAPIsClient:
        """A new `ToAPIsClient` with these settings (use it as `async with`)."""
        return ToAPIsClient(
            self.api_key.get_secret_value(),
            self.base_url,
            timeout=self.timeout,
            poll=self.poll_policy(),
            submit_rate=self.submit_rate,
            submit_burst=self.submit_burst,
            query_rate=self.query_rate,
            query_burst=self.query_burst,
            **kwargs,
        )


class TTAPICredentials(CredentialsBlock):
    """Credentials and connection settings for the TTAPI Gemini image API (synchronous).

    Example:
        Load stored credentials and generate one image:
        ```python
        from prefect_nanobanana import ImageRequest
        from prefect_nanobanana import TTAPICredentials

        credentials = TTAPICredentials.load("BLOCK_NAME")
        async with credentials.get_client() as client:
            job = await client.submit(ImageRequest(provider="ttapi", prompt="a banana", model="nano-banana-2"))
        ```
    """

    _block_type_name = "TTAPI Credentials"
    _block_type_slug = "ttapi-credentials"
    _logo_url = LOGO_URL  # type: ignore[assignment]
    _documentation_url = "https://docs.ttapi.io/api/en/gemini/generate"  # type: ignore[assignment]
    _description = "API key and settings for Nano Banana image generation through TTAPI."
    provider: ClassVar[ProviderName] = "ttapi"

    api_key: SecretStr = Field(
        title="API key", description="TTAPI key (TT-API-KEY header). Sent only in that header."
    )
    base_url: str = Field(
        default="https://api.ttapi.org",
        title="Base URL",
        description=(
            "API host. https://api.ttapi.org is recommended for long synchronous calls; "
            "https://api.ttapi.io goes through Cloudflare and may cut calls after about 100 s."
        ),
    )
    timeout: float = Field(
        default=600.0,
        gt=0,
        title="Generation timeout (s)",
        description="Read timeout of one synchronous generation call, in seconds (at least 120 advised).",
    )
    rate: float | None = Field(
        default=None,
        gt=0,
        title="Request rate (per s)",
        description="Optional cap on generation requests per second (TTAPI publishes no number).",
    )

    def get_client(self, *args: Any, **kwargs: Any) -> TTAPIClient:
        """A new `TTAPIClient` with these settings (use it as `async with`)."""
        return TTAPIClient(
            self.api_key.get_secret_value(), self.base_url, timeout=self.timeout, rate=self.rate, **kwargs
        )


ProviderCredentials = Union[ToAPIsCredentials, TTAPICredentials]
"""Either provider's credentials block."""

CREDENTIALS_BY_PROVIDER: dict[str, type[ToAPIsCredentials] | type[TTAPICredentials]] = {
    "toapis": ToAPIsCredentials,
    "ttapi": TTAPICredentials,
}

ENV_KEYS = {"toapis": "TOAPIS_API_KEY", "ttapi": "TTAPI_API_KEY"}
"""Environment variables that scripts and the CLI may use instead of a saved block."""


def credentials_from_env(provider: str) -> ToAPIsCredentials | TTAPICredentials | None:
    """An unsaved block built from `TOAPIS_API_KEY` / `TTAPI_API_KEY`, or None when it is not set."""
    key = os.environ.get(ENV_KEYS[provider])
    return CREDENTIALS_BY_PROVIDER[provider](api_key=SecretStr(key)) if key else None


def client_for(
    credentials: ToAPIsCredentials | TTAPICredentials, base_url: str | None = None
) -> ImageProvider:
    """The block's client, at `base_url` instead of the block's own when given (e.g. the emulator)."""
    if base_url:
        credentials = credentials.model_copy(update={"base_url": base_url})
    return credentials.get_client()
