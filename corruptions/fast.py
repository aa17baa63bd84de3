"""Batched torch corruptions (CPU or GPU) that match the reference closely enough to replace it.

Each function maps uint8 (N,3,H,W) images to uint8 (N,3,H,W) at one severity, with one seed per
image. `PARITY` says how each was checked against imagecorruptions-imaug (tests/test_fast_corruptions):
`exact`: the same uint8 images (the reference's random draws, from NumPy or numba generators seeded
as it seeds them, and its float types and order of operations); `pm1`: every pixel within ±1
level. These run by default; the others (pixelate, jpeg_compression, spatter) use the reference.
Truncation to uint8 is as `np.uint8` does it. The per-pixel loops of the noises, glass_blur,
motion_blur, snow and fog run as numba kernels on the CPU (corruptions/kernels.py), whatever the
device; the rest runs on the images' device.
"""
from __future__ import annotations

import functools
import math
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from corruptions.base import PARITY  # noqa: F401  (re-exported: which of these run by default, and why)

SOURCE = "torch"


def _unit(x: Tensor, dtype: torch.dtype = torch.float64) -> Tensor:
    return x.to(dtype) / 255.0


def _to_u8(x: Tensor) -> Tensor:
    return (x.clamp(0, 1) * 255).to(torch.uint8)  # truncation, as np.uint8 on floats


def _hwc(x: Tensor) -> np.ndarray:
    """(N,C,H,W) tensor -> (N,H,W,C) array on the CPU, the layout of the reference and the numba kernels."""
    return x.permute(0, 2, 3, 1).cpu().numpy()


def _nchw(a: np.ndarray, device: torch.device) -> Tensor:
    """(N,H,W,C) array -> (N,C,H,W) tensor on `device`."""
    return torch.from_numpy(np.ascontiguousarray(a)).to(device).permute(0, 3, 1, 2)


def _noise(x: Tensor, seeds: Tensor, kind: int, c: float) -> Tensor:
    from corruptions import kernels

    out = kernels.pixel_noise(_hwc(x) / 255., seeds.numpy().astype(np.int64), kind, float(c))
    return _to_u8(_nchw(out, x.device))


def gaussian_noise(x: Tensor, severity: int, seeds: Tensor) -> Tensor:
    from corruptions.kernels import GAUSSIAN

    return _noise(x, seeds, GAUSSIAN, [.08, .12, 0.18, 0.26, 0.38][severity - 1])


def shot_noise(x: Tensor, severity: int, seeds: Tensor) -> Tensor:
    from corruptions.kernels import SHOT

    return _noise(x, seeds, SHOT, [60, 25, 12, 5, 3][severity - 1])


def speckle_noise(x: Tensor, severity: int, seeds: Tensor) -> Tensor:
    from corruptions.kernels import SPECKLE

    return _noise(x, seeds, SPECKLE, [.15, .2, 0.35, 0.45, 0.6][severity - 1])


def impulse_noise(x: Tensor, severity: int, seeds: Tensor) -> Tensor:
    """scikit-image's salt and pepper ('s&p', salt_vs_pepper 0.5) from its seeded default_rng, per channel value."""
    c = [.03, .06, .09, 0.17, 0.27][severity - 1]
    hwc = (x.shape[2], x.shape[3], x.shape[1])
    r = torch.from_numpy(np.stack([np.random.default_rng(s).random((2, *hwc)) for s in seeds.tolist()]))
    r = r.to(x.device).permute(0, 1, 4, 2, 3)  # (N, 2, C, H, W)
    flipped, salted = r[:, 0] <= c, r[:, 1] <= 0.5
    u = _unit(x)
    return _to_u8(torch.where(flipped & salted, torch.ones_like(u), torch.where(flipped, torch.zeros_like(u), u)))


def contrast(x: Tensor, severity: int, seeds: Tensor) -> Tensor:
    c = [0.4, .3, .2, .1, .05][severity - 1]
    u = _unit(x)
    means = u.mean(dim=(2, 3), keepdim=True)
    return _to_u8((u - means) * c + means)


