"""Deterministic 150x150 RGB test chips for checking the embedder.

models/verify_dlib.py feeds these chips to dlib and models/fetch --verify
feeds them to the ONNX graph; both rebuild them from the same recipes, so the
fixture (models/dlib-reference.json) stores only each recipe, the sha256 of
the chip's bytes and dlib's descriptor.

Every chip is made with integer arithmetic or element-wise float64 operations
(never sums or matrix products, whose rounding can depend on the machine),
from a counter-based generator (splitmix64) instead of numpy's random
streams, which numpy does not promise to keep across versions. The photo
chips come from the PNG demo photos, decoded here with zlib, so the check
needs no image library.

Only numpy and the standard library are used: this module runs both in the
fetch venv and in the dlib venv.
"""

from __future__ import annotations

import hashlib
import struct
import zlib
from pathlib import Path

import numpy as np

SIZE = 150

# The recipes of the fixture, in order. "photo" chips take the central
# square of side SIZE * factor and average factor x factor pixel blocks.
RECIPES: list[dict] = [
    {"kind": "constant", "rgb": [0, 0, 0]},
    {"kind": "constant", "rgb": [255, 255, 255]},
    {"kind": "smooth", "seed": 1, "grid": 4},
    {"kind": "smooth", "seed": 2, "grid": 7},
    {"kind": "smooth", "seed": 3, "grid": 12},
    {"kind": "smooth", "seed": 4, "grid": 25},
    {"kind": "gradient", "axes": "x,y,x+y"},
    {"kind": "gradient", "axes": "y,x+y,x"},
    {"kind": "noise", "seed": 5},
    {"kind": "noise", "seed": 6},
    {"kind": "checker", "periods": [1, 2, 5]},
    {"kind": "photo", "file": "astronaut.png", "factor": 1},
    {"kind": "photo", "file": "astronaut.png", "factor": 3},
    {"kind": "photo", "file": "32bit.png", "factor": 1},
    {"kind": "photo", "file": "32bit.png", "factor": 2},
    {"kind": "photo", "file": "32bit.png", "factor": 4},
]


def splitmix64(seed: int, count: int) -> np.ndarray:
    """`count` pseudo-random uint64 values for `seed` (stable forever)."""
    with np.errstate(over="ignore"):
        z = (np.arange(count, dtype=np.uint64) + np.uint64(seed << 32)) * np.uint64(
            0x9E3779B97F4A7C15
        )
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def random_bytes(seed: int, count: int) -> np.ndarray:
    return (splitmix64(seed, count) >> np.uint64(56)).astype(np.uint8)


def _round_to_u8(values: np.ndarray) -> np.ndarray:
    return np.clip(np.floor(values + 0.5), 0, 255).astype(np.uint8)


def _smooth(seed: int, grid: int) -> np.ndarray:
    """Random values on a grid x grid lattice, bilinearly interpolated."""
    lattice = (
        random_bytes(seed, grid * grid * 3).reshape(grid, grid, 3).astype(np.float64)
    )
    t = np.arange(SIZE, dtype=np.float64) * (grid - 1) / (SIZE - 1)
    i0 = np.minimum(np.floor(t).astype(np.int64), grid - 2)
    f = t - i0
    fy, fx = f[:, None, None], f[None, :, None]
    y0, x0 = i0[:, None], i0[None, :]
    top = lattice[y0, x0] * (1 - fx) + lattice[y0, x0 + 1] * fx
    bottom = lattice[y0 + 1, x0] * (1 - fx) + lattice[y0 + 1, x0 + 1] * fx
    return _round_to_u8(top * (1 - fy) + bottom * fy)


