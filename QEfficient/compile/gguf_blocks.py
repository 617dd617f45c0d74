"""A GGUF tensor's own quantized blocks, laid out as ONNX Runtime's ``MatMulNBits`` reads them.

Every GGUF block format this module reads de-quantizes, per block of ``block_size`` values along
K, as ``w = scale * (code - zero_point) + min``, with integer codes, a float32 scale, an integer
zero point and an optional float32 ``min`` per 32 values. ``MatMulNBits`` computes
``(code - zero_point) * scale`` (com.microsoft contrib-op spec: B is ``(N, k_blocks, blob)`` uint8
packed low bits first along K, scales ``(N, k_blocks)`` in A's type, uint8 zero points packed the
same way as B); the min, which no integer zero point can express, is added by the graph as
``blocksum(x) @ M`` (see gguf_weights.py). Per format (ggml's definitions, as in ``gguf.quants``):

==========  ====================================================  ============================
format      GGUF block                                            here
==========  ====================================================  ============================
Q8_0        32 x int8, scale d (fp16)                             8-bit, blocks of 32, zp 128
Q4_0        32 x 4-bit, scale d                                   4-bit, blocks of 32, zp 8
Q4_1        32 x 4-bit, scale d, min m (fp16)                     4-bit, 32, zp 0, min m
Q5_0        32 x 5-bit, scale d                                   8-bit container, 32, zp 16
Q5_1        32 x 5-bit, scale d, min m                            8-bit container, 32, zp 0, min
Q4_K        256: 8 sub-blocks of 32 x 4-bit; fp16 d, dmin; 6-bit  4-bit, 32, zp 0,
            scale sc_j and min m_j per sub-block                  scale d*sc_j, min -dmin*m_j
Q5_K        as Q4_K with 5-bit values                             8-bit container, 32, as Q4_K
Q6_K        256: 16 sub-blocks of 16 x 6-bit; fp16 d, int8 sc_j  8-bit container, blocks of 16,
                                                                  zp 32, scale d*sc_j
==========  ====================================================  ============================

A K-quant's super-block only carries the two fp16 factors; its sub-blocks are ordinary blocks of
32 (16 for Q6_K) once ``d*sc_j`` and ``dmin*m_j`` are multiplied out, which is done in float32
exactly as ``gguf.quants.dequantize`` does, so the products are the same floats. Codes of 5 and 6
bits go into 8-bit containers (exact; ``MatMulNBits`` has no 5/6-bit layout).

``QuantBlocks.centred()`` then moves every zero point to MatMulNBits' default (8 or 128), which
lets the graph leave the zero-point input out (the faster kernel path): by shifting 8-bit codes,
or, for 4-bit codes with zero point 0 (Q4_1, Q4_K), by folding ``8 * scale`` into the min, kept
only where every code still de-quantizes to the same float32.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from gguf import GGMLQuantizationType as QType
from gguf.constants import GGML_QUANT_SIZES

MIN_BLOCK = 32  # every format with a min has one per 32 values


@dataclass
class QuantBlocks:
    """One weight matrix (N output rows, K inputs) as MatMulNBits blocks, codes not yet packed."""

    bits: int  # 4 or 8: the MatMulNBits container
    block_size: int  # values per scale along K
    codes: np.ndarray  # (N, K) uint8, each < 2**bits
    scales: np.ndarray  # (N, K // block_size) float32
    zero_points: np.ndarray  # (N, K // block_size) uint8
    mins: np.ndarray | None  # (N, K // 32) float32, added after the scaled codes; None when the format has none

    @property
    def shape(self) -> tuple[int, int]:
        return self.codes.shape

    @property
    def default_zero_point(self) -> bool:
        """Every zero point is MatMulNBits' default 2**(bits-1), so the graph can leave them out."""
        return bool(np.all(self.zero_points == 1 << (self.bits - 1)))

    @property
    def layout(self) -> tuple[int, int, bool]:
        return (self.bits, self.block_size, self.default_zero_point)

    def centred(self) -> QuantBlocks:
        """The same weights with every zero point at the default 2**(bits-1), when that is exact.

        MatMulNBits runs fastest without a zero-point input (measured: 8-bit 1.7x, 4-bit 1.4x), and with
        ``accuracy_level=4`` centred codes also keep the int8-activation error small. 8 bits: the
        codes shift by ``128 - zp`` (integers, exact). 4 bits: ``s*(q - zp) + m = s*(q - 8) + (m + s*(8 - zp))``;
        the new min is one float32 rounding, so the result is kept only if every one of the 16 codes
        of every block de-quantizes to the same float32 as before; otherwise the blocks are returned
        unchanged (explicit zero points, still exact)."""
        if self.default_zero_point:
            return self
        n, k = self.codes.shape
        z = self.zero_points.astype(np.int16)
        if self.bits == 8:
            codes = self.codes.reshape(n, -1, self.block_size).astype(np.int16) - z[..., None] + 128
            if codes.min() < 0 or codes.max() > 255:
                return self
            codes = codes.astype(np.uint8).reshape(n, k)
            return QuantBlocks(8, self.block_size, codes, self.scales, np.full_like(self.zero_points, 128), self.mins)
        if self.block_size != MIN_BLOCK:
            return self
        mins = self.mins if self.mins is not None else np.zeros_like(self.scales)
        new_mins = mins + self.scales * (8 - z).astype(np.float32)
        q = np.arange(16, dtype=np.float32)[:, None, None]
        before = self.scales * (q - z.astype(np.float32)) + mins
        after = self.scales * (q - np.float32(8)) + new_mins
        if not np.array_equal(before, after):
            return self
        return QuantBlocks(4, self.block_size, self.codes, self.scales, np.full_like(self.zero_points, 8), new_mins)

    def rows(self, index: np.ndarray) -> QuantBlocks:
        """The same blocks with output rows taken in ``index`` order (a row permutation is exact)."""
        return QuantBlocks(
            self.bits,
            self.block_size,
            self.codes[index],
            self.scales[index],
            self.zero_points[index],
            None if self.mins is None else self.mins[index],
        )

    def packed_codes(self) -> np.ndarray:
        """MatMulNBits' B: (N, k_blocks, block_size * bits / 8) uint8, low bits first along K."""
        n, k = self.codes.shape
        c = self.codes.reshape(n, k // self.block_size, self.block_size)
        if self.bits == 8:
            return np.ascontiguousarray(c)
        return (c[..., 0::2] | (c[..., 1::2] << 4)).astype(np.uint8)

    def packed_zero_points(self) -> np.ndarray:
        """MatMulNBits' uint8 zero points: (N, ceil(k_blocks * bits / 8)), packed as B."""
        if self.bits == 8:
            return np.ascontiguousarray(self.zero_points)
        z = self.zero_points
        if z.shape[1] % 2:
            z = np.pad(z, ((0, 0), (0, 1)))
        return (z[:, 0::2] | (z[:, 1::2] << 4)).astype(np.uint8)

    def dequantize(self) -> np.ndarray:
        """(N, K) float32 by the formula above, in the order gguf.quants uses (scale * code first, then + min)."""
        n, k = self.codes.shape
        q = self.codes.reshape(n, -1, self.block_size).astype(np.int16) - self.zero_points[..., None]
        w = (self.scales[..., None] * q.astype(np.float32)).reshape(n, k)
        if self.mins is not None:
            w = (w.reshape(n, -1, MIN_BLOCK) + self.mins[..., None]).reshape(n, k)
        return w


def concat_rows(parts: list[QuantBlocks]) -> QuantBlocks:
    """Blocks of matrices with one layout stacked along N (q/k/v or gate/up merged into one MatMul)."""
    if len({(p.bits, p.block_size) for p in parts}) != 1:
        raise ValueError("only blocks of one bit width and block size can be merged")
    need_mins = any(p.mins is not None for p in parts)

    def mins(p: QuantBlocks) -> np.ndarray:  # a format without mins adds zeros: exact
        return p.mins if p.mins is not None else np.zeros((p.shape[0], p.shape[1] // MIN_BLOCK), np.float32)

    return QuantBlocks(
        parts[0].bits,
        parts[0].block_size,
        np.concatenate([p.codes for p in parts]),
        np.concatenate([p.scales for p in parts]),
        np.concatenate([p.zero_points for p in parts]),
        np.concatenate([mins(p) for p in parts]) if need_mins else None,
    )


# ---------------------------------------------------------------- per-format unpacking
def _f16(b: np.ndarray) -> np.ndarray:
    """(..., 2) uint8 -> (...) float32, as gguf: fp16 widened."""
    return np.ascontiguousarray(b).view(np.float16)[..., 0].astype(np.float32)


def _nibbles(qs: np.ndarray) -> np.ndarray:
    """16 bytes -> 32 values: the low nibbles are values 0-15, the high nibbles values 16-31."""
    return np.concatenate([qs & 0x0F, qs >> 4], axis=-1)


def _q8_0(b):  # d(2) qs(32 x int8)
    codes = b[..., 2:] ^ np.uint8(0x80)  # int8 q + 128 as uint8, without int16 copies of a whole table
    return 8, 32, codes, _f16(b[..., 0:2]), 128, None


def _q4_0(b):  # d(2) qs(16): value i in the low nibble of byte i, value 16+i in its high nibble
    return 4, 32, _nibbles(b[..., 2:]), _f16(b[..., 0:2]), 8, None


def _q4_1(b):  # d(2) m(2) qs(16)
    return 4, 32, _nibbles(b[..., 4:]), _f16(b[..., 0:2]), 0, _f16(b[..., 2:4])


def _high_bits(qh: np.ndarray) -> np.ndarray:
    """Q5_0/Q5_1: bit i of the little-endian uint32 qh is the 5th bit of value i."""
    return np.unpackbits(qh, axis=-1, bitorder="little")


def _q5_0(b):  # d(2) qh(4) qs(16)
    codes = _nibbles(b[..., 6:]) | (_high_bits(b[..., 2:6]) << 4)
    return 8, 32, codes, _f16(b[..., 0:2]), 16, None


def _q5_1(b):  # d(2) m(2) qh(4) qs(16)
    codes = _nibbles(b[..., 8:]) | (_high_bits(b[..., 4:8]) << 4)
    return 8, 32, codes, _f16(b[..., 0:2]), 0, _f16(b[..., 2:4])


def _k_scale_min(scales: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Q4_K/Q5_K: 12 bytes -> 8 six-bit scales and 8 six-bit mins (ggml's get_scale_min_k4)."""
    s = scales.reshape(*scales.shape[:-1], 3, 4)
    d, m, md = s[..., 0, :], s[..., 1, :], s[..., 2, :]
    sc = np.concatenate([d & 0x3F, (md & 0x0F) | ((d >> 2) & 0x30)], axis=-1)
    mn = np.concatenate([m & 0x3F, (md >> 4) | ((m >> 2) & 0x30)], axis=-1)
    return sc, mn


def _k_factors(b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-sub-block scale d*sc_j and min -dmin*m_j, float32 products as gguf computes them."""
    d, dmin = _f16(b[..., 0:2]), _f16(b[..., 2:4])
    sc, mn = _k_scale_min(b[..., 4:16])
    return d[..., None] * sc.astype(np.float32), -(dmin[..., None] * mn.astype(np.float32))


def _k_low_nibbles(qs: np.ndarray) -> np.ndarray:
    """Q4_K/Q5_K: 128 bytes in 4 chunks of 32; chunk c holds sub-block 2c (low nibbles) and 2c+1 (high)."""
    c = qs.reshape(*qs.shape[:-1], 4, 32)
    return np.stack([c & 0x0F, c >> 4], axis=-2).reshape(*qs.shape[:-1], 256)


def _q4_k(b):  # d(2) dmin(2) scales(12) qs(128)
    scale, mins = _k_factors(b)
    return 4, 32, _k_low_nibbles(b[..., 16:]), scale, 0, mins


def _q5_k(b):  # d(2) dmin(2) scales(12) qh(32) qs(128): bit j of qh[i] is the 5th bit of value 32*j + i
    scale, mins = _k_factors(b)
    qh = b[..., 16:48]
    high = ((qh[..., None, :] >> np.arange(8, dtype=np.uint8)[:, None]) & 1).reshape(*qh.shape[:-1], 256)
    return 8, 32, _k_low_nibbles(b[..., 48:]) | (high << 4), scale, 0, mins


def _q6_k(b):  # ql(128) qh(64) scales(16 x int8) d(2)
    ql, qh = b[..., 0:128], b[..., 128:192]
    lead = b.shape[:-1]
    # ql: 2 halves of 64 bytes; low nibbles give values 0-63 of the half, high nibbles 64-127
    low = ql.reshape(*lead, 2, 1, 64) >> np.array([0, 4], np.uint8).reshape(2, 1)
    low = (low & 0x0F).reshape(*lead, 8, 32)
    # qh: 2 halves of 32 bytes; bits 2j..2j+1 of byte i are the top bits of value 32*j + i
    high = qh.reshape(*lead, 2, 1, 32) >> np.array([0, 2, 4, 6], np.uint8).reshape(4, 1)
    high = (high & 0x03).reshape(*lead, 8, 32)
    codes = (low | (high << 4)).reshape(*lead, 256)
    scale = _f16(b[..., 208:210])[..., None] * b[..., 192:208].view(np.int8).astype(np.float32)
    return 8, 16, codes, scale, 32, None


_UNPACK = {
    QType.Q8_0: _q8_0,
    QType.Q4_0: _q4_0,
    QType.Q4_1: _q4_1,
    QType.Q5_0: _q5_0,
    QType.Q5_1: _q5_1,
    QType.Q4_K: _q4_k,
    QType.Q5_K: _q5_k,
    QType.Q6_K: _q6_k,
}
SUPPORTED = frozenset(_UNPACK)


def unpack(raw: np.ndarray, qtype: QType) -> QuantBlocks:
    """A GGUF tensor's bytes, (N, K / values_per_block * bytes_per_block) uint8 as GGUFReader gives
    them, as MatMulNBits blocks of the (N, K) matrix ``gguf.quants.dequantize`` would return."""
    if qtype not in _UNPACK:
        raise ValueError(f"GGUF type {qtype.name} has no exact MatMulNBits layout here (supported: {sorted(t.name for t in SUPPORTED)}).")
    per_block, nbytes = GGML_QUANT_SIZES[qtype]
    raw = np.asarray(raw, dtype=np.uint8)
    n = raw.shape[0]
    blocks = raw.reshape(n, -1, nbytes)
    bits, block_size, codes, scales, zero_point, mins = _UNPACK[qtype](blocks)
    k = blocks.shape[1] * per_block
    return QuantBlocks(
        bits,
        block_size,
        np.ascontiguousarray(codes.reshape(n, k), dtype=np.uint8),
        np.ascontiguousarray(scales.reshape(n, k // block_size), dtype=np.float32),
        np.full((n, k // block_size), zero_point, np.uint8),
        None if mins is None else np.ascontiguousarray(mins.reshape(n, k // MIN_BLOCK), dtype=np.float32),
    )
