"""Where a KVCacheSession's cache tensors live, and how they are bound to the graph.

Each tensor is one flat allocation of ``[rows, heads, window, head_dim]`` elements laid out for the
current window (ort_session.py). It is bound by address both as the graph's ``past_*`` input and as
its ``*_RetainedState`` output, so each step's scatter writes into the memory it reads: the cache is
not copied or fed back by the host, on the CPU or on a GPU (where nodes without a CUDA kernel read
it, ONNX Runtime copies what they read).

* HostKVStorage: numpy arrays in the host's memory (the CPU provider).
* DeviceKVStorage: ONNX Runtime allocations on a device (CUDA): the cache never crosses to the host.
  Re-laying it for a larger window goes through the host once per rung of the window ladder.
"""

from __future__ import annotations

import numpy as np
import onnxruntime as ort

from QEfficient.export.graph_names import retained


def relay_rows(flat: np.ndarray, rows: int, old_stride: int, new_stride: int) -> None:
    """In place: each of ``rows`` rows from stride ``old_stride`` to ``new_stride`` (larger), last row first, so
    no row is overwritten before it moves."""
    for r in range(rows - 1, 0, -1):
        flat[r * new_stride : r * new_stride + old_stride] = flat[r * old_stride : (r + 1) * old_stride].copy()


def take_rows(flat: np.ndarray, rows: np.ndarray, shape: tuple[int, int, int, int], length: int) -> None:
    """In place, ``flat`` laid out as ``shape`` [rows, heads, window, head_dim]: row ``r``'s first ``length`` slots
    become row ``rows[r]``'s, for the rows that change."""
    view = flat[: int(np.prod(shape))].reshape(shape)
    changed = np.flatnonzero(rows != np.arange(len(rows)))
    if len(changed):
        view[changed, :, :length] = view[rows[changed], :, :length]  # the right side is a copy: rows may trade places


def grown_copy(flat: np.ndarray, size: int, rows: int, old_stride: int, new_stride: int) -> np.ndarray:
    """A zeroed array of ``size`` elements holding ``flat``'s rows at stride ``new_stride``."""
    grown = np.zeros(size, dtype=flat.dtype)
    grown.reshape(rows, new_stride)[:, :old_stride] = flat[: rows * old_stride].reshape(rows, old_stride)
    return grown


class HostKVStorage:
    """The cache in numpy arrays (host memory); pages are touched only as the window reaches them."""

    device_type, device_index = "cpu", 0

    def __init__(self, count: int, size: int, dtype: str | np.dtype) -> None:
        self.dtype = np.dtype(dtype)
        self.flats = [np.zeros(size, dtype=self.dtype) for _ in range(count)]

    @property
    def size(self) -> int:
        return self.flats[0].size if self.flats else 0

    @property
    def nbytes(self) -> int:
        return sum(flat.nbytes for flat in self.flats)

    def address(self, index: int) -> int:
        return self.flats[index].ctypes.data

    def relay(self, rows: int, old_stride: int, new_stride: int) -> None:
        for flat in self.flats:
            relay_rows(flat, rows, old_stride, new_stride)

    def grow(self, size: int, rows: int, old_stride: int, new_stride: int) -> None:
        self.flats = [grown_copy(flat, size, rows, old_stride, new_stride) for flat in self.flats]

    def take_rows(self, rows: np.ndarray, shape: tuple[int, int, int, int], length: int) -> None:
        for flat in self.flats:
            take_rows(flat, rows, shape, length)

    def read(self, index: int, count: int) -> np.ndarray:
        """The first ``count`` elements of tensor ``index`` (a view)."""
        return self.flats[index][:count]


class DeviceKVStorage:
    """The cache in ONNX Runtime allocations on ``device_type`` (``"cuda"``; ``"cpu"`` runs the same code on a
    machine without a GPU). Zeroed when allocated: attention multiplies the unused slots' values by zero, and
    uninitialized memory may hold NaN."""

    def __init__(self, count: int, size: int, dtype: str | np.dtype, device_type: str = "cuda", device_index: int = 0) -> None:
        self.device_type, self.device_index, self.dtype = device_type, device_index, np.dtype(dtype)
        self.values = [self._upload(np.zeros(size, dtype=self.dtype)) for _ in range(count)]

    def _upload(self, host: np.ndarray) -> ort.OrtValue:
        return ort.OrtValue.ortvalue_from_numpy(host, self.device_type, self.device_index)

    @property
    def size(self) -> int:
        return self.values[0].shape()[0] if self.values else 0

    @property
    def nbytes(self) -> int:
        return self.size * self.dtype.itemsize * len(self.values)

    def address(self, index: int) -> int:
        return self.values[index].data_ptr()

    def relay(self, rows: int, old_stride: int, new_stride: int) -> None:
        for value in self.values:
            host = value.numpy()  # a copy: numpy() copies from the device
            relay_rows(host, rows, old_stride, new_stride)
            value.update_inplace(host)

    def take_rows(self, rows: np.ndarray, shape: tuple[int, int, int, int], length: int) -> None:
        if (rows == np.arange(len(rows))).all():  # no row moves: nothing crosses to the host
            return
        for value in self.values:
            host = value.numpy()
            take_rows(host, rows, shape, length)
            value.update_inplace(host)

    def grow(self, size: int, rows: int, old_stride: int, new_stride: int) -> None:
        self.values = [self._upload(grown_copy(value.numpy(), size, rows, old_stride, new_stride)) for value in self.values]

    def read(self, index: int, count: int) -> np.ndarray:
        """The first ``count`` elements of tensor ``index`` (a copy in host memory)."""
        return self.values[index].numpy()[:count].copy()


KVStorage = HostKVStorage | DeviceKVStorage


def bind_in_place(io: ort.IOBinding, storage: KVStorage, names: list[str], shape: list[int], offset: int = 0) -> None:
    """Bind each cache tensor, from element ``offset`` on, as ``shape``: the graph's input and its retained output at
    the same address. The storage owns the memory; it must outlive the binding."""
    where = (storage.device_type, storage.device_index, storage.dtype.type, shape)
    for index, name in enumerate(names):
        address = storage.address(index) + offset * storage.dtype.itemsize
        io.bind_input(name, *where, address)
        io.bind_output(retained(name), *where, address)
