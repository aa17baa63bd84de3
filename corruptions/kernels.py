"""Numba kernels for the per-pixel loops of glass_blur and motion_blur, a whole batch per call.

The reference runs these loops one image at a time (glass_blur in numba, motion blur as up to 41
NumPy rolls); here one compiled call covers the batch, images in parallel. Both reproduce the
reference exactly: the same random draws in the same order, the same float64 sums in the same order.
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
    thread, and an image runs wholly on one thread, so seeding it per image gives the reference's draws.
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
def shifted_sum(x: np.ndarray, weights: np.ndarray, dys: np.ndarray, dxs: np.ndarray, counts: np.ndarray,
                out: np.ndarray) -> None:
    """out[b,i,j,c] = sum_k weights[k] * x[b, clamp(i - dys[b,k]), clamp(j - dxs[b,k]), c] for k < counts[b].

    The reference's `shift` rolls the image and repeats its edge row/column: a clamped index.
    Each pixel's terms are added in the reference's order (k ascending, from 0.0), in float64.
    """
    n, hgt, wid, ch = x.shape
    for b in prange(n):
        o = out[b].reshape(hgt, wid * ch)
        o[:] = 0.0
        src = x[b].reshape(hgt, wid * ch)
        for k in range(counts[b]):
            wk, dy, dx = weights[k], dys[b, k], dxs[b, k]
            lo, hi = min(max(dx, 0), wid), max(min(wid + dx, wid), 0)  # columns whose source j - dx is inside
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
    """fog's diamond-square height maps in [0, 1], (N, mapsize, mapsize) float32, one seed per image.

    Mirrors the reference's NumPy version step for step: the same uniform draws in the same order
    (numba's seeded generator equals NumPy's legacy one), float32 storage after every step, and its
    wrap-around neighbours (np.roll). A float32 sum computed in float64 and rounded is the float32 sum.
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
                    c = np.float32(m[i * step, ((j + 1) % k) * step] + m[((i + 1) % k) * step, ((j + 1) % k) * step])
                    m[i * step + h, j * step + h] = _wibbled(np.float32(a + c), wibble)
            for i in range(k):  # diamonds, left/right of each square centre
                for j in range(k):
                    dr = np.float32(m[i * step + h, j * step + h] + m[((i - 1) % k) * step + h, j * step + h])
                    ul = np.float32(m[i * step, j * step] + m[i * step, ((j + 1) % k) * step])
                    m[i * step, j * step + h] = _wibbled(np.float32(dr + ul), wibble)
            for i in range(k):  # diamonds, above/below
                for j in range(k):
                    dr = np.float32(m[i * step + h, j * step + h] + m[i * step + h, ((j - 1) % k) * step + h])
                    ul = np.float32(m[i * step, j * step] + m[((i + 1) % k) * step, j * step])
                    m[i * step + h, j * step] = _wibbled(np.float32(dr + ul), wibble)
            step //= 2
            wibble /= wibbledecay
        m -= m.min()
        m /= m.max()
    return out


GAUSSIAN, SPECKLE, SHOT = 0, 1, 2


@njit(parallel=True, cache=True)
def pixel_noise(u: np.ndarray, seeds: np.ndarray, kind: int, c: float) -> np.ndarray:
    """The reference's noise on float64 (N,H,W,C) in [0,1], one seed per image, drawn in its order.

    GAUSSIAN: u + normal(0, c); SPECKLE: u + u * normal(0, c); SHOT: poisson(u * c) / c. Numba's
    seeded normal and poisson draw exactly what NumPy's legacy generator draws.
    """
    out = np.empty_like(u)
    n, h, w, ch = u.shape
    for b in prange(n):
        np.random.seed(seeds[b])
        for i in range(h):
            for j in range(w):
                for k in range(ch):
                    v = u[b, i, j, k]
                    if kind == SHOT:
                        out[b, i, j, k] = np.random.poisson(v * c) / c
                    elif kind == SPECKLE:
                        out[b, i, j, k] = v + v * np.random.normal(0.0, c)
                    else:
                        out[b, i, j, k] = v + np.random.normal(0.0, c)
    return out


@njit(inline="always")
def _border(i: int, n: int, reflect: bool) -> int:
    if reflect:  # scipy's 'reflect': cba|abcd|dcb
        return -i - 1 if i < 0 else (2 * n - i - 1 if i >= n else i)
    return min(max(i, 0), n - 1)  # 'nearest'


@njit(parallel=True, cache=True)
def gaussian_hw(u: np.ndarray, wh: np.ndarray, ww: np.ndarray, reflect: bool) -> np.ndarray:
    """scipy's gaussian_filter of float64 (M,H,W) over H then W, in its order of operations.

    scipy's correlate1d adds the centre tap, then each mirrored pair (summed first) from the outermost
    in; keeping that order keeps flat regions bit-identical, which matters before truncation to uint8.
    """
    m, h, w = u.shape
    rh, rw = len(wh) // 2, len(ww) // 2
    out = np.empty_like(u)
    for b in prange(m):
        tmp = np.empty((h, w))
        for i in range(h):
            for j in range(w):
                acc = u[b, i, j] * wh[rh]
                for k in range(rh, 0, -1):
                    acc += (u[b, _border(i - k, h, reflect), j] + u[b, _border(i + k, h, reflect), j]) * wh[rh + k]
                tmp[i, j] = acc
        for i in range(h):
            for j in range(w):
                acc = tmp[i, j] * ww[rw]
                for k in range(rw, 0, -1):
                    acc += (tmp[i, _border(j - k, w, reflect)] + tmp[i, _border(j + k, w, reflect)]) * ww[rw + k]
                out[b, i, j] = acc
    return out
