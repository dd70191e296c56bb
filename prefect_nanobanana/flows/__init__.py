"""Prefect flows: prompt table -> image set."""

from .image_set import ImageSetIncomplete, generate_image_set, generate_image_set_from_dataframe

__all__ = ["ImageSetIncomplete", "generate_image_set", "generate_image_set_from_dataframe"]
