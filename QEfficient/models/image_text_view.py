"""Small parts of the image-text model class (models/image_text.py): QEfficient's ``qeff_model.model`` view, and the
checks of its inputs."""

from __future__ import annotations

import numpy as np
from transformers import PreTrainedModel

from QEfficient.utils.checks import check_positive

# Far above any vision encoder's input side; the trace's example alone is 2 x 3 x side^2 floats (1.6 GB here).
MAX_IMG_SIZE = 8192


def check_img_size(img_size: int, default: int) -> None:
    """A positive side no larger than MAX_IMG_SIZE, said before anything is allocated for it."""
    check_positive(img_size=img_size)
    if img_size > MAX_IMG_SIZE:
        raise ValueError(
            f"img_size={img_size} is larger than any vision encoder takes (at most {MAX_IMG_SIZE} here); this model's own "
            f"image size is {default}: leave img_size out to use it."
        )


class ModelView:
    """The transformers model as QEfficient's ``qeff_model.model`` shows it: its attributes, and
    ``prepare_inputs_for_generation(inputs, prefill_seq_len, batch_size)``, which QEfficient's Qwen-VL scripts call
    before ``generate(inputs=...)`` to add the multimodal rotary positions; ``generate`` computes those itself here, so
    the inputs come back as they are (image_grid_thw kept: the positions are read from it)."""

    def __init__(self, hf: PreTrainedModel) -> None:
        object.__setattr__(self, "_hf", hf)

    def __getattr__(self, name: str):
        if name == "_hf":  # not set yet (a copy being built): no recursion
            raise AttributeError(name)
        return getattr(self._hf, name)

    def __setattr__(self, name: str, value) -> None:
        setattr(self._hf, name, value)

    def __call__(self, *args, **kwargs):
        return self._hf(*args, **kwargs)

    def __repr__(self) -> str:
        return repr(self._hf)

    def prepare_inputs_for_generation(self, inputs, prefill_seq_len: int = 128, batch_size: int = 1):
        return inputs


def holds_an_image(pixels) -> bool:
    """Whether ``pixels`` hold an image (not a processor's all-zero stand-in for none)."""
    try:
        return bool(np.asarray(pixels, dtype=np.float32).any())
    except (TypeError, ValueError):  # images of different sizes in a list
        return True
