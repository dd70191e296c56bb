"""The interface every provider client implements. No Prefect import here.

A provider turns an `ImageRequest` into an image in three steps: `submit` (returns an `ImageJob` as
soon as the provider has accepted the job), `wait` (returns a `JobResult` with where the image is)
and `download` (streams the image to a local file, checks it and returns a `GeneratedImage`).
Synchronous providers (TTAPI) return the result inside the submit's `ImageJob`; providers that
return image bytes inline (the Gemini API, to come) can keep them in a local staging file and give
its `file://` URL as `JobResult.image_url`, which `download` then reads like any other URL.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from ..catalog import ProviderName
from ..models import GeneratedImage, ImageJob, ImageRequest, JobResult


@dataclass(frozen=True)
class PollPolicy:
    """How to wait for an asynchronous job (ToAPIs docs: first poll after 5 s, then every 5-10 s with
    jitter; the docs stop at 120 s, the quickstart at 15 min)."""

    first_delay: float = 5.0
    min_interval: float = 5.0
    max_interval: float = 10.0
    deadline: float = 900.0

    def scaled(self, factor: float) -> PollPolicy:
        """The same policy `factor` times faster (for the emulator's scaled time)."""
        return PollPolicy(
            self.first_delay / factor, self.min_interval / factor, self.max_interval / factor, self.deadline
        )


class ImageProvider(abc.ABC):
    """An async client for one provider's image API. Use as an async context manager."""

    name: ClassVar[ProviderName]
    synchronous: ClassVar[bool] = False
    """True when `submit` waits for the image itself (TTAPI)."""
    supports_lookup: ClassVar[bool] = False
    """True when a job can be found by the row key after an ambiguous submit (ToAPIs)."""
    poll_policy: PollPolicy = PollPolicy()
    """How `wait` polls when no policy is passed."""

    @abc.abstractmethod
    async def submit(
        self,
        request: ImageRequest,
        *,
        reference_urls: list[str] | None = None,
        client_business_id: str | None = None,
    ) -> ImageJob:
        """Send one paid request. `reference_urls` replaces local references already uploaded;
        `client_business_id` (default: the row key) is what a later `find_job` looks the job up by.

        Raises `AmbiguousSubmitError` when the request was sent and no answer came back."""

    @abc.abstractmethod
    async def get_job(self, job_id: str) -> ImageJob:
        """The job's current state."""

    async def find_job(self, client_business_id: str) -> ImageJob | None:
        """The job submitted with `client_business_id` (ToAPIs), or None if there is none."""
        return None

    @abc.abstractmethod
    async def wait(self, job: ImageJob, policy: PollPolicy | None = None) -> JobResult:
        """Poll until the job is terminal; raise `JobFailedError` / `JobTimedOutError` otherwise."""

    @abc.abstractmethod
    async def download(
        self, result: JobResult, dest: Path, *, row_key: str, max_bytes: int | None = None
    ) -> GeneratedImage:
        """Stream the image to `dest` (temporary name, then rename) and check it is a whole image."""

    async def upload_reference(self, path: Path) -> str:
        """Make a local reference image reachable by the provider; return what to send for it."""
        raise NotImplementedError

    async def aclose(self) -> None:
        """Release connections."""

    async def __aenter__(self) -> ImageProvider:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
