"""Async httpx clients for the image providers, one module per provider. No Prefect import here.

`client_for(provider, api_key, **options)` builds the right client by name.
"""

from __future__ import annotations

from typing import Any

from ..catalog import ProviderName
from .base import ImageProvider, PollPolicy
from .toapis import ToAPIsClient
from .ttapi import TTAPIClient

__all__ = ["PROVIDER_CLIENTS", "ImageProvider", "PollPolicy", "TTAPIClient", "ToAPIsClient", "client_for"]

PROVIDER_CLIENTS: dict[ProviderName, type[ImageProvider]] = {"toapis": ToAPIsClient, "ttapi": TTAPIClient}


def client_for(provider: ProviderName, api_key: str, **options: Any) -> ImageProvider:
    """A client for `provider` ("toapis" or "ttapi"); `options` go to its constructor."""
    try:
        cls = PROVIDER_CLIENTS[provider]
    except KeyError:
        raise ValueError(f"unknown provider {provider!r}; known: {', '.join(PROVIDER_CLIENTS)}") from None
    return cls(api_key, **options)  # type: ignore[call-arg]