def _gradient(axes: str) -> np.ndarray:
    """One linear ramp per channel: "x", "y" or "x+y", exact integer rounding."""
    y, x = np.mgrid[0:SIZE, 0:SIZE].astype(np.int64)
    ramps = {"x": (x, SIZE - 1), "y": (y, SIZE - 1), "x+y": (x + y, 2 * (SIZE - 1))}
    channels = []
    for axis in axes.split(","):
        v, top = ramps[axis]
        channels.append((255 * v * 2 + top) // (2 * top))
    return np.stack(channels, axis=2).astype(np.uint8)


def _checker(periods: list[int]) -> np.ndarray:
    y, x = np.mgrid[0:SIZE, 0:SIZE]
    return np.stack([((x // p + y // p) % 2) * 255 for p in periods], axis=2).astype(
        np.uint8
    )


def read_png(path: Path) -> np.ndarray:
    """Decode an 8-bit RGB or RGBA, non-interlaced PNG into (h, w, c) uint8."""
    data = path.read_bytes()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError(f"{path}: not a PNG file")
    pos, idat, header = 8, [], None
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        body = data[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length : pos + 12 + length])
        if zlib.crc32(kind + body) != crc:
            raise ValueError(f"{path}: bad CRC in {kind!r} chunk")
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat.append(body)
        elif kind == b"IEND":
            break
        pos += 12 + length
    if header is None:
        raise ValueError(f"{path}: no IHDR chunk")
    width, height, depth, colour, _, _, interlace = header
    channels = {2: 3, 6: 4}.get(colour)
    if depth != 8 or channels is None or interlace != 0:
        raise ValueError(
            f"{path}: only 8-bit RGB/RGBA non-interlaced PNGs are supported"
        )

    raw = zlib.decompress(b"".join(idat))
    stride = width * channels
    if len(raw) != height * (stride + 1):
        raise ValueError(
            f"{path}: {len(raw)} bytes of image data, expected {height * (stride + 1)}"
        )
    out = np.zeros((height, stride), dtype=np.uint8)
    prev = bytearray(stride)
    bpp = channels
    for r in range(height):
        kind = raw[r * (stride + 1)]
        line = bytearray(raw[r * (stride + 1) + 1 : (r + 1) * (stride + 1)])
        if kind == 1:  # Sub
            for i in range(bpp, stride):
                line[i] = (line[i] + line[i - bpp]) & 0xFF
        elif kind == 2:  # Up
            line = bytearray(
                (
                    np.frombuffer(line, np.uint8) + np.frombuffer(prev, np.uint8)
                ).tobytes()
            )
        elif kind == 3:  # Average
            for i in range(stride):
                left = line[i - bpp] if i >= bpp else 0
                line[i] = (line[i] + ((left + prev[i]) >> 1)) & 0xFF
        elif kind == 4:  # Paeth
            for i in range(stride):
                a = line[i - bpp] if i >= bpp else 0
                b = prev[i]
                c = prev[i - bpp] if i >= bpp else 0
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
                line[i] = (line[i] + pred) & 0xFF
        elif kind != 0:
            raise ValueError(f"{path}: unknown PNG filter {kind} in row {r}")
        out[r] = np.frombuffer(line, np.uint8)
        prev = line
    return out.reshape(height, width, channels)


def _photo(demo_dir: Path, file: str, factor: int) -> np.ndarray:
    image = read_png(demo_dir / file)[:, :, :3].astype(np.int64)
    side = SIZE * factor
    h, w, _ = image.shape
    if side > min(h, w):
        raise ValueError(f"{file}: {w}x{h} is too small for a {side}px crop")
    top, left = (h - side) // 2, (w - side) // 2
    crop = image[top : top + side, left : left + side]
    blocks = crop.reshape(SIZE, factor, SIZE, factor, 3)
    total = np.zeros((SIZE, SIZE, 3), dtype=np.int64)
    for dy in range(factor):
        for dx in range(factor):
            total += blocks[:, dy, :, dx]
    n = factor * factor
    return ((total * 2 + n) // (2 * n)).astype(np.uint8)


def make_chip(recipe: dict, demo_dir: Path) -> np.ndarray:
    """The (150, 150, 3) uint8 RGB chip of one recipe."""
    kind = recipe["kind"]
    if kind == "constant":
        chip = np.empty((SIZE, SIZE, 3), dtype=np.uint8)
        chip[:] = np.array(recipe["rgb"], dtype=np.uint8)
    elif kind == "smooth":
        chip = _smooth(recipe["seed"], recipe["grid"])
    elif kind == "gradient":
        chip = _gradient(recipe["axes"])
    elif kind == "noise":
        chip = random_bytes(recipe["seed"], SIZE * SIZE * 3).reshape(SIZE, SIZE, 3)
    elif kind == "checker":
        chip = _checker(recipe["periods"])
    elif kind == "photo":
        chip = _photo(demo_dir, recipe["file"], recipe["factor"])
    else:
        raise ValueError(f"unknown chip kind {kind!r}")
    return np.ascontiguousarray(chip, dtype=np.uint8)


def chip_sha256(chip: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(chip).tobytes()).hexdigest()