def _rgb2hsv(u: Tensor) -> Tensor:
    """scikit-image's rgb2hsv on (N,3,H,W), including which channel wins ties (blue, then green)."""
    r, g, b = u.unbind(1)
    v = u.amax(1)
    delta = v - u.amin(1)
    safe = torch.where(delta == 0, torch.ones_like(delta), delta)
    h = torch.where(r == v, (g - b) / safe, torch.zeros_like(v))
    h = torch.where(g == v, 2.0 + (b - r) / safe, h)
    h = torch.where(b == v, 4.0 + (r - g) / safe, h)
    h = torch.where(delta == 0, torch.zeros_like(h), torch.remainder(h / 6.0, 1.0))
    s = torch.where(delta == 0, torch.zeros_like(delta), delta / torch.where(v == 0, torch.ones_like(v), v))
    return torch.stack([h, s, v], 1)


def _hsv2rgb(hsv: Tensor) -> Tensor:
    h, s, v = hsv.unbind(1)
    hi = torch.floor(h * 6)
    f = h * 6 - hi
    p, q, t = v * (1 - s), v * (1 - f * s), v * (1 - (1 - f) * s)
    hi = torch.remainder(hi.to(torch.uint8), 6)

    def pick(*by_sector: Tensor) -> Tensor:
        out = by_sector[0]
        for k in range(1, 6):
            out = torch.where(hi == k, by_sector[k], out)
        return out

    return torch.stack([pick(v, q, p, p, t, v), pick(t, v, v, q, p, p), pick(p, p, t, v, v, q)], 1)


def brightness(x: Tensor, severity: int, seeds: Tensor) -> Tensor:
    c = [.1, .2, .3, .4, .5][severity - 1]
    hsv = _rgb2hsv(_unit(x))
    hsv[:, 2] = (hsv[:, 2] + c).clamp(0, 1)
    return _to_u8(_hsv2rgb(hsv))


def saturate(x: Tensor, severity: int, seeds: Tensor) -> Tensor:
    c = [(0.3, 0), (0.1, 0), (2, 0), (5, 0.1), (20, 0.2)][severity - 1]
    hsv = _rgb2hsv(_unit(x))
    hsv[:, 1] = (hsv[:, 1] * c[0] + c[1]).clamp(0, 1)
    return _to_u8(_hsv2rgb(hsv))


