"""Numba kernels for the corruptions' per-pixel loops, a whole batch per call, images in parallel.

The reference runs these one image at a time (in NumPy, scipy, scikit-image, or numba for glass
blur). Each kernel reproduces it exactly: the same random draws in the same order (numba's seeded
legacy generator equals NumPy's), the same float types, the same sums in the same order.
Compiled on first use and cached next to this file.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange


@njit(parallel=True, cache=True)
def glass_shuffle(x: np.ndarray, seeds: np.ndarray, max_delta: int, iterations: int) -> None:
    """glass_blur's local pixel 'shuffle' on uint8 (N,H,W,C), in place.

    The reference writes `x[h, w], x[h', w'] = x[h', w'], x[h, w]` on array views, which copies
    x[h', w'] into x[h, w] and leaves x[h', w'] as it was; so does this. Numba's generator is per
    thread, and an image runs wholly on one thread, so seeding it per image gives the reference's
    draws.
    """
    n, d0, d1, ch = x.shape
    for b in prange(n):
        np.random.seed(seeds[b])
        for _ in range(iterations):
            for h in range(d0 - max_delta, max_delta, -1):
                for w in range(d1 - max_delta, max_delta, -1):
                    dx = np.random.randint(-max_delta, max_delta)
                    dy = np.random.randint(-max_delta, max_delta)
                    for c in range(ch):
                        x[b, h, w, c] = x[b, h + dy, w + dx, c]


@njit(parallel=True, cache=True)
def shifted_sum(
    x: np.ndarray,
    weights: np.ndarray,
    dys: np.ndarray,
    dxs: np.ndarray,
    counts: np.ndarray,
    out: np.ndarray,
) -> None:
    """out[b,i,j,c] = sum_k weights[k] * x[b, clamp(i - dys[b,k]), clamp(j - dxs[b,k]), c] for k <
    counts[b].

    The reference's `shift` rolls the image and repeats its edge row/column: a clamped index. Each
    pixel's terms are added in the reference's order (k ascending, from 0.0), in float64.
    """
    n, hgt, wid, ch = x.shape
    for b in prange(n):
        o = out[b].reshape(hgt, wid * ch)
        o[:] = 0.0
        src = x[b].reshape(hgt, wid * ch)
        for k in range(counts[b]):
            wk, dy, dx = weights[k], dys[b, k], dxs[b, k]
            # columns whose source j - dx is inside
            lo, hi = (min(max(dx, 0), wid), max(min(wid + dx, wid), 0))
            for i in range(hgt):
                row, srow = o[i], src[min(max(i - dy, 0), hgt - 1)]
                for j in range(lo):
                    for c in range(ch):
                        row[j * ch + c] += wk * srow[c]
                for t in range(lo * ch, hi * ch):
                    row[t] += wk * srow[t - dx * ch]
                for j in range(hi, wid):
                    for c in range(ch):
                        row[j * ch + c] += wk * srow[(wid - 1) * ch + c]


@njit(inline="always")
def _wibbled(mean4: float, wibble: float) -> np.float32:
    return np.float32(mean4 / 4 + wibble * np.random.uniform(-wibble, wibble))


@njit(parallel=True, cache=True)
def plasma_fractal(seeds: np.ndarray, mapsize: int, wibbledecay: float) -> np.ndarray:
    """fog's diamond-square height maps in [0, 1], (N, mapsize, mapsize) float32, one seed per
    image.

    Mirrors the reference's NumPy version step for step: the same uniform draws in the same order
    (numba's seeded generator equals NumPy's legacy one), float32 storage after every step, and its
    wrap-around neighbours (np.roll). A float32 sum computed in float64 and rounded is the float32
    sum.
    """
    out = np.empty((len(seeds), mapsize, mapsize), np.float32)
    for b in prange(len(seeds)):
        np.random.seed(seeds[b])
        m = out[b]
        m[0, 0] = 0
        step = mapsize
        wibble = 100.0
        while step >= 2:
            k, h = mapsize // step, step // 2
            for i in range(k):  # squares
                for j in range(k):
                    a = np.float32(m[i * step, j * step] + m[((i + 1) % k) * step, j * step])
                    c = np.float32(
                        m[i * step, ((j + 1) % k) * step]
                        + m[((i + 1) % k) * step, ((j + 1) % k) * step]
                    )
                    m[i * step + h, j * step + h] = _wibbled(np.float32(a + c), wibble)
            for i in range(k):  # diamonds, left/right of each square centre
                for j in range(k):
                    dr = np.float32(
                        m[i * step + h, j * step + h] + m[((i - 1) % k) * step + h, j * step + h]
                    )
                    ul = np.float32(m[i * step, j * step] + m[i * step, ((j + 1) % k) * step])
                    m[i * step, j * step + h] = _wibbled(np.float32(dr + ul), wibble)
            for i in range(k):  # diamonds, above/below
                for j in range(k):
                    dr = np.float32(
                        m[i * step + h, j * step + h] + m[i * step + h, ((j - 1) % k) * step + h]
                    )
                    ul = np.float32(m[i * step, j * step] + m[((i + 1) % k) * step, j * step])
                    m[i * step + h, j * step] = _wibbled(np.float32(dr + ul), wibble)
            step //= 2
            wibble /= wibbledecay
        m -= m.min()
        m /= m.max()
    return out


GAUSSIAN, SPECKLE, SHOT = 0, 1, 2


@njit(inline="always")
def _u8(v: float) -> np.uint8:
    """[0,1] float -> uint8 as the reference ends: clip, times 255, truncate."""
    return np.uint8(min(max(v, 0.0), 1.0) * 255.0)


@njit(parallel=True, cache=True)
def pixel_noise(x: np.ndarray, seeds: np.ndarray, kind: int, c: float) -> np.ndarray:
    """The reference's noise on uint8 (N,H,W,C), one seed per image, drawn in its order; uint8 out.

    On u = x / 255 in float64: GAUSSIAN: u + normal(0, c); SPECKLE: u + u * normal(0, c); SHOT:
    poisson(u * c) / c. Numba's seeded normal and poisson draw exactly what NumPy's legacy generator
    draws.
    """
    out = np.empty_like(x)
    n, h, w, ch = x.shape
    for b in prange(n):
        np.random.seed(seeds[b])
        for i in range(h):
            for j in range(w):
                for k in range(ch):
                    v = x[b, i, j, k] / 255.0
                    if kind == SHOT:
                        out[b, i, j, k] = _u8(np.random.poisson(v * c) / c)
                    elif kind == SPECKLE:
                        out[b, i, j, k] = _u8(v + v * np.random.normal(0.0, c))
                    else:
                        out[b, i, j, k] = _u8(v + np.random.normal(0.0, c))
    return out


@njit(parallel=True, cache=True)
def salt_and_pepper(x: np.ndarray, draws: np.ndarray, amount: float) -> np.ndarray:
    """uint8 (N,H,W,C) with values whose draws[:, 0] <= amount set to 1 (draws[:, 1] <= 0.5) or 0,
    as floats in [0,1] would be."""
    out = np.empty_like(x)
    n, h, w, ch = x.shape
    for b in prange(n):
        for i in range(h):
            for j in range(w):
                for k in range(ch):
                    if draws[b, 0, i, j, k] <= amount:
                        out[b, i, j, k] = 255 if draws[b, 1, i, j, k] <= 0.5 else 0
                    else:
                        out[b, i, j, k] = _u8(x[b, i, j, k] / 255.0)
    return out


@njit(parallel=True, cache=True)
def hsv_adjust(x: np.ndarray, channel: int, scale: float, shift: float) -> np.ndarray:
    """scikit-image's rgb2hsv, one of s (1) or v (2) set to clip(value * scale + shift, 0, 1),
    hsv2rgb; uint8 (N,H,W,3).

    Per pixel, in float64 as scikit-image computes on arrays: ties in the hue go to blue, then
    green.
    """
    out = np.empty_like(x)
    n, h, w, _ = x.shape
    for b in prange(n):
        for i in range(h):
            for j in range(w):
                r, g, bl = x[b, i, j, 0] / 255.0, x[b, i, j, 1] / 255.0, x[b, i, j, 2] / 255.0
                v = max(r, g, bl)
                delta = v - min(r, g, bl)
                safe = 1.0 if delta == 0 else delta
                hue = (g - bl) / safe if r == v else 0.0
                if g == v:
                    hue = 2.0 + (bl - r) / safe
                if bl == v:
                    hue = 4.0 + (r - g) / safe
                hue = 0.0 if delta == 0 else (hue / 6.0) % 1.0
                s = 0.0 if delta == 0 else delta / (1.0 if v == 0 else v)
                if channel == 1:
                    s = min(max(s * scale + shift, 0.0), 1.0)
                else:
                    v = min(max(v * scale + shift, 0.0), 1.0)
                hi = np.floor(hue * 6)
                f = hue * 6 - hi
                p, q, t = v * (1 - s), v * (1 - f * s), v * (1 - (1 - f) * s)
                sector = np.uint8(hi) % 6
                if sector == 0:
                    rgb = (v, t, p)
                elif sector == 1:
                    rgb = (q, v, p)
                elif sector == 2:
                    rgb = (p, v, t)
                elif sector == 3:
                    rgb = (p, q, v)
                elif sector == 4:
                    rgb = (t, p, v)
                else:
                    rgb = (v, p, q)
                out[b, i, j, 0], out[b, i, j, 1], out[b, i, j, 2] = (
                    _u8(rgb[0]),
                    _u8(rgb[1]),
                    _u8(rgb[2]),
                )
    return out


@njit(inline="always")
def _border(i: int, n: int, reflect: bool) -> int:
    if reflect:  # scipy's 'reflect': cba|abcd|dcb
        return -i - 1 if i < 0 else (2 * n - i - 1 if i >= n else i)
    return min(max(i, 0), n - 1)  # 'nearest'


@njit(parallel=True, cache=True)
def gaussian_hw(u: np.ndarray, wh: np.ndarray, ww: np.ndarray, reflect: bool) -> np.ndarray:
    """scipy's gaussian_filter of float64 (M,H,W) over H then W, in its order of operations.

    scipy's correlate1d adds the centre tap, then each mirrored pair (summed first) from the
    outermost in; keeping that order keeps flat regions bit-identical, which matters before
    truncation to uint8. Each pass works on whole rows (border rows and a padded row looked up once)
    so the inner loops vectorise.
    """
    m, h, w = u.shape
    rh, rw = len(wh) // 2, len(ww) // 2
    out = np.empty_like(u)
    for b in prange(m):
        tmp = np.empty((h, w))
        for i in range(h):
            row = tmp[i]
            row[:] = u[b, i] * wh[rh]
            for k in range(rh, 0, -1):
                up, down = u[b, _border(i - k, h, reflect)], u[b, _border(i + k, h, reflect)]
                wk = wh[rh + k]
                for j in range(w):
                    row[j] += (up[j] + down[j]) * wk
        padded = np.empty(w + 2 * rw)
        for i in range(h):
            for j in range(-rw, w + rw):
                padded[rw + j] = tmp[i, _border(j, w, reflect)]
            row = out[b, i]
            for j in range(w):
                row[j] = padded[rw + j] * ww[rw]
            for k in range(rw, 0, -1):
                wk = ww[rw + k]
                for j in range(w):
                    row[j] += (padded[rw + j - k] + padded[rw + j + k]) * wk
    return out


@njit(parallel=True, cache=True)
def legacy_draws(
    seeds: np.ndarray,
    n_normal: int,
    loc: float,
    scale: float,
    n_uniform: int,
    low: float,
    high: float,
) -> np.ndarray:
    """Per image, what `RandomState(seed)` draws as normal(loc, scale, n_normal) then uniform(low,
    high, n_uniform).

    (N, n_normal + n_uniform) float64. Seeding numba's generator costs far less than building a
    RandomState, which matters when each image needs only a few draws.
    """
    out = np.empty((len(seeds), n_normal + n_uniform))
    for b in prange(len(seeds)):
        np.random.seed(seeds[b])
        for i in range(n_normal):
            out[b, i] = np.random.normal(loc, scale)
        for i in range(n_uniform):
            out[b, n_normal + i] = np.random.uniform(low, high)
    return out


@njit(parallel=True, cache=True)
def frost_picks(
    seeds: np.ndarray, heights: np.ndarray, widths: np.ndarray, h: int, w: int
) -> np.ndarray:
    """Per image, as the reference: photo randint(6), top randint(0, H-h), left randint(0, W-w)."""
    out = np.empty((len(seeds), 3), np.int64)
    for b in prange(len(seeds)):
        np.random.seed(seeds[b])
        k = np.random.randint(len(heights))
        out[b, 0] = k
        out[b, 1] = np.random.randint(0, heights[k] - h)
        out[b, 2] = np.random.randint(0, widths[k] - w)
    return out


@njit(inline="always")
def _reflect_coordinate(c: float, n: int) -> float:
    """scipy map_coordinates' 'reflect' for a coordinate off [0, n - 1] (C's truncating casts)."""
    sz2 = 2 * n
    if c < 0:
        if c < -sz2:
            c = sz2 * np.trunc(-c / sz2) + c
        return c + sz2 if c < -n else (1e-15 if c > -1e-15 else -c) - 1
    if c > n - 1:
        c = c - sz2 * np.trunc(c / sz2)
        return sz2 - c - 1 if c >= n else c
    return c


@njit(inline="always")
def _taps(c: float, n: int) -> tuple[int, int, float]:
    """Both taps of order-1 interpolation, reflected into range, and the first one's weight."""
    m = _reflect_coordinate(c, n)
    start = np.floor(m)
    w0 = 1.0 - (m - start)
    i0 = int(start)
    i1 = i0 + 1
    return -i0 - 1 if i0 < 0 else i0, 2 * n - i1 - 1 if i1 >= n else i1, w0


