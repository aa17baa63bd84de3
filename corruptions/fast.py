"""Batched torch corruptions (CPU or GPU) that match the reference closely enough to replace it.

Each function maps uint8 (N,3,H,W) images to uint8 (N,3,H,W) at one severity, with one seed per
image. `PARITY` says how each was checked against imagecorruptions-imaug (tests/test_fast_corruptions):
`pm1`: deterministic, every pixel within ±1 intensity level of the reference; `stats`: random
fields drawn from torch generators (so not the same pixels), with matching mean, standard deviation
and PSNR to the clean image. Only these run by default; every other corruption uses the reference.
Arithmetic follows the reference: float64 (float32 for zoom_blur, as there; random fields are drawn
in float32), and truncation to uint8 as `np.uint8` does.
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


def _generators(seeds: Tensor, device: torch.device) -> list[torch.Generator]:
    return [torch.Generator(device=device).manual_seed(int(s)) for s in seeds.tolist()]


def _per_image(seeds: Tensor, like: Tensor, draw: Callable[[torch.Generator, torch.Size], Tensor]) -> Tensor:
    gens = _generators(seeds, like.device)
    return torch.stack([draw(g, like.shape[1:]) for g in gens])


def gaussian_noise(x: Tensor, severity: int, seeds: Tensor) -> Tensor:
    c = [.08, .12, 0.18, 0.26, 0.38][severity - 1]
    u = _unit(x)
    noise = _per_image(seeds, u, lambda g, s: torch.randn(s, generator=g, device=u.device))
    return _to_u8(u + c * noise.to(u.dtype))


def shot_noise(x: Tensor, severity: int, seeds: Tensor) -> Tensor:
    c = [60, 25, 12, 5, 3][severity - 1]
    u = _unit(x)
    gens = _generators(seeds, u.device)
    out = torch.stack([torch.poisson(ui * c, generator=g) for ui, g in zip(u, gens)])
    return _to_u8(out / c)


def impulse_noise(x: Tensor, severity: int, seeds: Tensor) -> Tensor:
    """Salt and pepper on each channel value independently (scikit-image's 's&p', salt_vs_pepper 0.5)."""
    c = [.03, .06, .09, 0.17, 0.27][severity - 1]
    u = _unit(x)
    r = _per_image(seeds, u, lambda g, s: torch.rand((2, *s), generator=g, device=u.device))
    flipped, salted = r[:, 0] < c, r[:, 1] < 0.5
    out = torch.where(flipped & salted, torch.ones_like(u), torch.where(flipped, torch.zeros_like(u), u))
    return _to_u8(out)


def speckle_noise(x: Tensor, severity: int, seeds: Tensor) -> Tensor:
    c = [.15, .2, 0.35, 0.45, 0.6][severity - 1]
    u = _unit(x)
    noise = _per_image(seeds, u, lambda g, s: torch.randn(s, generator=g, device=u.device))
    return _to_u8(u + u * noise.to(u.dtype) * c)


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
    hi = torch.remainder(hi.to(torch.uint8), 6).long()
    choices = torch.stack([torch.stack(c, 1) for c in
                           ((v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q))])  # (6,N,3,H,W)
    return torch.gather(choices, 0, hi[None, :, None].expand(1, -1, 3, -1, -1))[0]


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


def _depthwise(u: Tensor, kernel: Tensor, pad_mode: str) -> Tensor:
    kh, kw = kernel.shape
    padded = F.pad(u, (kw // 2, kw // 2, kh // 2, kh // 2), mode=pad_mode)
    weight = kernel.to(u)[None, None].expand(u.shape[1], 1, kh, kw)
    return F.conv2d(padded, weight, groups=u.shape[1])


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


def gaussian_blur(x: Tensor, severity: int, seeds: Tensor) -> Tensor:
    """scipy's gaussian_filter as scikit-image calls it: truncate 4, 'nearest' borders, separable."""
    sigma = [1, 2, 3, 4, 6][severity - 1]
    radius = int(4.0 * sigma + 0.5)
    k = torch.exp(-0.5 * (torch.arange(-radius, radius + 1, dtype=torch.float64) / sigma) ** 2)
    k = k / k.sum()
    u = _unit(x)
    u = _depthwise(u, k[None, :], "replicate")
    return _to_u8(_depthwise(u, k[:, None], "replicate"))


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
    f = torch.from_numpy(np.stack(crops)).to(x.device).permute(0, 3, 1, 2)
    c0, c1 = FROST_MIX[severity - 1]
    return (c0 * x.to(torch.float64) + c1 * f.to(torch.float64)).clamp(0, 255).to(torch.uint8)


FAST: dict[str, Callable[[Tensor, int, Tensor], Tensor]] = {
    "gaussian_noise": gaussian_noise, "shot_noise": shot_noise, "impulse_noise": impulse_noise,
    "speckle_noise": speckle_noise, "contrast": contrast, "brightness": brightness, "saturate": saturate,
    "defocus_blur": defocus_blur, "gaussian_blur": gaussian_blur, "zoom_blur": zoom_blur, "frost": frost,
}


def corrupt_batch(images: "np.ndarray", indices: "np.ndarray", name: str, severity: int, seed: int,
                  device: torch.device, batch_size: int = 256) -> "np.ndarray":
    """uint8 (N,H,W,3) images corrupted on `device`, seeded per image exactly like the reference path."""
    from corruptions.reference import seed_for

    out = np.empty_like(images)
    fn = FAST[name]
    for s in range(0, len(images), batch_size):
        x = torch.from_numpy(np.ascontiguousarray(images[s:s + batch_size])).to(device).permute(0, 3, 1, 2)
        seeds = torch.tensor([seed_for(seed, int(i), name, severity) for i in indices[s:s + batch_size]])
        out[s:s + batch_size] = fn(x, severity, seeds).permute(0, 2, 3, 1).cpu().numpy()
    return out