def _correlate_fft(u: Tensor, kernel: Tensor, pad_mode: str) -> Tensor:
    """Per-channel correlation with a large kernel through the FFT (float64: as exact as direct)."""
    kh, kw = kernel.shape
    padded = F.pad(u, (kw // 2, kw // 2, kh // 2, kh // 2), mode=pad_mode)
    ph, pw = padded.shape[-2:]
    k = torch.zeros(ph, pw, dtype=u.dtype, device=u.device)
    k[:kh, :kw] = kernel.flip(0, 1).to(u)  # correlation = convolution with the flipped kernel
    full = torch.fft.irfft2(torch.fft.rfft2(padded) * torch.fft.rfft2(k), s=(ph, pw))
    return full[..., kh - 1:, kw - 1:]  # the valid part: circular wrap-around falls outside it


def defocus_blur(x: Tensor, severity: int, seeds: Tensor) -> Tensor:
    """The reference's anti-aliased disk kernel, applied per channel with reflect-101 borders (cv2's)."""
    from imagecorruptions.corruptions import disk

    c = [(3, 0.1), (4, 0.5), (6, 0.5), (8, 0.5), (10, 0.5)][severity - 1]
    kernel = torch.from_numpy(disk(radius=c[0], alias_blur=c[1])).to(torch.float64)
    return _to_u8(_correlate_fft(_unit(x), kernel, "reflect"))


def _kernel1d(sigma: float, truncate: float) -> np.ndarray:
    radius = int(truncate * sigma + 0.5)
    x = np.arange(-radius, radius + 1)
    phi = np.exp(-0.5 / (sigma * sigma) * x ** 2)  # scipy's _gaussian_kernel1d, term for term
    return phi / phi.sum()


def _gaussian(u: Tensor, sigma: float | tuple[float, float], truncate: float = 4.0, mode: str = "nearest") -> Tensor:
    """scipy's gaussian_filter over H, then W, as scikit-image calls it (float64; computed on the CPU)."""
    from corruptions.kernels import gaussian_hw

    sh, sw = (sigma, sigma) if isinstance(sigma, (int, float)) else sigma
    flat = u.to(torch.float64).cpu().reshape(-1, *u.shape[-2:]).numpy()
    out = gaussian_hw(flat, _kernel1d(sh, truncate), _kernel1d(sw, truncate), mode == "reflect")
    return torch.from_numpy(out).reshape(u.shape).to(u.device)


def gaussian_blur(x: Tensor, severity: int, seeds: Tensor) -> Tensor:
    return _to_u8(_gaussian(_unit(x), [1, 2, 3, 4, 6][severity - 1]))


GLASS = ((0.7, 1, 2), (0.9, 2, 1), (1, 2, 3), (1.1, 3, 2), (1.5, 4, 2))  # sigma, max_delta, iterations


def glass_blur(x: Tensor, severity: int, seeds: Tensor) -> Tensor:
    """Blur, the reference's seeded local pixel moves (numba, exact), blur again."""
    from corruptions.kernels import glass_shuffle

    sigma, delta, iterations = GLASS[severity - 1]
    first = np.ascontiguousarray(_hwc(_to_u8(_gaussian(_unit(x), sigma))))  # a copy: the kernel writes in place
    glass_shuffle(first, seeds.numpy().astype(np.int64), delta, iterations)
    return _to_u8(_gaussian(_unit(_nchw(first, x.device)), sigma))


def _motion_shifts(width: int, angle: float) -> list[tuple[int, int]]:
    """The reference's (dy, dx) per kernel tap."""
    point = (width * np.sin(np.deg2rad(angle)), width * np.cos(np.deg2rad(angle)))
    hypot = math.hypot(point[0], point[1])
    return [(-math.ceil(((i * point[0]) / hypot) - 0.5), -math.ceil(((i * point[1]) / hypot) - 0.5))
            for i in range(width)]


def _motion_blur(x: np.ndarray, radius: int, sigma: float, angles: list[float]) -> np.ndarray:
    """The reference's _motion_blur on (N,H,W,C), one angle per image, as float64."""
    from imagecorruptions.corruptions import getMotionBlurKernel

    from corruptions.kernels import shifted_sum

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
    radius, sigma = MOTION[severity - 1]
    angles = [np.random.RandomState(s).uniform(-45, 45) for s in seeds.tolist()]
    return _nchw(_motion_blur(_hwc(x), radius, sigma, angles), x.device).clamp(0, 255).to(torch.uint8)


SNOW = ((0.1, 0.3, 3, 0.5, 10, 4, 0.8), (0.2, 0.3, 2, 0.5, 12, 4, 0.7), (0.55, 0.3, 4, 0.9, 12, 8, 0.7),
        (0.55, 0.3, 4.5, 0.85, 12, 8, 0.65), (0.55, 0.3, 2.5, 0.85, 12, 12, 0.55))


def snow(x: Tensor, severity: int, seeds: Tensor) -> Tensor:
    """A zoomed, thresholded noise layer blurred along a random angle, over a brightened image.

    The layer's random draws and zoom are the reference's (NumPy, scipy), per image; the motion
    blur and the blend run on the batch.
    """
    from imagecorruptions.corruptions import clipped_zoom

    c = SNOW[severity - 1]
    _, _, h, w = x.shape
    layers, angles = [], []
    for s in seeds.tolist():
        rs = np.random.RandomState(s)
        layer = clipped_zoom(rs.normal(size=(h, w), loc=c[0], scale=c[1])[..., np.newaxis], c[2])
        layer[layer < c[3]] = 0
        layers.append(np.clip(layer, 0, 1))
        angles.append(rs.uniform(-135, -45))
    layer = _motion_blur(np.stack(layers), c[4], c[5], angles)
    layer = torch.from_numpy(np.round(layer * 255).astype(np.uint8)[:, :h, :w, 0]).to(x.device)
    layer = (layer.to(torch.float64) / 255.)[:, None]
    u = x.to(torch.float32) / 255.
    gray = (u[:, 0] * 0.299 + u[:, 1] * 0.587 + u[:, 2] * 0.114)[:, None]  # cv2's RGB2GRAY in float32
    u = c[6] * u + (1 - c[6]) * torch.maximum(u, gray * 1.5 + 0.5)
    return _to_u8(u.to(torch.float64) + layer + layer.flip(2, 3))


ZOOM_FACTORS = {1: (1, 1.11, 0.01), 2: (1, 1.16, 0.01), 3: (1, 1.21, 0.02), 4: (1, 1.26, 0.02), 5: (1, 1.31, 0.03)}


def zoom_blur(x: Tensor, severity: int, seeds: Tensor) -> Tensor:
    """Average of centre crops zoomed back up (scipy zoom, order 1 = corner-aligned bilinear), float32."""
    factors = np.arange(*ZOOM_FACTORS[severity]).tolist()  # the reference's exact float steps
    u = _unit(x, torch.float32)
    h, w = u.shape[2:]
    out = torch.zeros_like(u)
    for z in factors:
        ch0, ch1 = int(math.ceil(h / z)), int(math.ceil(w / z))
        top0, top1 = (h - ch0) // 2, (w - ch1) // 2
        crop = u[:, :, top0:top0 + ch0, top1:top1 + ch1]
        size = (int(round(ch0 * z)), int(round(ch1 * z)))
        zoomed = F.interpolate(crop, size=size, mode="bilinear", align_corners=True)[:, :, :h, :w]
        out[:, :, :zoomed.shape[2], :zoomed.shape[3]] += zoomed
    return _to_u8((u + out) / (len(factors) + 1))


def _reflect_coordinate(c: Tensor, n: int) -> Tensor:
    """scipy's map_coordinate for mode 'reflect' (float64, truncating integer casts as in C)."""
    sz2 = 2 * n
    neg = torch.where(c < -sz2, sz2 * torch.trunc(-c / sz2) + c, c)
    neg = torch.where(neg < -n, neg + sz2, torch.where(neg > -1e-15, torch.full_like(neg, 1e-15), -neg) - 1)
    pos = c - sz2 * torch.trunc(c / sz2)
    pos = torch.where(pos >= n, sz2 - pos - 1, pos)
    return torch.where(c < 0, neg, torch.where(c > n - 1, pos, c))


def _linear_taps(c: Tensor, n: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Both taps of order-1 interpolation (reflected into range) and their weights, as scipy computes them."""
    m = _reflect_coordinate(c, n)
    start = torch.floor(m)
    w0 = 1.0 - (m - start)
    i0 = start.long()
    i1 = i0 + 1
    return torch.where(i0 < 0, -i0 - 1, i0), torch.where(i1 >= n, 2 * n - i1 - 1, i1), w0, 1.0 - w0


def _map_linear(img: Tensor, rows: Tensor, cols: Tensor) -> Tensor:
    """scipy's map_coordinates(order=1, mode='reflect') of float32 (N,C,H,W) at float64 (N,H,W) points."""
    n, ch, h, w = img.shape
    y0, y1, wy0, wy1 = _linear_taps(rows, h)
    x0, x1, wx0, wx1 = _linear_taps(cols, w)
    flat = img.to(torch.float64).reshape(n, ch, h * w)

    def at(yi: Tensor, xi: Tensor) -> Tensor:
        return flat.gather(2, (yi * w + xi).reshape(n, 1, h * w).expand(n, ch, h * w)).reshape(n, ch, h, w)

    wy0, wy1, wx0, wx1 = (t[:, None] for t in (wy0, wy1, wx0, wx1))
    out = at(y0, x0) * wy0 * wx0 + at(y0, x1) * wy0 * wx1  # scipy's tap order; data x weight_y x weight_x
    out = out + at(y1, x0) * wy1 * wx0
    return (out + at(y1, x1) * wy1 * wx1).to(torch.float32)


def elastic_transform(x: Tensor, severity: int, seeds: Tensor) -> Tensor:
    """Each pixel moved by a smoothed random field; the reference's draws and float types throughout."""
    alpha = [250 * 0.05, 250 * 0.065, 250 * 0.085, 250 * 0.1, 250 * 0.12][severity - 1]
    n, _, h, w = x.shape
    max_d = h * 0.005
    fields = []
    for s in seeds.tolist():
        rs = np.random.RandomState(s)
        fields.append(np.stack([rs.uniform(-max_d, max_d, size=(h, w)), rs.uniform(-max_d, max_d, size=(h, w))]))
    f = _gaussian(torch.from_numpy(np.stack(fields)).to(x.device), (h * 0.01, w * 0.01), truncate=3, mode="reflect")
    dx, dy = (f * alpha).to(torch.float32).to(torch.float64).unbind(1)
    rows = torch.arange(h, device=x.device, dtype=torch.float64)[:, None] + dy
    cols = torch.arange(w, device=x.device, dtype=torch.float64)[None, :] + dx
    return _to_u8(_map_linear(x.to(torch.float32) / 255., rows, cols))


FOG = ((1.5, 2), (2., 2), (2.5, 1.7), (2.5, 1.5), (3., 1.4))  # strength, wibble decay


def fog(x: Tensor, severity: int, seeds: Tensor) -> Tensor:
    """A plasma-fractal haze added and the image rescaled to its old maximum (the reference's draws, float types)."""
    from imagecorruptions.corruptions import next_power_of_2

    from corruptions.kernels import plasma_fractal

    c0, decay = FOG[severity - 1]
    n, _, h, w = x.shape
    size = next_power_of_2(max(h, w))
    haze = torch.from_numpy(plasma_fractal(seeds.numpy().astype(np.int64), size, decay)[:, :h, :w]).to(x.device)
    u = _unit(x)
    top = u.amax(dim=(1, 2, 3), keepdim=True)
    u = u + (c0 * haze)[:, None].to(torch.float64)  # a float32 product, as NumPy makes it
    return _to_u8(u * top / (top + c0))


FROST_FILES = ("frost1.png", "frost2.png", "frost3.png", "frost4.jpg", "frost5.jpg", "frost6.jpg")
FROST_MIX = ((1, 0.4), (0.8, 0.6), (0.7, 0.7), (0.65, 0.7), (0.6, 0.75))


@functools.cache
def _frost_layers(h: int, w: int) -> tuple[np.ndarray, ...]:
    """The library's six frost photos (BGR), rescaled as it rescales them for an h x w image; read once.

    The reference reads and resizes a photo for every image, which is most of its time.
    """
    import importlib.resources

    import cv2

    layers = []
    for name in FROST_FILES:
        with importlib.resources.as_file(importlib.resources.files("imagecorruptions") / "frost" / name) as path:
            frost_img = cv2.imread(str(path))
        fh, fw = frost_img.shape[:2]
        scale = 1.0 if fh >= h and fw >= w else max(h / fh if fh < h else 0.0, w / fw if fw < w else 0.0)
        scale *= 1.1
        size = (int(np.ceil(fw * scale)), int(np.ceil(fh * scale)))
        layers.append(cv2.resize(frost_img, dsize=size, interpolation=cv2.INTER_CUBIC))
    return tuple(layers)


def frost(x: Tensor, severity: int, seeds: Tensor) -> Tensor:
    """A random crop of one of six frost photos blended in; photo and crop drawn exactly as the reference draws them."""
    _, _, h, w = x.shape
    layers = _frost_layers(h, w)
    crops = []
    for s in seeds.tolist():
        rs = np.random.RandomState(s)  # the reference seeds NumPy's global RNG with s: the same stream
        layer = layers[rs.randint(6)]
        top, left = rs.randint(0, layer.shape[0] - h), rs.randint(0, layer.shape[1] - w)
        crops.append(layer[top:top + h, left:left + w][..., [2, 1, 0]])
    f = _nchw(np.stack(crops), x.device)
    c0, c1 = FROST_MIX[severity - 1]
    return (c0 * x.to(torch.float64) + c1 * f.to(torch.float64)).clamp(0, 255).to(torch.uint8)


FAST: dict[str, Callable[[Tensor, int, Tensor], Tensor]] = {
    "gaussian_noise": gaussian_noise, "shot_noise": shot_noise, "impulse_noise": impulse_noise,
    "speckle_noise": speckle_noise, "contrast": contrast, "brightness": brightness, "saturate": saturate,
    "defocus_blur": defocus_blur, "gaussian_blur": gaussian_blur, "zoom_blur": zoom_blur, "frost": frost,
    "glass_blur": glass_blur, "motion_blur": motion_blur, "snow": snow, "elastic_transform": elastic_transform,
    "fog": fog,
}


def corrupt_batch(images: "np.ndarray", indices: "np.ndarray", name: str, severity: int, seed: int,
                  device: torch.device, batch_size: int = 256) -> "np.ndarray":
    """uint8 (N,H,W,3) images corrupted on `device`, seeded per image exactly like the reference path."""
    from corruptions.reference import seed_for

    out = np.empty_like(images)
    fn = FAST[name]
    for s in range(0, len(images), batch_size):
        seeds = torch.tensor([seed_for(seed, int(i), name, severity) for i in indices[s:s + batch_size]])
        out[s:s + batch_size] = _hwc(fn(_nchw(images[s:s + batch_size], device), severity, seeds))
    return out