@njit(inline="always")
def _bilinear(
    img: np.ndarray, b: int, y0: int, y1: int, wy0: float, x0: int, x1: int, wx0: float, k: int
) -> float:
    """scipy's order-1 interpolation of img[b, :, :, k] from its four taps: data x weight_y x
    weight_x, in float64."""
    wy1, wx1 = 1.0 - wy0, 1.0 - wx0
    v = np.float64(img[b, y0, x0, k]) * wy0 * wx0 + np.float64(img[b, y0, x1, k]) * wy0 * wx1
    v = v + np.float64(img[b, y1, x0, k]) * wy1 * wx0
    return v + np.float64(img[b, y1, x1, k]) * wy1 * wx1


@njit(parallel=True, cache=True)
def map_linear_reflect(img: np.ndarray, dy: np.ndarray, dx: np.ndarray) -> np.ndarray:
    """scipy's map_coordinates(order=1, mode='reflect') of float32 (N,H,W,C) at (i + dy, j + dx), as
    float32.

    Taps are summed as scipy sums them (`_bilinear`).
    """
    n, h, w, ch = img.shape
    out = np.empty_like(img)
    for b in prange(n):
        for i in range(h):
            for j in range(w):
                y0, y1, wy0 = _taps(i + dy[b, i, j], h)
                x0, x1, wx0 = _taps(j + dx[b, i, j], w)
                for k in range(ch):
                    out[b, i, j, k] = _bilinear(img, b, y0, y1, wy0, x0, x1, wx0, k)
    return out


