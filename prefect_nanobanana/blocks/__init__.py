"""Prefect blocks: one credentials block per provider, each building its provider client."""

from .credentials import CREDENTIALS_BY_PROVIDER, ProviderCredentials, ToAPIsCredentials, TTAPICredentials

__all__ = ["CREDENTIALS_BY_PROVIDER", "ProviderCredentials", "TTAPICredentials", "ToAPIsCredentials"]
