"""What each provider offers for each Gemini image model: ids, aliases, ratios, resolutions, options.

Every rule here comes from ../shared/providers.md (sections 1.2-1.3 for ToAPIs, 2.2-2.3 for TTAPI);
where the documents are silent the stricter reading is taken, so that a user never pays for a
request whose parameters the provider may ignore. One table, read by request validation, the CLI's
choices, the flow's dropdowns and the cost estimate.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

ProviderName = Literal["toapis", "ttapi"]
PROVIDERS: tuple[ProviderName, ...] = ("toapis", "ttapi")

STANDARD_RATIOS = ("1:1", "2:3", "3:2", "3:4", "4:3", "4:5", "5:4", "9:16", "16:9", "21:9")
EXTREME_RATIOS = ("1:4", "4:1", "1:8", "8:1")
ALL_RATIOS = STANDARD_RATIOS + EXTREME_RATIOS
TOAPIS_25_RATIOS = ("1:1", "16:9", "9:16", "4:3", "3:4", "3:2", "2:3")
RESOLUTIONS = ("0.5K", "1K", "2K", "4K")

FAMILY_PRO = "gemini-3-pro-image"
FAMILY_FLASH_31 = "gemini-3.1-flash-image"
FAMILY_FLASH_25 = "gemini-2.5-flash-image"


@dataclass(frozen=True)
class ModelSpec:
    """What one provider accepts for one model id."""

    provider: ProviderName
    model: str
    family: str
    aspect_ratios: tuple[str, ...]
    """Allowed `aspect_ratio` values; empty when the provider takes no aspect ratio for this model."""
    resolutions: tuple[str, ...]
    """Allowed resolutions; empty when the provider takes none (the model's only size is used)."""
    options: frozenset[str] = field(default_factory=frozenset)
    """Provider options this model takes: orientation, google_search, image_search, thinking_level."""
    thinking_levels: tuple[str, ...] = ()
    """Allowed thinking levels, spelled exactly as the provider wants them."""
    max_references: int = 14
    max_prompt_chars: int | None = None
    official: bool = False

    @property
    def default_resolution(self) -> str | None:
        return "1K" if "1K" in self.resolutions else None


def _spec(provider: ProviderName, model: str, family: str, **kw: object) -> ModelSpec:
    return ModelSpec(provider=provider, model=model, family=family, **kw)  # type: ignore[arg-type]


_TOAPIS_THINKING = ("MINIMAL", "LOW", "MEDIUM", "HIGH")

MODELS: dict[tuple[ProviderName, str], ModelSpec] = {
    (s.provider, s.model): s
    for s in (
        # ToAPIs, section 1.2 / 1.3.1 / 1.3.3.
        _spec(
            "toapis",
            "gemini-3-pro-image-preview",
            FAMILY_PRO,
            aspect_ratios=STANDARD_RATIOS,
            resolutions=("1K", "2K", "4K"),
            options=frozenset({"orientation"}),
        ),
        _spec(
            "toapis",
            "gemini-3.1-flash-image-preview",
            FAMILY_FLASH_31,
            aspect_ratios=ALL_RATIOS,
            resolutions=RESOLUTIONS,
            options=frozenset({"google_search", "image_search"}),
        ),
        _spec(
            "toapis",
            "gemini-2.5-flash-image-preview",
            FAMILY_FLASH_25,
            aspect_ratios=TOAPIS_25_RATIOS,
            resolutions=("1K",),
            options=frozenset({"orientation"}),
            max_prompt_chars=1000,
        ),
        _spec(
            "toapis",
            "gemini-3-pro-image-preview-official",
            FAMILY_PRO,
            aspect_ratios=STANDARD_RATIOS,
            resolutions=("1K", "2K", "4K"),
            options=frozenset({"thinking_level"}),
            thinking_levels=_TOAPIS_THINKING,
            official=True,
        ),
        _spec(
            "toapis",
            "gemini-3.1-flash-image-preview-official",
            FAMILY_FLASH_31,
            aspect_ratios=(*STANDARD_RATIOS, "4:1", "8:1"),
            resolutions=("1K", "2K", "4K"),
            options=frozenset({"thinking_level"}),
            thinking_levels=_TOAPIS_THINKING,
            official=True,
        ),
        _spec(
            "toapis",
            "gemini-2.5-flash-image-official",
            FAMILY_FLASH_25,
            aspect_ratios=STANDARD_RATIOS,
            resolutions=(),
            max_references=3,
            official=True,
        ),
        # TTAPI, section 2.2 / 2.3: aspect_ratio only on gemini-3 and later, extreme ratios only on 3.1,
        # thinking_level only on 3.1 (CN page), image_size honoured on gemini-3 models.
        _spec("ttapi", "gemini-2.5-flash-image", FAMILY_FLASH_25, aspect_ratios=(), resolutions=()),
        _spec("ttapi", "gemini-2.5-flash-image-preview", FAMILY_FLASH_25, aspect_ratios=(), resolutions=()),
        _spec(
            "ttapi",
            "gemini-3-pro-image-preview",
            FAMILY_PRO,
            aspect_ratios=STANDARD_RATIOS,
            resolutions=("1K", "2K", "4K"),
            options=frozenset({"google_search"}),
        ),
        _spec(
            "ttapi",
            "gemini-3.1-flash-image-preview",
            FAMILY_FLASH_31,
            aspect_ratios=ALL_RATIOS,
            resolutions=("1K", "2K", "4K"),
            options=frozenset({"google_search", "image_search", "thinking_level"}),
            thinking_levels=("Minimal", "High"),
        ),
    )
}

# Aliases documented by the providers, plus the family names the Gemini API uses.
ALIASES: dict[ProviderName, dict[str, str]] = {
    "toapis": {
        "nano-banana-pro": "gemini-3-pro-image-preview",
        "nano-banana-2": "gemini-3.1-flash-image-preview",
        "nano-banana": "gemini-2.5-flash-image-preview",
        "gemini-2.5-flash-image": "gemini-2.5-flash-image-preview",
        "nano-banana-pro-official": "gemini-3-pro-image-preview-official",
        "nano-banana-2-official": "gemini-3.1-flash-image-preview-official",
        "nano-banana-2-lite-official": "gemini-3.1-flash-image-preview-official",
        "nano-banana-official": "gemini-2.5-flash-image-official",
    },
    "ttapi": {
        "nano-banana-pro": "gemini-3-pro-image-preview",
        "nano-banana-2": "gemini-3.1-flash-image-preview",
        "nano-banana": "gemini-2.5-flash-image",
    },
}

DEFAULT_MODEL = "gemini-3-pro-image-preview"


def model_ids(provider: ProviderName) -> list[str]:
    """The canonical model ids a provider accepts, in catalogue order."""
    return [m for (p, m) in MODELS if p == provider]


def all_model_names() -> list[str]:
    """Every id and alias of every provider: the choices offered in forms and on the command line."""
    names: list[str] = []
    for provider in PROVIDERS:
        for name in (*model_ids(provider), *ALIASES[provider]):
            if name not in names:
                names.append(name)
    return names


def resolve_model(provider: ProviderName, name: str) -> ModelSpec | None:
    """The spec for `name` (an id or alias, any case) on `provider`, or None if the provider lacks it."""
    key = name.strip().lower()
    key = ALIASES[provider].get(key, key)
    return MODELS.get((provider, key))


def normalize_resolution(value: str) -> str:
    """`1k` -> `1K`, `512` and `0.5k` -> `0.5K`: tolerant in what the table holds, strict in what is sent."""
    text = value.strip().upper()
    if text in ("512", "0.5K", ".5K"):
        return "0.5K"
    return text


def normalize_aspect_ratio(value: str) -> str:
    return value.strip().replace(" ", "").replace("/", ":")


# --- prices --------------------------------------------------------------------------------------
# USD per image, used to estimate a run and to enforce `max_cost` before the provider reports a charge.
# Sources (providers.md): ToAPIs 1.10 (Nano Banana 2: $0.025/$0.030/$0.040 for 1K/2K/4K, marketing page,
# unverified); Google list prices 3.7 for everything ToAPIs and TTAPI do not publish, which is an upper
# bound for a reseller. TTAPI reports the real charge (`quota`, 1 USD = 100 quota) and it replaces the
# estimate in the manifest. Override with `PriceTable` / the flow's `price_overrides`.
DEFAULT_PRICES_USD: dict[tuple[str, str, str], float] = {
    ("toapis", FAMILY_FLASH_31, "0.5K"): 0.025,
    ("toapis", FAMILY_FLASH_31, "1K"): 0.025,
    ("toapis", FAMILY_FLASH_31, "2K"): 0.030,
    ("toapis", FAMILY_FLASH_31, "4K"): 0.040,
    ("*", FAMILY_FLASH_31, "0.5K"): 0.045,
    ("*", FAMILY_FLASH_31, "1K"): 0.067,
    ("*", FAMILY_FLASH_31, "2K"): 0.101,
    ("*", FAMILY_FLASH_31, "4K"): 0.151,
    ("*", FAMILY_PRO, "1K"): 0.134,
    ("*", FAMILY_PRO, "2K"): 0.134,
    ("*", FAMILY_PRO, "4K"): 0.24,
    ("*", FAMILY_FLASH_25, "1K"): 0.039,
}


def estimate_price(
    spec: ModelSpec, resolution: str | None, overrides: dict[str, float] | None = None
) -> float:
    """Estimated USD for one image of `spec` at `resolution`.

    `overrides` maps `"<model or family>"` or `"<model or family>@<resolution>"` to USD and wins over
    the built-in table; a provider prefix (`"ttapi:gemini-3-pro-image-preview@4K"`) narrows it further.
    """
    res = resolution or spec.default_resolution or "1K"
    if overrides:
        for key in (
            f"{spec.provider}:{spec.model}@{res}",
            f"{spec.provider}:{spec.model}",
            f"{spec.model}@{res}",
            f"{spec.model}",
            f"{spec.provider}:{spec.family}@{res}",
            f"{spec.family}@{res}",
            f"{spec.family}",
        ):
            if key in overrides:
                return float(overrides[key])
    for provider in (spec.provider, "*"):
        price = DEFAULT_PRICES_USD.get((provider, spec.family, res))
        if price is not None:
            return price
    return DEFAULT_PRICES_USD[("*", spec.family, "1K")]
