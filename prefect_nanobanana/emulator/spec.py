"""The provider documentation as data: models, allowed values and output pixel sizes.

Everything here is transcribed from `providers.md` (sections cited inline) on purpose, and not
imported from the client's catalogue: the emulator is an independent reading of the documentation,
so a misreading in either place shows up as a failing test instead of being shared silently.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = [
    "EXTREME_RATIOS",
    "GEMINI_3_PIXELS",
    "GEMINI_25_NATIVE_PIXELS",
    "STANDARD_RATIOS",
    "TOAPIS_25_REFERENCE_PIXELS",
    "TOAPIS_MODELS",
    "TTAPI_MODELS",
    "PixelTable",
    "ToapisModel",
    "TtapiModel",
    "toapis_model",
]

PixelTable = Literal["gemini-3", "gemini-2.5-native", "toapis-2.5-reference"]

# providers.md 1.3.1 / 2.3: the ten ratios every Gemini 3 image model accepts, and the four extreme
# ratios that only 3.1 Flash accepts.
STANDARD_RATIOS: tuple[str, ...] = ("1:1", "2:3", "3:2", "3:4", "4:3", "4:5", "5:4", "9:16", "16:9", "21:9")
EXTREME_RATIOS: tuple[str, ...] = ("1:4", "4:1", "1:8", "8:1")

# providers.md 3.5, Gemini 3.1 Flash table (Gemini 3 Pro uses the same 1K/2K/4K sizes). The key
# "0.5K" is ToAPIs' name for Google's 512 column.
GEMINI_3_PIXELS: dict[str, dict[str, tuple[int, int]]] = {
    "1:1": {"0.5K": (512, 512), "1K": (1024, 1024), "2K": (2048, 2048), "4K": (4096, 4096)},
    "1:4": {"0.5K": (256, 1024), "1K": (512, 2048), "2K": (1024, 4096), "4K": (2048, 8192)},
    "1:8": {"0.5K": (192, 1536), "1K": (384, 3072), "2K": (768, 6144), "4K": (1536, 12288)},
    "2:3": {"0.5K": (424, 632), "1K": (848, 1264), "2K": (1696, 2528), "4K": (3392, 5056)},
    "3:2": {"0.5K": (632, 424), "1K": (1264, 848), "2K": (2528, 1696), "4K": (5056, 3392)},
    "3:4": {"0.5K": (448, 600), "1K": (896, 1200), "2K": (1792, 2400), "4K": (3584, 4800)},
    "4:1": {"0.5K": (1024, 256), "1K": (2048, 512), "2K": (4096, 1024), "4K": (8192, 2048)},
    "4:3": {"0.5K": (600, 448), "1K": (1200, 896), "2K": (2400, 1792), "4K": (4800, 3584)},
    "4:5": {"0.5K": (464, 576), "1K": (928, 1152), "2K": (1856, 2304), "4K": (3712, 4608)},
    "5:4": {"0.5K": (576, 464), "1K": (1152, 928), "2K": (2304, 1856), "4K": (4608, 3712)},
    "8:1": {"0.5K": (1536, 192), "1K": (3072, 384), "2K": (6144, 768), "4K": (12288, 1536)},
    "9:16": {"0.5K": (384, 688), "1K": (768, 1376), "2K": (1536, 2752), "4K": (3072, 5504)},
    "16:9": {"0.5K": (688, 384), "1K": (1376, 768), "2K": (2752, 1536), "4K": (5504, 3072)},
    # The source prints 792x168 for 512; every other 512 entry is exactly half of its 1K entry, and
    # 168 would be a 4.7:1 image, so the table's typo is corrected to half of 1584x672.
    "21:9": {"0.5K": (792, 336), "1K": (1584, 672), "2K": (3168, 1344), "4K": (6336, 2688)},
}

# providers.md 3.5, Gemini 2.5 Flash Image table: one size per ratio, no resolution choice.
GEMINI_25_NATIVE_PIXELS: dict[str, tuple[int, int]] = {
    "1:1": (1024, 1024),
    "2:3": (832, 1248),
    "3:2": (1248, 832),
    "3:4": (864, 1184),
    "4:3": (1184, 864),
    "4:5": (896, 1152),
    "5:4": (1152, 896),
    "9:16": (768, 1344),
    "16:9": (1344, 768),
    "21:9": (1536, 672),
}

# providers.md 1.3.1: the reference pixels that the ToAPIs gemini-2.5-flash page lists for its seven sizes.
TOAPIS_25_REFERENCE_PIXELS: dict[str, tuple[int, int]] = {
    "1:1": (1024, 1024),
    "16:9": (1792, 1024),
    "9:16": (1024, 1792),
    "4:3": (1365, 1024),
    "3:4": (1024, 1365),
    "3:2": (1536, 1024),
    "2:3": (1024, 1536),
}


def pixel_size(table: PixelTable, ratio: str, resolution: str) -> tuple[int, int]:
    """Return the (width, height) the documentation promises for a ratio and resolution.

    The caller has already validated both against the model; an unknown pair raises KeyError.
    """
    if table == "gemini-3":
        return GEMINI_3_PIXELS[ratio][resolution]
    if table == "gemini-2.5-native":
        return GEMINI_25_NATIVE_PIXELS[ratio]
    return TOAPIS_25_REFERENCE_PIXELS[ratio]


@dataclass(frozen=True)
class ToapisModel:
    """One Gemini image model as ToAPIs documents it (providers.md 1.2, 1.3.1, 1.3.3)."""

    id: str
    aliases: tuple[str, ...]
    sizes: tuple[str, ...]
    resolutions: tuple[str, ...]
    pixels: PixelTable
    official: bool = False
    max_image_urls: int = 14
    orientation: bool = False
    google_search: bool = False
    thinking_config: bool = False
    # Only the 2.5-flash page still states the 1000-character prompt cap (1.3.1).
    prompt_cap: bool = False


TOAPIS_MODELS: tuple[ToapisModel, ...] = (
    ToapisModel(
        id="gemini-3-pro-image-preview",
        aliases=("nano-banana-pro",),
        sizes=STANDARD_RATIOS,
        resolutions=("1K", "2K", "4K"),
        pixels="gemini-3",
        orientation=True,
    ),
    ToapisModel(
        id="gemini-3.1-flash-image-preview",
        aliases=(),
        sizes=STANDARD_RATIOS + EXTREME_RATIOS,
        resolutions=("0.5K", "1K", "2K", "4K"),
        pixels="gemini-3",
        google_search=True,
    ),
    ToapisModel(
        id="gemini-2.5-flash-image-preview",
        aliases=("nano-banana",),
        sizes=("1:1", "16:9", "9:16", "4:3", "3:4", "3:2", "2:3"),
        resolutions=("1K",),
        pixels="toapis-2.5-reference",
        orientation=True,
        prompt_cap=True,
    ),
    ToapisModel(
        id="gemini-3-pro-image-preview-official",
        aliases=("nano-banana-pro-official",),
        sizes=STANDARD_RATIOS,
        resolutions=("1K", "2K", "4K"),
        pixels="gemini-3",
        official=True,
        thinking_config=True,
    ),
    ToapisModel(
        id="gemini-3.1-flash-image-preview-official",
        aliases=("nano-banana-2-lite-official", "nano-banana-2-official"),
        # 1.3.3: the official 3.1 page lists 4:1 and 8:1 but not 1:4 or 1:8.
        sizes=(*STANDARD_RATIOS, "4:1", "8:1"),
        resolutions=("1K", "2K", "4K"),
        pixels="gemini-3",
        official=True,
        thinking_config=True,
    ),
    ToapisModel(
        id="gemini-2.5-flash-image-official",
        aliases=("nano-banana-official",),
        sizes=STANDARD_RATIOS,
        # 1.3.3: `resolution` is not listed for 2.5-official; only the implicit 1K is accepted.
        resolutions=("1K",),
        pixels="gemini-2.5-native",
        official=True,
        max_image_urls=3,
    ),
)

_TOAPIS_BY_NAME: dict[str, ToapisModel] = {
    name: model for model in TOAPIS_MODELS for name in (model.id, *model.aliases)
}


def toapis_model(name: str) -> ToapisModel | None:
    """Return the ToAPIs model for an id or alias, or None when ToAPIs does not document it."""
    return _TOAPIS_BY_NAME.get(name)


@dataclass(frozen=True)
class TtapiModel:
    """One Gemini image model as TTAPI documents it (providers.md 2.2, 2.3)."""

    id: str
    aspect_ratios: tuple[str, ...]
    pixels: PixelTable


TTAPI_MODELS: dict[str, TtapiModel] = {
    # 2.3: aspect_ratio is "only supported by gemini-3 and above"; 1:1 is the documented default,
    # so sending it explicitly to a 2.5 model is harmless.
    "gemini-2.5-flash-image": TtapiModel("gemini-2.5-flash-image", ("1:1",), "gemini-2.5-native"),
    "gemini-2.5-flash-image-preview": TtapiModel(
        "gemini-2.5-flash-image-preview", ("1:1",), "gemini-2.5-native"
    ),
    "gemini-3-pro-image-preview": TtapiModel("gemini-3-pro-image-preview", STANDARD_RATIOS, "gemini-3"),
    "gemini-3.1-flash-image-preview": TtapiModel(
        "gemini-3.1-flash-image-preview", STANDARD_RATIOS + EXTREME_RATIOS, "gemini-3"
    ),
}

TTAPI_IMAGE_SIZES: tuple[str, ...] = ("1K", "2K", "4K")
TTAPI_THINKING_LEVELS: tuple[str, ...] = ("Minimal", "High")

# 1.3.3: Vertex-native metadata accepted by the -official models.
OFFICIAL_PERSON_GENERATION: tuple[str, ...] = ("ALLOW_ALL", "ALLOW_ADULT", "ALLOW_NONE")
OFFICIAL_MIME_TYPES: tuple[str, ...] = ("image/png", "image/jpeg", "image/webp")
OFFICIAL_THINKING_LEVELS: tuple[str, ...] = ("LOW", "MEDIUM", "HIGH", "MINIMAL")
OFFICIAL_HARM_CATEGORIES: tuple[str, ...] = (
    "HARM_CATEGORY_HATE_SPEECH",
    "HARM_CATEGORY_DANGEROUS_CONTENT",
    "HARM_CATEGORY_SEXUALLY_EXPLICIT",
    "HARM_CATEGORY_HARASSMENT",
)
OFFICIAL_HARM_THRESHOLDS: tuple[str, ...] = (
    "OFF",
    "BLOCK_LOW_AND_ABOVE",
    "BLOCK_MEDIUM_AND_ABOVE",
    "BLOCK_ONLY_HIGH",
)
