"""Prefect integration for Nano Banana image generation (Google's Gemini image models) through ToAPIs and TTAPI."""

from .blocks import ToAPIsCredentials, TTAPICredentials
from .errors import (
    AmbiguousSubmitError,
    AuthenticationError,
    ContentPolicyError,
    DownloadFailedError,
    ImageExpiredError,
    InsufficientBalanceError,
    InvalidRequestError,
    JobFailedError,
    JobTimedOutError,
    NanoBananaError,
    RateLimitedError,
    RequestValidationError,
    TableValidationError,
    TransientError,
)
from .models import GeneratedImage, ImageJob, ImageRequest, JobResult, JobStatus

__version__ = "0.1.0"

__all__ = [
    "AmbiguousSubmitError",
    "AuthenticationError",
    "ContentPolicyError",
    "DownloadFailedError",
    "GeneratedImage",
    "ImageExpiredError",
    "ImageJob",
    "ImageRequest",
    "InsufficientBalanceError",
    "InvalidRequestError",
    "JobFailedError",
    "JobResult",
    "JobStatus",
    "JobTimedOutError",
    "NanoBananaError",
    "RateLimitedError",
    "RequestValidationError",
    "TTAPICredentials",
    "TableValidationError",
    "ToAPIsCredentials",
    "TransientError",
]
