"""Prefect tasks: submit, wait, download, upload a reference image."""

from .images import download_image, retry_by_error_class, submit_image, upload_reference_image, wait_for_image

__all__ = [
    "download_image",
    "retry_by_error_class",
    "submit_image",
    "upload_reference_image",
    "wait_for_image",
]