@njit(cache=True)
def _zoom_taps(n_in: int, n_out: int, n_keep: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One axis of scipy zoom (order 1, grid_mode False): per output, both taps, tap 1's weight."""
    ratio = (n_in - 1) / (n_out - 1)
    t0, t1, w0 = np.empty(n_keep, np.int64), np.empty(n_keep, np.int64), np.empty(n_keep)
    for i in range(n_keep):
        c = i * ratio
        s = np.floor(c)
        t0[i], t1[i], w0[i] = int(s), min(int(s) + 1, n_in - 1), 1.0 - (c - s)
    return t0, t1, w0


@njit(parallel=True, cache=True)
def zoom_linear(img: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    """scipy.ndimage.zoom(order=1): float64 (N,H,W,C) -> (N,out_h,out_w,C), image by image."""
    n, h, w, ch = img.shape
    y0, y1, wy = _zoom_taps(h, out_h, out_h)
    x0, x1, wx = _zoom_taps(w, out_w, out_w)
    out = np.empty((n, out_h, out_w, ch))
    for b in prange(n):
        for i in range(out_h):
            for j in range(out_w):
                for k in range(ch):
                    out[b, i, j, k] = _bilinear(img, b, y0[i], y1[i], wy[i], x0[j], x1[j], wx[j], k)
    return out


@njit(parallel=True, cache=True)
def add_zoomed(
    img: np.ndarray,
    top: int,
    left: int,
    crop_h: int,
    crop_w: int,
    out_h: int,
    out_w: int,
    acc: np.ndarray,
) -> None:
    """acc += the top-left acc-sized part of scipy's zoom(order=1) of a float32 crop to (out_h,
    out_w), in float32.

    zoom_blur's `out += clipped_zoom(x, z)[:h, :w]`: the crop is img[:, top:top + crop_h, left:left
    + crop_w]; scipy rounds each value to float32, then NumPy adds.
    """
    n, ch = img.shape[0], img.shape[3]
    keep_h, keep_w = acc.shape[1], acc.shape[2]
    y0, y1, wy = _zoom_taps(crop_h, out_h, keep_h)
    x0, x1, wx = _zoom_taps(crop_w, out_w, keep_w)
    for b in prange(n):
        for i in range(keep_h):
            for j in range(keep_w):
                for k in range(ch):
                    acc[b, i, j, k] += np.float32(
                        _bilinear(
                            img,
                            b,
                            top + y0[i],
                            top + y1[i],
                            wy[i],
                            left + x0[j],
                            left + x1[j],
                            wx[j],
                            k,
                        )
                    )
