"""Tiling image processors of LFM2-VL, Command A Vision (cohere2_vision) and Llama 4, whose transformers classes have
only a torchvision backend (torchvision is not installed): the same steps as transformers 5.24's classes (tile grid,
resize, padding, thumbnail / global tile, normalisation, the outputs the processors build the prompt's tile tokens
from) with torchvision's CPU kernels written in torch, so they give what HF's give, pixel for pixel (checked against
torchvision 0.29 on AVX-512 CPUs). Each class carries HF's defaults at the tiny models' sizes (tests/
vlm_family_fixtures_more.py). Importing this registers the processors, so ``AutoProcessor.from_pretrained(folder)``
finds them by the class name saved in the folder."""

from __future__ import annotations

import math
import platform
from collections import defaultdict

import numpy as np
import torch
from transformers import AutoProcessor, BatchFeature, Cohere2VisionProcessor, Lfm2VlProcessor, Llama4Processor
from transformers.image_processing_backends import TorchvisionBackend
from transformers.image_utils import (
    IMAGENET_STANDARD_MEAN,
    IMAGENET_STANDARD_STD,
    OPENAI_CLIP_MEAN,
    OPENAI_CLIP_STD,
    PILImageResampling,
    SizeDict,
)
from transformers.processing_utils import ImagesKwargs

from tests.vlm_tiny_processors import SubprocessorsFromArguments, _image_processor_and_tokenizer

_MODES = {PILImageResampling.BILINEAR: "bilinear", PILImageResampling.BICUBIC: "bicubic"}


def _native_uint8(mode: str) -> bool:
    """Whether torchvision resizes uint8 images without a float round trip (its _do_native_uint8_resize_on_cpu)."""
    if mode == "bilinear":
        return torch.backends.cpu.get_cpu_capability() in ("AVX2", "AVX512") or platform.machine() in ("aarch64", "arm64")
    return True


class _TorchvisionOnCpu(TorchvisionBackend):
    """transformers' torchvision backend with the three torchvision kernels it calls written in torch: resize
    (torchvision's resize_image: antialiased interpolate, on uint8 directly where torchvision does so, else through
    float32 with rounding), normalize (normalize_image) and grey-to-RGB. The rest (RGB conversion of PIL images,
    channels first, fused rescale + normalize) is the backend's own code."""

    def resize(self, image: torch.Tensor, size: SizeDict, resample=None, antialias: bool = True, **kwargs) -> torch.Tensor:
        mode = _MODES[PILImageResampling(resample if resample is not None else PILImageResampling.BILINEAR)]
        shape, height, width = image.shape, int(size.height), int(size.width)
        if (height, width) == tuple(shape[-2:]):
            return image
        cast = image.dtype not in (torch.float32, torch.float64) and not (image.dtype == torch.uint8 and _native_uint8(mode))
        dtype, batch = image.dtype, image.reshape(-1, *shape[-3:])
        out = torch.nn.functional.interpolate(
            batch.float() if cast else batch, size=[height, width], mode=mode, align_corners=False, antialias=antialias
        )
        if cast:
            out = (out.clamp_(0, 255) if mode == "bicubic" and dtype == torch.uint8 else out).round_().to(dtype)
        return out.reshape(*shape[:-2], height, width)

    def normalize(self, image: torch.Tensor, mean, std, inplace: bool = False, **kwargs) -> torch.Tensor:
        mean = torch.as_tensor(mean, dtype=image.dtype).view(-1, 1, 1)
        std = torch.as_tensor(std, dtype=image.dtype).view(-1, 1, 1)
        return (image.sub_(mean) if inplace else image.sub(mean)).div_(std)

    def normalized(self, image: torch.Tensor, kw: dict) -> torch.Tensor:
        """The backend's (fused) rescale and normalize with the call's options."""
        return self.rescale_and_normalize(
            image, *(kw[k] for k in ("do_rescale", "rescale_factor", "do_normalize", "image_mean", "image_std"))
        )

    def convert_to_rgb(self, image: torch.Tensor, input_data_format=None) -> torch.Tensor:
        if image.shape[-3] == 4:
            raise ValueError("an RGBA array: pass a PIL image (its RGB conversion is PIL's)")
        return image.repeat_interleave(3, dim=-3) if image.shape[-3] == 1 else image


