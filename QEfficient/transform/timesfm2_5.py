"""TimesFM 2.5 (transformers' ``TimesFm2_5ModelForPrediction``): one decoding pass over a normalized context window,
as its ``_decode_and_project``: forward(past_values [B, context], past_values_padding [B, context]) -> the last
patch's point forecast [B, horizon, 1 + quantiles] and quantile spreads [B, quantile horizon, 1 + quantiles]. What
transformers does around it (the global normalization, flip invariance, the continuous quantile head) runs on the host
(models/timesfm2_5.py).

transformers updates each series' running mean and deviation patch by patch in a Python loop (Welford's), which a
trace would unroll once per patch (512 at the 16k context); here they are cumulative sums over the patches
(``running_stats``). The attention mask (causal, padded patches hidden) is written out as additive values.
"""

from __future__ import annotations

import torch
from torch import nn
from transformers import PreTrainedModel


def running_stats(patches: torch.Tensor, masked: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The mean and (population) deviation of each series' valid values up to each patch ([B, N, P] values and
    padding -> [B, N] each): 0 where nothing is valid yet, as transformers' ``_update_running_stats``.

    As its update, each patch's squared deviations are taken around the patch's own mean; the patches are then merged
    (Chan's formula) as cumulative sums around each series' overall mean, so that a level far above the spread (a short
    series in a long context keeps its own) costs no precision."""
    valid = (~masked).to(patches.dtype)
    count = valid.sum(-1)  # [B, N]
    safe = torch.where(count == 0, torch.ones_like(count), count)
    mean = (patches * valid).sum(-1) / safe
    squares = (((patches - mean.unsqueeze(-1)) * valid) ** 2).sum(-1)  # each patch's, around its mean
    total = count.sum(-1, keepdim=True)
    shift = (mean * count).sum(-1, keepdim=True) / torch.where(total == 0, torch.ones_like(total), total)
    running_count = torch.cumsum(count, dim=1)
    running_safe = torch.where(running_count == 0, torch.ones_like(running_count), running_count)
    offset = torch.cumsum(count * (mean - shift), dim=1) / running_safe  # the running mean less the shift
    merged = torch.cumsum(squares + count * (mean - shift) ** 2, dim=1) - running_count * offset**2
    empty = running_count == 0
    running_mean = torch.where(empty, torch.zeros_like(offset), shift + offset)
    variance = torch.where(empty, torch.zeros_like(merged), merged / running_safe)
    return running_mean, torch.sqrt(torch.clamp(variance, min=0.0))


class QEffTimesFm2_5(nn.Module):
    """forward(past_values, past_values_padding [B, context]) -> (point forecast, quantile spreads) of the last patch
    (module docstring)."""

    def __init__(self, hf_model: PreTrainedModel) -> None:
        super().__init__()
        if hf_model.config.model_type != "timesfm2_5":
            raise NotImplementedError(f"{type(hf_model).__name__} is not a TimesFM 2.5 forecaster.")
        self.hf = hf_model

    @property
    def config(self):
        return self.hf.config

    def forward(self, past_values: torch.Tensor, past_values_padding: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        model, config = self.hf.model, self.config
        batch = past_values.shape[0]
        patches = past_values.view(batch, -1, config.patch_length)
        masked = past_values_padding.view(batch, -1, config.patch_length) >= 0.5
        mu, sigma = running_stats(patches, masked)
        normed = model._revin(patches, mu, sigma, reverse=False, mask=masked)
        hidden = model.input_ff_layer(torch.cat([normed, masked.to(normed.dtype)], dim=-1))

        padded_patch = masked[..., -1]
        count = hidden.shape[1]
        position_ids = torch.arange(count, device=hidden.device).unsqueeze(0) - padded_patch.to(torch.int64).sum(-1, keepdim=True)
        steps = torch.arange(count, device=hidden.device)
        seen = (steps[None, :] <= steps[:, None])[None] & ~padded_patch[:, None, :]  # [B, query, key]
        mask = torch.where(seen, 0.0, torch.finfo(hidden.dtype).min).to(hidden.dtype)[:, None]
        position_embeddings = model.rotary_emb(hidden, position_ids)
        for layer in model.layers:
            hidden = layer(hidden, position_embeddings=position_embeddings, attention_mask=mask, position_ids=position_ids)

        quantiles = len(config.quantiles) + 1
        point = model._revin(self.hf.output_projection_point(hidden), mu, sigma, reverse=True)
        spreads = model._revin(self.hf.output_projection_quantiles(hidden), mu, sigma, reverse=True)
        point = point[:, -1].reshape(batch, config.horizon_length, quantiles)
        spreads = spreads[:, -1].reshape(batch, config.output_quantile_len, quantiles)
        return point, spreads
