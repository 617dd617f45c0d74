"""Grounding DINO's (and MM Grounding DINO's) text masks without ``isin``, ``cummax`` or ``cummin``, which have no ONNX
export at opset 17, and without Python sizes, which tracing would freeze at the example's length.

transformers splits the prompt into phrases at its special tokens ([CLS], [SEP], ".", "?"): each token attends to the
tokens of its own phrase (those with the same next special token), and its position restarts after each special token.
The previous and next special token of every position are found here by a max / min over a [positions, positions]
comparison instead of running maxima: the same numbers for prompts of a few hundred tokens at most (``max_text_len``).
"""

from __future__ import annotations

import torch


def text_masks_and_positions(input_ids: torch.Tensor, special_tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(attention mask [B, N, N] bool, position ids [B, N]): transformers'
    ``generate_masks_with_special_tokens_and_transfer_map``."""
    special = (input_ids.unsqueeze(-1) == special_tokens).any(-1)  # [B, N]
    index = torch.arange(input_ids.shape[1], device=input_ids.device)
    key, query = index[None, :], index[:, None]
    length = index[-1:] + 1  # a tensor, so that the graph follows the prompt's length
    previous = torch.where(special[:, None, :] & (key < query), index, -1).amax(-1)
    following = torch.where(special[:, None, :] & (key >= query), index, length).amin(-1)
    # a phrase closed by the first or the last token (or by none) is no phrase
    in_phrase = (following != 0) & (following != length - 1) & (following != length)
    mask = (following.unsqueeze(2) == following.unsqueeze(1)) & in_phrase.unsqueeze(1)
    mask = (key == query).unsqueeze(0) | mask
    positions = torch.where(in_phrase, index - previous - 1, torch.zeros_like(previous)).clamp(min=0)
    return mask, positions.to(torch.long)