def _split_to_tiles(image: torch.Tensor, rows: int, cols: int) -> list[torch.Tensor]:
    """Row-major tiles of a [C, H, W] image (transformers' split_to_tiles)."""
    tile_h, tile_w = image.shape[-2] // rows, image.shape[-1] // cols
    return [image[:, r * tile_h : (r + 1) * tile_h, c * tile_w : (c + 1) * tile_w] for r in range(rows) for c in range(cols)]


def _tiny_processor(base: type, image_processor_class: type, model_type: str) -> type:
    """``Tiny<base>``: HF's processor class (its own prompt expansion) that loads ``image_processor_class`` from a
    folder (not found by name there), registered under the class name the folder saves."""

    def arguments(cls, pretrained_model_name_or_path, processor_dict=None, **kwargs):
        return _image_processor_and_tokenizer(image_processor_class, pretrained_model_name_or_path)

    doc = f"{base.__name__} with {image_processor_class.__name__}."
    body = {"__doc__": doc, "_get_arguments_from_pretrained": classmethod(arguments)}
    cls = type(f"Tiny{base.__name__}", (SubprocessorsFromArguments, base), body)
    AutoProcessor.register(f"tiny_{model_type}_processor", cls, exist_ok=True)
    return cls


# --- LFM2-VL ---------------------------------------------------------------------------------------------------------
class _Lfm2VlImagesKwargs(ImagesKwargs, total=False):
    downsample_factor: int
    do_image_splitting: bool
    min_tiles: int
    max_tiles: int
    use_thumbnail: bool
    min_image_tokens: int
    max_image_tokens: int
    encoder_patch_size: int
    tile_size: int
    max_pixels_tolerance: float
    do_pad: bool
    return_row_col_info: bool


def _lfm2_grid(height: int, width: int, min_tiles: int, max_tiles: int, tile_size: int) -> tuple[int, int]:
    """(columns, rows): the grid whose aspect ratio is closest to the image's; ties go to the larger grid while the
    image covers more than half of it (HF's find_closest_aspect_ratio)."""
    # built in HF's order: the set's iteration order decides among grids of one area
    ratios = [
        (w, h) for n in range(min_tiles, max_tiles + 1) for w in range(1, n + 1) for h in range(1, n + 1) if min_tiles <= w * h <= max_tiles
    ]
    best, best_diff = (1, 1), float("inf")
    for w, h in sorted(set(ratios), key=lambda r: r[0] * r[1]):
        diff = abs(width / height - w / h)
        if diff < best_diff:
            best, best_diff = (w, h), diff
        elif diff == best_diff and width * height > 0.5 * tile_size * tile_size * w * h:
            best = (w, h)
    return best


def _lfm2_smart_resize(height: int, width: int, factor: int, patch: int, min_tokens: int, max_tokens: int) -> tuple[int, int]:
    """(height, width): multiples of patch x factor, the pixel count within the token bounds, the aspect kept."""
    total = patch * factor
    h_bar, w_bar = max(total, round(height / total) * total), max(total, round(width / total) * total)
    if h_bar * w_bar > max_tokens * patch**2 * factor**2:
        beta = math.sqrt(height * width / (max_tokens * patch**2 * factor**2))
        h_bar, w_bar = max(total, math.floor(height / beta / total) * total), max(total, math.floor(width / beta / total) * total)
    elif h_bar * w_bar < min_tokens * patch**2 * factor**2:
        beta = math.sqrt(min_tokens * patch**2 * factor**2 / (height * width))
        h_bar, w_bar = math.ceil(height * beta / total) * total, math.ceil(width * beta / total) * total
    return h_bar, w_bar


