"""The ImageNet-C corruption names: the 15 of mCE and 4 held-out extras, one list for all layers."""

from bench.core.errors import unknown

COMMON = (
    "gaussian_noise",
    "shot_noise",
    "impulse_noise",
    "defocus_blur",
    "glass_blur",
    "motion_blur",
    "zoom_blur",
    "snow",
    "frost",
    "fog",
    "brightness",
    "contrast",
    "elastic_transform",
    "pixelate",
    "jpeg_compression",
)
EXTRA = ("speckle_noise", "gaussian_blur", "spatter", "saturate")
ALL = COMMON + EXTRA


def check_name(name: str) -> str:
    """Reject unknown corruption names with the closest known ones."""
    if name not in ALL:
        raise unknown("corruption", name, ALL)
    return name
