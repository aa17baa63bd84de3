"""Batched corruptions that give the reference's images exactly, many times faster.

Each function maps uint8 (N,3,H,W) images to uint8 (N,3,H,W) at one severity, with one seed per
image. Every one in `PARITY` gives the same uint8 images as imagecorruptions-imaug
(tests/test_fast_corruptions.py): the reference's random draws (from NumPy or numba generators
seeded as it seeds them), its float types and its order of operations. These run by default; the
others (pixelate, jpeg_compression, spatter) use the reference. Truncation to uint8 is as `np.uint8`
does it. Per-pixel loops (the noises, HSV, glass, motion, zoom, snow, fog, elastic's resampling,
scipy's Gaussian filter) run as numba kernels on the CPU (corruptions/kernels.py), whatever the
device; contrast, defocus_blur and frost's blend run in torch on the images' device.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from bench.core.errors import unknown

# re-exported: which of these run by default, and why
from bench.corruptions.base import PARITY  # noqa: F401

SOURCE = "torch"


def _unit(x: Tensor, dtype: torch.dtype = torch.float64) -> Tensor:
    return x.to(dtype) / 255.0


def _to_u8(x: Tensor) -> Tensor:
    return (x.clamp(0, 1) * 255).to(torch.uint8)  # truncation, as np.uint8 on floats


def _hwc(x: Tensor) -> np.ndarray:
    """(N,C,H,W) tensor -> (N,H,W,C) CPU array, the layout of the reference and numba kernels."""
    return x.permute(0, 2, 3, 1).cpu().numpy()


def _nchw(a: np.ndarray, device: torch.device) -> Tensor:
    """(N,H,W,C) array -> (N,C,H,W) tensor on `device`."""
    return torch.from_numpy(np.ascontiguousarray(a)).to(device).permute(0, 3, 1, 2)


def _seeds(seeds: Tensor) -> np.ndarray:
    """Per-image seeds as the numba kernels take them."""
    return seeds.numpy().astype(np.int64)


def _noise(x: Tensor, seeds: Tensor, kind: int, c: float) -> Tensor:
    from bench.corruptions import kernels

    return _nchw(kernels.pixel_noise(_hwc(x), _seeds(seeds), kind, float(c)), x.device)


def gaussian_noise(x: Tensor, severity: int, seeds: Tensor) -> Tensor:
    from bench.corruptions.kernels import GAUSSIAN

    return _noise(x, seeds, GAUSSIAN, [0.08, 0.12, 0.18, 0.26, 0.38][severity - 1])


def shot_noise(x: Tensor, severity: int, seeds: Tensor) -> Tensor:
    from bench.corruptions.kernels import SHOT

    return _noise(x, seeds, SHOT, [60, 25, 12, 5, 3][severity - 1])


def speckle_noise(x: Tensor, severity: int, seeds: Tensor) -> Tensor:
    from bench.corruptions.kernels import SPECKLE

    return _noise(x, seeds, SPECKLE, [0.15, 0.2, 0.35, 0.45, 0.6][severity - 1])


def impulse_noise(x: Tensor, severity: int, seeds: Tensor) -> Tensor:
    """scikit-image's 's&p' (salt_vs_pepper 0.5) from its seeded default_rng, per channel value."""
    from bench.corruptions.kernels import salt_and_pepper

    c = [0.03, 0.06, 0.09, 0.17, 0.27][severity - 1]
    n, ch, h, w = x.shape
    draws = np.empty((n, 2, h, w, ch))
    for b, s in enumerate(seeds.tolist()):
        np.random.default_rng(s).random(out=draws[b])
    return _nchw(salt_and_pepper(np.ascontiguousarray(_hwc(x)), draws, c), x.device)


def contrast(x: Tensor, severity: int, seeds: Tensor) -> Tensor:
    c = [0.4, 0.3, 0.2, 0.1, 0.05][severity - 1]
    # The channel means summed as NumPy sums them in the reference: torch's reduction rounds
    # otherwise, and a mean on a whole grey level then lands every pixel on either side of a
    # truncation boundary.
    means = torch.from_numpy(np.ascontiguousarray((_hwc(x) / 255.0).mean(axis=(1, 2))))
    means = means.to(x.device)[:, :, None, None]
    u = _unit(x)
    return _to_u8((u - means) * c + means)