class TinyLfm2VlImageProcessor(_TorchvisionOnCpu):
    """Lfm2VlImageProcessor: an image whose pixels exceed ``max_image_tokens`` (times the tolerance) is cut into a
    grid of ``tile_size`` tiles (``min_tiles``..``max_tiles``, the closest aspect ratio) plus a thumbnail at the
    smart-resized size; a smaller one is smart-resized whole. Each unit is cut into patches of ``encoder_patch_size``
    [units, max patches, 3 * patch^2], padded with a mask, its patch grid in ``spatial_shapes``."""

    downsample_factor, do_image_splitting, min_tiles, max_tiles, use_thumbnail = 2, True, 2, 6, True
    min_image_tokens, max_image_tokens, encoder_patch_size, tile_size, max_pixels_tolerance = 2, 9, 7, 28, 2.0
    do_resize, size, resample = True, {"height": 28, "width": 28}, PILImageResampling.BILINEAR
    do_rescale, rescale_factor, do_normalize, do_pad, return_row_col_info = True, 1 / 255, True, True, False
    image_mean, image_std = IMAGENET_STANDARD_MEAN, IMAGENET_STANDARD_STD
    valid_kwargs = _Lfm2VlImagesKwargs
    model_input_names = ["pixel_values", "pixel_attention_mask", "spatial_shapes"]

    def _units(self, image: torch.Tensor, kw: dict) -> tuple[list[torch.Tensor], int, int, list[int]]:
        """The image's tiles (+ thumbnail) or its one resized unit, the grid (rows, cols), the resized size."""
        height, width = image.shape[-2:]
        factor, patch = kw["downsample_factor"], kw["encoder_patch_size"]
        min_tiles, max_tiles = (kw["min_tiles"], kw["max_tiles"]) if kw["do_image_splitting"] else (1, 1)
        new_h, new_w = _lfm2_smart_resize(height, width, factor, patch, kw["min_image_tokens"], kw["max_image_tokens"])
        total = patch * factor
        h_bar, w_bar = max(patch, round(height / total) * total), max(patch, round(width / total) * total)
        too_large = h_bar * w_bar > kw["max_image_tokens"] * patch**2 * factor**2 * kw["max_pixels_tolerance"]
        if not (too_large and not min_tiles == max_tiles == 1):
            return [self.resize(image, SizeDict(height=new_h, width=new_w), kw["resample"])], 1, 1, [new_h, new_w]
        cols, rows = _lfm2_grid(height, width, min_tiles, max_tiles, kw["tile_size"])
        canvas = self.resize(image, SizeDict(height=kw["tile_size"] * rows, width=kw["tile_size"] * cols), kw["resample"])
        tiles = _split_to_tiles(canvas, rows, cols)
        if kw["use_thumbnail"] and rows * cols != 1:
            tiles.append(self.resize(image, SizeDict(height=new_h, width=new_w), kw["resample"]))
        return tiles, rows, cols, [new_h, new_w]

    def _preprocess(self, images: list[torch.Tensor], **kw) -> BatchFeature:
        patch, factor = kw["encoder_patch_size"], kw["downsample_factor"]
        tile_patches = (kw["tile_size"] // patch) ** 2 if kw["do_image_splitting"] else 0
        max_patches = max(kw["max_image_tokens"] * factor**2, tile_patches)
        pixels, masks, shapes, rows, cols, sizes = [], [], [], [], [], []
        for image in images:
            units, grid_rows, grid_cols, size = self._units(image, kw)
            rows.append(grid_rows), cols.append(grid_cols), sizes.append(size)
            for unit in units:
                unit = self.normalized(unit, kw)
                grid_h, grid_w = unit.shape[-2] // patch, unit.shape[-1] // patch
                patches = unit.reshape(-1, grid_h, patch, grid_w, patch).permute(1, 3, 2, 4, 0).reshape(grid_h * grid_w, -1)
                padding = max(max_patches - len(patches), 0)  # HF's pad_along_first_dim never truncates
                mask = torch.ones(max_patches, dtype=torch.int32)
                mask[max_patches - padding :] = 0
                pixels.append(torch.nn.functional.pad(patches, (0, 0, 0, padding)))
                masks.append(mask), shapes.append([grid_h, grid_w])
        data = {"pixel_values": torch.stack(pixels), "pixel_attention_mask": torch.stack(masks), "spatial_shapes": torch.tensor(shapes)}
        if kw["return_row_col_info"]:
            data.update(image_rows=rows, image_cols=cols, image_sizes=sizes)
        return BatchFeature(data=data, tensor_type=kw["return_tensors"])


# its prompt: per tile "<|img_row_R_col_C|>" and the tile's tokens, then "<|img_thumbnail|>" and the thumbnail's
TinyLfm2VlProcessor = _tiny_processor(Lfm2VlProcessor, TinyLfm2VlImageProcessor, "lfm2_vl")


# --- Command A Vision (cohere2_vision) -------------------------------------------------------------------------------
class _Cohere2VisionImagesKwargs(ImagesKwargs, total=False):
    crop_to_patches: bool
    min_patches: int
    max_patches: int


def _cohere2_canvas(height: int, width: int, tile: int, max_tiles: int) -> tuple[int, int]:
    """(columns, rows): the grid needing the least upscaling to cover the image, or else the least downscaling
    (HF's get_optimal_tiled_canvas; the smallest grid first among equals)."""
    grids = sorted(
        ((w, h) for w in range(1, max_tiles + 1) for h in range(1, max_tiles + 1) if w * h <= max_tiles), key=lambda g: g[0] * g[1]
    )
    scales = np.min(np.array(grids) * tile / np.stack([width, height]), axis=-1, keepdims=True)
    if np.all(scales < 1):
        return grids[int(np.argmax(scales))]
    return grids[int(np.argmin(np.where(scales < 1.0, 10e9, scales)))]


class TinyCohere2VisionImageProcessor(_TorchvisionOnCpu):
    """Cohere2VisionImageProcessor: the image resized (bicubic) to the best canvas of ``size`` tiles (up to
    ``max_patches``), cut row-major, plus a thumbnail of the whole image when there are several; CLIP mean/std.
    ``patch_size``: image tokens per tile side, which the processor reads."""

    resample, size, do_resize, do_convert_rgb = PILImageResampling.BICUBIC, {"height": 28, "width": 28}, True, True
    do_rescale, rescale_factor, do_normalize = True, 1 / 255, True
    image_mean, image_std = OPENAI_CLIP_MEAN, OPENAI_CLIP_STD
    crop_to_patches, min_patches, max_patches, patch_size = True, 1, 4, 2
    valid_kwargs = _Cohere2VisionImagesKwargs

    def _preprocess(self, images: list[torch.Tensor], **kw) -> BatchFeature:
        size, resample = kw["size"], kw["resample"]
        units, num_patches = [], []
        for image in images:
            tiles = [image]
            if kw["crop_to_patches"]:
                cols, rows = _cohere2_canvas(*image.shape[-2:], size.height, kw["max_patches"])
                canvas = self.resize(image, SizeDict(height=size.height * rows, width=size.width * cols), resample)
                tiles = _split_to_tiles(canvas, rows, cols)
                tiles += [self.resize(image, size, resample)] if len(tiles) != 1 else []
            units += [self.resize(tile, size, resample) for tile in tiles]
            num_patches.append(len(tiles))
        pixels = [self.normalized(unit, kw) for unit in units]
        return BatchFeature(data={"pixel_values": pixels, "num_patches": num_patches}, tensor_type=kw["return_tensors"])


# its prompt: per tile (and thumbnail) "<|IMG_PATCH|>" x patch_size^2 and "<|IMG_LINE_BREAK|>"
TinyCohere2VisionProcessor = _tiny_processor(Cohere2VisionProcessor, TinyCohere2VisionImageProcessor, "cohere2_vision")


# --- Llama 4 ---------------------------------------------------------------------------------------------------------
class _Llama4ImagesKwargs(ImagesKwargs, total=False):
    max_patches: int
    resize_to_max_canvas: bool


def _llama4_resolutions(max_tiles: int, tile: int) -> torch.Tensor:
    """Every (height, width) canvas of up to ``max_tiles`` tiles, in HF's order (find_supported_resolutions)."""
    by_ratio = defaultdict(list)
    for count in range(max_tiles, 0, -1):
        for rows in sorted(d for d in range(1, count + 1) if count % d == 0):
            by_ratio[rows / (count // rows)].append((rows, count // rows))
    return torch.tensor([(rows * tile, cols * tile) for grids in by_ratio.values() for rows, cols in grids])


def _llama4_best_fit(height: int, width: int, canvases: torch.Tensor, to_max_canvas: bool) -> torch.Tensor:
    """The canvas needing the least upscaling (or else the least downscaling), the smallest area among equals (HF's
    get_best_fit, in the same float32 tensor arithmetic)."""
    scales = torch.minimum(canvases[:, 1] / width, canvases[:, 0] / height)
    up = scales[scales >= 1]
    chosen = (up.max() if to_max_canvas else up.min()) if len(up) else scales[scales < 1].max()
    fits = canvases[scales == chosen]
    return fits[torch.argmin(fits[:, 0] * fits[:, 1])]


def _llama4_fit_size(height: int, width: int, target_height, target_width) -> tuple[int, int]:
    """The largest size of the image's aspect inside the target (HF's get_max_res_without_distortion, whose targets
    may be 0-d tensors: the same arithmetic)."""
    scale_w, scale_h = target_width / width, target_height / height
    if scale_w < scale_h:
        return int(min(math.floor(height * scale_w), target_height)), int(target_width)
    return int(target_height), int(min(math.floor(width * scale_h), target_width))


class TinyLlama4ImageProcessor(_TorchvisionOnCpu):
    """Llama4ImageProcessor: the image resized (bilinear, aspect kept, never upscaled past one tile) into the best
    canvas of ``size`` tiles (up to ``max_patches``), zero-padded to it, rescaled and normalised in bfloat16 (as HF
    does), cut row-major; with several tiles, the whole image resized to one tile follows as the global tile.
    ``aspect_ratios``: each image's (rows, columns), which the processor writes as tile separators."""

    resample, size, do_resize, do_convert_rgb = PILImageResampling.BILINEAR, {"height": 28, "width": 28}, True, True
    do_rescale, rescale_factor, do_normalize = True, 1 / 255, True
    image_mean, image_std, max_patches, resize_to_max_canvas = [0.5] * 3, [0.5] * 3, 16, False
    valid_kwargs = _Llama4ImagesKwargs

    def rescale_and_normalize(self, images, do_rescale, rescale_factor, do_normalize, image_mean, image_std):
        # HF's override: in bfloat16, as the original implementation
        if do_rescale and do_normalize:
            return self.normalize(images.to(dtype=torch.bfloat16) * rescale_factor, image_mean, image_std)
        if do_rescale:
            return images * rescale_factor
        return self.normalize(images, image_mean, image_std) if do_normalize else images

    def _preprocess(self, images: list[torch.Tensor], **kw) -> BatchFeature:
        size = kw["size"]
        canvases = _llama4_resolutions(kw["max_patches"], size.height)
        pixels, ratios = [], []
        for image in images:
            height, width = image.shape[-2:]
            target = _llama4_best_fit(height, width, canvases, kw["resize_to_max_canvas"])
            limit = target if kw["resize_to_max_canvas"] else [min(max(side, size.height), t) for side, t in zip((height, width), target)]
            new_h, new_w = _llama4_fit_size(height, width, *limit)
            canvas_h, canvas_w = int(target[0]), int(target[1])
            resized = self.resize(image, SizeDict(height=max(new_h, 1), width=max(new_w, 1)), kw["resample"])
            canvas = torch.nn.functional.pad(resized, (0, canvas_w - resized.shape[-1], 0, canvas_h - resized.shape[-2]))
            rows, cols = canvas_h // size.height, canvas_w // size.width
            tiles = _split_to_tiles(self.normalized(canvas, kw), rows, cols)
            if rows * cols > 1:
                tiles.append(self.normalized(self.resize(image, size, kw["resample"]), kw))
            pixels.append(torch.stack(tiles))
            ratios.append(torch.tensor([rows, cols]))
        data = {"pixel_values": torch.cat(pixels) if kw["return_tensors"] else pixels, "aspect_ratios": ratios}
        return BatchFeature(data=data, tensor_type=kw["return_tensors"])


# its prompt: the tiles' "<|patch|>" runs, "<|tile_x_separator|>" between columns and "<|tile_y_separator|>" after each
# row, then "<|image|>" and the global tile's
TinyLlama4Processor = _tiny_processor(Llama4Processor, TinyLlama4ImageProcessor, "llama4")
