"""Image encoders (any transformers ``AutoModel`` that reads ``pixel_values``: ViT, DINOv2, ConvNeXt, SigLIP's vision
tower, ...) and image classifiers in export-ready form: the pixels in, the last hidden state (pooled where asked) or
the logits out. The model runs its own modules, but for two things: its position table, resized to the compiled image
size (``interpolate_pos_encoding``: bicubic, DINOv2-with-registers' antialiased, which has no ONNX export), enters the
graph as the constant it is there; MobileViTV2's patch folding is a reshape (transform/rewrites.py)."""

from __future__ import annotations

import contextlib
import inspect
import types
from collections.abc import Iterator

import torch
from torch import nn
from transformers import PreTrainedModel

from QEfficient.transform.encoder import PoolingFn, eager_attention
from QEfficient.transform.rewrites import apply_rewrites, fix_adaptive_pools


def reads_pixels(model: PreTrainedModel) -> bool:
    """Whether ``model`` is an image encoder (its main input is ``pixel_values``)."""
    return getattr(model, "main_input_name", None) == "pixel_values"


def image_size(config) -> tuple[int, int] | None:
    """(height, width) the model was trained at, from its config (or its vision config), or None where it says none."""
    size = getattr(config, "image_size", None) or getattr(getattr(config, "vision_config", None), "image_size", None)
    if size is None:
        return None
    return (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))


class QEffImageEncoder(nn.Module):
    """forward(pixel_values [B, C, H, W]) -> the last hidden state [B, tokens, D] (a convolutional model's [B, D, h, w]),
    pooled [B, D] where ``pooling`` is given, or the head's ``output``: a classifier's logits [B, labels], a segmenter's
    [B, labels, h, w], a depth map [B, H, W], or (a tuple of names) a detector's logits and boxes."""

    def __init__(self, hf_model: PreTrainedModel, pooling: PoolingFn | None = None, output: str | tuple[str, ...] | None = None) -> None:
        super().__init__()
        if not reads_pixels(hf_model):
            raise ValueError(f"{type(hf_model).__name__} does not read pixel_values: it is not an image encoder.")
        if hf_model.config.model_type == "vit_mae" and getattr(hf_model.config, "mask_ratio", 0):  # its pre-training embeddings
            raise ValueError(
                f"{type(hf_model).__name__} masks and shuffles its patches at random on every call (mask_ratio="
                f"{hf_model.config.mask_ratio}, random noise): no two runs agree, transformers' neither. Its encoder is not run "
                "here: a checkpoint fine-tuned from it (ViT) is."
            )
        apply_rewrites(hf_model)  # MobileViTV2's patch folding (transform/rewrites.py)
        fix_adaptive_pools(hf_model)  # pyramid pooling (BEiT's and UperNet's segmentation heads) at the one compiled size
        self.hf = hf_model
        self.pooling = pooling
        # DeiT's distilled and LeViT's classifiers are ...ForImageClassificationWithTeacher, Perceiver's ...Learned
        self.classifier = "ForImageClassification" in type(hf_model).__name__
        # the head's output the graph returns (a classifier's or a segmenter's logits, a depth map), else the hidden states
        self.output = output or ("logits" if self.classifier else None)
        self.resizes_positions = "interpolate_pos_encoding" in inspect.signature(hf_model.forward).parameters
        config = hf_model.config
        nested = getattr(config, "vision_config", None) or getattr(config, "backbone_config", None)  # VitMatte's: 4 (with the trimap)
        self.num_channels = getattr(config, "num_channels", None) or getattr(nested, "num_channels", 3)

    @property
    def config(self):
        return self.hf.config

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        extra = {}
        if self.resizes_positions and image_size(self.config) != tuple(pixel_values.shape[2:]):
            extra["interpolate_pos_encoding"] = True  # as a user of transformers asks for other sizes than the config's
        with eager_attention(self.config):
            out = self.hf(pixel_values=pixel_values, **extra)
        if isinstance(self.output, tuple):  # a detector's logits and boxes
            return tuple(getattr(out, name) for name in self.output)
        if self.output is not None:
            return getattr(out, self.output)
        hidden = out.last_hidden_state
        if self.pooling is None:
            return hidden
        if hidden.dim() != 3:
            raise ValueError(
                f"pooling applies to a sequence of patch states; {type(self.hf).__name__}'s last hidden state has shape "
                f"{list(hidden.shape)}: load it without pooling."
            )
        return self.pooling(hidden, torch.ones(hidden.shape[:2], dtype=torch.int64))

    @contextlib.contextmanager
    def fixed_positions(self, height: int, width: int) -> Iterator[None]:
        """While exporting for ``height`` x ``width`` images: each ``interpolate_pos_encoding`` returns the table it
        computes for that size (run here on two random images; one whose output depends on the image is left alone)."""
        methods = {m: m.interpolate_pos_encoding for m in self.hf.modules() if callable(getattr(m, "interpolate_pos_encoding", None))}
        methods = {m: f for m, f in methods.items() if isinstance(f, types.MethodType)}
        recorded: dict[nn.Module, list[torch.Tensor]] = {m: [] for m in methods}

        def recorder(module):
            def record(embeddings, *args, **kwargs):
                out = methods[module](embeddings, *args, **kwargs)
                recorded[module].append(out.detach().clone() if isinstance(out, torch.Tensor) else None)
                return out

            return record

        try:
            for module in methods:
                module.interpolate_pos_encoding = recorder(module)
            generator = torch.Generator().manual_seed(0)
            with torch.no_grad():
                for _ in range(2):
                    self(torch.rand(1, self.num_channels, height, width, generator=generator))
            for module, outs in recorded.items():
                fixed = len(outs) == 2 and outs[0] is not None and outs[1] is not None and torch.equal(outs[0], outs[1])
                if fixed:
                    module.interpolate_pos_encoding = lambda *args, table=outs[0], **kwargs: table
                else:
                    del module.interpolate_pos_encoding  # back to the class's method
            yield
        finally:
            for module in methods:
                module.__dict__.pop("interpolate_pos_encoding", None)