def _hsv_adjust(x: Tensor, channel: int, scale: float, shift: float) -> Tensor:
    from bench.corruptions.kernels import hsv_adjust

    return _nchw(hsv_adjust(np.ascontiguousarray(_hwc(x)), channel, scale, shift), x.device)


def brightness(x: Tensor, severity: int, seeds: Tensor) -> Tensor:
    """V of HSV raised by c (scikit-image's conversions, per pixel on the CPU)."""
    return _hsv_adjust(x, 2, 1.0, [0.1, 0.2, 0.3, 0.4, 0.5][severity - 1])


def saturate(x: Tensor, severity: int, seeds: Tensor) -> Tensor:
    """S of HSV scaled and shifted (scikit-image's conversions, per pixel on the CPU)."""
    c = [(0.3, 0), (0.1, 0), (2, 0), (5, 0.1), (20, 0.2)][severity - 1]
    return _hsv_adjust(x, 1, float(c[0]), float(c[1]))


def _correlate_fft(u: Tensor, kernel: Tensor, pad_mode: str) -> Tensor:
    """Per-channel correlation with a large kernel through the FFT (float64: as exact as direct)."""
    kh, kw = kernel.shape
    # NCHW: FFTs run per plane
    padded = F.pad(u.contiguous(), (kw // 2, kw // 2, kh // 2, kh // 2), mode=pad_mode)
    ph, pw = padded.shape[-2:]
    k = torch.zeros(ph, pw, dtype=u.dtype, device=u.device)
    k[:kh, :kw] = kernel.flip(0, 1).to(u)  # correlation = convolution with the flipped kernel
    full = torch.fft.irfft2(torch.fft.rfft2(padded) * torch.fft.rfft2(k), s=(ph, pw))
    return full[..., kh - 1 :, kw - 1 :]  # the valid part: circular wrap-around falls outside it


def defocus_blur(x: Tensor, severity: int, seeds: Tensor) -> Tensor:
    """The reference's anti-aliased disk kernel, per channel, with cv2's reflect-101 borders."""
    from imagecorruptions.corruptions import disk

    c = [(3, 0.1), (4, 0.5), (6, 0.5), (8, 0.5), (10, 0.5)][severity - 1]
    kernel = torch.from_numpy(disk(radius=c[0], alias_blur=c[1])).to(torch.float64)
    return _to_u8(_correlate_fft(_unit(x), kernel, "reflect"))


def _kernel1d(sigma: float, truncate: float) -> np.ndarray:
    radius = int(truncate * sigma + 0.5)
    x = np.arange(-radius, radius + 1)
    phi = np.exp(-0.5 / (sigma * sigma) * x**2)  # scipy's _gaussian_kernel1d, term for term
    return phi / phi.sum()


def _gaussian(
    u: Tensor, sigma: float | tuple[float, float], truncate: float = 4.0, mode: str = "nearest"
) -> Tensor:
    """scipy's gaussian_filter over H, then W, as scikit-image calls it (float64, on the CPU)."""
    from bench.corruptions.kernels import gaussian_hw

    sh, sw = (sigma, sigma) if isinstance(sigma, (int, float)) else sigma
    flat = u.to(torch.float64).cpu().reshape(-1, *u.shape[-2:]).numpy()
    out = gaussian_hw(flat, _kernel1d(sh, truncate), _kernel1d(sw, truncate), mode == "reflect")
    return torch.from_numpy(out).reshape(u.shape).to(u.device)


def gaussian_blur(x: Tensor, severity: int, seeds: Tensor) -> Tensor:
    return _to_u8(_gaussian(_unit(x), [1, 2, 3, 4, 6][severity - 1]))


# sigma, max_delta, iterations
GLASS = ((0.7, 1, 2), (0.9, 2, 1), (1, 2, 3), (1.1, 3, 2), (1.5, 4, 2))


def glass_blur(x: Tensor, severity: int, seeds: Tensor) -> Tensor:
    """Blur, the reference's seeded local pixel moves (numba, exact), blur again."""
    from bench.corruptions.kernels import glass_shuffle

    sigma, delta, iterations = GLASS[severity - 1]
    # a copy: the kernel writes in place
    first = np.ascontiguousarray(_hwc(_to_u8(_gaussian(_unit(x), sigma))))
    glass_shuffle(first, _seeds(seeds), delta, iterations)
    return _to_u8(_gaussian(_unit(_nchw(first, x.device)), sigma))


def _motion_shifts(width: int, angle: float) -> list[tuple[int, int]]:
    """The reference's (dy, dx) per kernel tap."""
    point = (width * np.sin(np.deg2rad(angle)), width * np.cos(np.deg2rad(angle)))
    hypot = math.hypot(point[0], point[1])
    return [
        (-math.ceil(((i * point[0]) / hypot) - 0.5), -math.ceil(((i * point[1]) / hypot) - 0.5))
        for i in range(width)
    ]


def _motion_blur(x: np.ndarray, radius: int, sigma: float, angles: np.ndarray) -> np.ndarray:
    """The reference's _motion_blur on (N,H,W,C), one angle per image, as float64."""
    from imagecorruptions.corruptions import getMotionBlurKernel

    from bench.corruptions.kernels import shifted_sum

    width = radius * 2 + 1
    k = getMotionBlurKernel(width, sigma)
    n, h, w = x.shape[:3]
    dys, dxs = np.zeros((n, width), np.int64), np.zeros((n, width), np.int64)
    counts = np.zeros(n, np.int64)
    for b, angle in enumerate(angles):
        for i, (dy, dx) in enumerate(_motion_shifts(width, angle)):
            if abs(dy) >= h or abs(dx) >= w:
                break
            dys[b, i], dxs[b, i], counts[b] = dy, dx, i + 1
    out = np.empty(x.shape, np.float64)
    shifted_sum(np.ascontiguousarray(x), k, dys, dxs, counts, out)
    return out


MOTION = ((10, 3), (15, 5), (15, 8), (15, 12), (20, 15))  # radius, sigma


def motion_blur(x: Tensor, severity: int, seeds: Tensor) -> Tensor:
    """Blur along a line at a random angle (the reference's angle draw, exact sums)."""
    from bench.corruptions.kernels import legacy_draws

    radius, sigma = MOTION[severity - 1]
    angles = legacy_draws(_seeds(seeds), 0, 0.0, 0.0, 1, -45, 45)[:, 0]
    return (
        _nchw(_motion_blur(_hwc(x), radius, sigma, angles), x.device).clamp(0, 255).to(torch.uint8)
    )


def _clipped_zoom_box(h: int, w: int, zoom: float) -> tuple[int, int, int, int, int, int]:
    """imagecorruptions' clipped_zoom: centre crop (top, left, height, width) and zoomed size."""
    ch0, ch1 = int(np.ceil(h / float(zoom))), int(np.ceil(w / float(zoom)))
    return (h - ch0) // 2, (w - ch1) // 2, ch0, ch1, int(round(ch0 * zoom)), int(round(ch1 * zoom))


SNOW = (
    (0.1, 0.3, 3, 0.5, 10, 4, 0.8),
    (0.2, 0.3, 2, 0.5, 12, 4, 0.7),
    (0.55, 0.3, 4, 0.9, 12, 8, 0.7),
    (0.55, 0.3, 4.5, 0.85, 12, 8, 0.65),
    (0.55, 0.3, 2.5, 0.85, 12, 12, 0.55),
)


def _cv2_gray(u: Tensor) -> Tensor:
    """cv2's RGB2GRAY of float32 images (N,1,H,W), by cv2 itself: its vector code fuses
    multiply-adds as the CPU allows, so a formula in torch differs from it in the last bit on a few
    pixels (enough to move a uint8)."""
    import cv2

    gray = np.stack(
        [cv2.cvtColor(np.ascontiguousarray(a), cv2.COLOR_RGB2GRAY)[..., None] for a in _hwc(u)]
    )
    return _nchw(gray, u.device)


def snow(x: Tensor, severity: int, seeds: Tensor) -> Tensor:
    """A zoomed, thresholded noise layer blurred along a random angle, over a brightened image.

    The layer's random draws, zoom (scipy's, order 1) and motion blur are the reference's, batched.
    """
    from bench.corruptions.kernels import legacy_draws, zoom_linear

    c = SNOW[severity - 1]
    n, _, h, w = x.shape
    draws = legacy_draws(_seeds(seeds), h * w, c[0], c[1], 1, -135, -45)
    noise, angles = draws[:, : h * w].reshape(n, h, w, 1), draws[:, -1]
    top, left, ch0, ch1, zh, zw = _clipped_zoom_box(h, w, c[2])
    layers = zoom_linear(np.ascontiguousarray(noise[:, top : top + ch0, left : left + ch1]), zh, zw)
    layers[layers < c[3]] = 0
    layers = np.clip(layers, 0, 1)
    layer = _motion_blur(layers, c[4], c[5], angles)
    layer = torch.from_numpy(np.round(layer * 255).astype(np.uint8)[:, :h, :w, 0]).to(x.device)
    layer = (layer.to(torch.float64) / 255.0)[:, None]
    u = x.to(torch.float32) / 255.0
    gray = _cv2_gray(u)
    u = c[6] * u + (1 - c[6]) * torch.maximum(u, gray * 1.5 + 0.5)
    return _to_u8(u.to(torch.float64) + layer + layer.flip(2, 3))


ZOOM_FACTORS = {
    1: (1, 1.11, 0.01),
    2: (1, 1.16, 0.01),
    3: (1, 1.21, 0.02),
    4: (1, 1.26, 0.02),
    5: (1, 1.31, 0.03),
}


def zoom_blur(x: Tensor, severity: int, seeds: Tensor) -> Tensor:
    """Mean of centre crops zoomed back (scipy zoom, order 1), in the reference's float32 steps."""
    from bench.corruptions.kernels import add_zoomed

    factors = np.arange(*ZOOM_FACTORS[severity])  # the reference's exact float steps
    u = (_hwc(x) / 255.0).astype(np.float32)
    _, h, w, _ = u.shape
    out = np.zeros_like(u)
    for z in factors:  # the reference's clipped_zoom, then [:h, :w]
        add_zoomed(u, *_clipped_zoom_box(h, w, z), out)
    u = (u + out) / (len(factors) + 1)
    return _nchw((np.clip(u, 0, 1) * 255).astype(np.uint8), x.device)


def elastic_transform(x: Tensor, severity: int, seeds: Tensor) -> Tensor:
    """Each pixel moved by a smoothed random field, with the reference's draws and float types."""
    from bench.corruptions.kernels import legacy_draws, map_linear_reflect

    alpha = [250 * 0.05, 250 * 0.065, 250 * 0.085, 250 * 0.1, 250 * 0.12][severity - 1]
    n, _, h, w = x.shape
    max_d = h * 0.005
    # dx, dy
    fields = legacy_draws(_seeds(seeds), 0, 0.0, 0.0, 2 * h * w, -max_d, max_d).reshape(n, 2, h, w)
    f = _gaussian(torch.from_numpy(fields), (h * 0.01, w * 0.01), truncate=3, mode="reflect")
    dx, dy = (f * alpha).to(torch.float32).to(torch.float64).numpy().transpose(1, 0, 2, 3)
    moved = map_linear_reflect(_hwc(x).astype(np.float32) / np.float32(255), dy, dx)
    return _to_u8(_nchw(moved, x.device))


FOG = ((1.5, 2), (2.0, 2), (2.5, 1.7), (2.5, 1.5), (3.0, 1.4))  # strength, wibble decay


def fog(x: Tensor, severity: int, seeds: Tensor) -> Tensor:
    """Add plasma-fractal haze, rescale to the old maximum (the reference's draws, float types)."""
    from imagecorruptions.corruptions import next_power_of_2

    from bench.corruptions.kernels import plasma_fractal

    c0, decay = FOG[severity - 1]
    n, _, h, w = x.shape
    size = next_power_of_2(max(h, w))
    haze = torch.from_numpy(plasma_fractal(_seeds(seeds), size, decay)[:, :h, :w]).to(x.device)
    u = _unit(x)
    top = u.amax(dim=(1, 2, 3), keepdim=True)
    u = u + (c0 * haze)[:, None].to(torch.float64)  # a float32 product, as NumPy makes it
    return _to_u8(u * top / (top + c0))


FROST_FILES = ("frost1.png", "frost2.png", "frost3.png", "frost4.jpg", "frost5.jpg", "frost6.jpg")
FROST_MIX = ((1, 0.4), (0.8, 0.6), (0.7, 0.7), (0.65, 0.7), (0.6, 0.75))


@functools.cache
def _frost_layers(h: int, w: int) -> tuple[np.ndarray, ...]:
    """The library's six frost photos (BGR), rescaled as it rescales them for an h x w image; read
    once.

    The reference reads and resizes a photo for every image, which is most of its time.
    """
    import importlib.resources

    import cv2

    layers = []
    for name in FROST_FILES:
        with importlib.resources.as_file(
            importlib.resources.files("imagecorruptions") / "frost" / name
        ) as path:
            frost_img = cv2.imread(str(path))
        fh, fw = frost_img.shape[:2]
        scale = (
            1.0
            if fh >= h and fw >= w
            else max(h / fh if fh < h else 0.0, w / fw if fw < w else 0.0)
        )
        scale *= 1.1
        size = (int(np.ceil(fw * scale)), int(np.ceil(fh * scale)))
        layers.append(cv2.resize(frost_img, dsize=size, interpolation=cv2.INTER_CUBIC))
    return tuple(layers)


def frost(x: Tensor, severity: int, seeds: Tensor) -> Tensor:
    """A random crop of one of six frost photos blended in; photo and crop drawn exactly as the
    reference draws them."""
    from bench.corruptions.kernels import frost_picks

    _, _, h, w = x.shape
    layers = _frost_layers(h, w)
    # (photo, top, left) per image
    picks = frost_picks(
        _seeds(seeds),
        np.array([a.shape[0] for a in layers]),
        np.array([a.shape[1] for a in layers]),
        h,
        w,
    )
    crops = [layers[k][top : top + h, left : left + w][..., [2, 1, 0]] for k, top, left in picks]
    f = _nchw(np.stack(crops), x.device)
    c0, c1 = FROST_MIX[severity - 1]
    return (c0 * x.to(torch.float64) + c1 * f.to(torch.float64)).clamp(0, 255).to(torch.uint8)


FAST: dict[str, Callable[[Tensor, int, Tensor], Tensor]] = {
    "gaussian_noise": gaussian_noise,
    "shot_noise": shot_noise,
    "impulse_noise": impulse_noise,
    "speckle_noise": speckle_noise,
    "contrast": contrast,
    "brightness": brightness,
    "saturate": saturate,
    "defocus_blur": defocus_blur,
    "gaussian_blur": gaussian_blur,
    "zoom_blur": zoom_blur,
    "frost": frost,
    "glass_blur": glass_blur,
    "motion_blur": motion_blur,
    "snow": snow,
    "elastic_transform": elastic_transform,
    "fog": fog,
}


def corrupt_batch(
    images: np.ndarray,
    indices: np.ndarray,
    name: str,
    severity: int,
    seed: int,
    device: torch.device,
    batch_size: int = 256,
) -> np.ndarray:
    """uint8 (N,H,W,3) images corrupted on `device`, seeded per image exactly as the reference."""
    from bench.corruptions.base import check_severity
    from bench.corruptions.reference import seeds_for

    check_severity(severity)
    if name not in FAST:
        raise unknown("batched corruption", name, FAST)
    out = np.empty_like(images)
    fn = FAST[name]
    for s in range(0, len(images), batch_size):
        seeds = torch.from_numpy(seeds_for(seed, indices[s : s + batch_size], name, severity))
        out[s : s + batch_size] = _hwc(
            fn(_nchw(images[s : s + batch_size], device), severity, seeds)
        )
    return out
