"""BGE-M3 (BAAI/bge-m3): its encoder's folder also holds the multi-vector and the sparse heads, each a torch Linear's state
dict as FlagEmbedding saves them."""

from __future__ import annotations

from pathlib import Path

from QEfficient.loading.sentence_transformers_files import DenseLayer

M3_HEAD_FILES = ("colbert_linear.pt", "sparse_linear.pt")


def is_bge_m3_folder(folder: str | Path | None) -> bool:
    """Whether ``folder`` holds BGE-M3's heads beside its encoder (FlagEmbedding's colbert_linear.pt and sparse_linear.pt)."""
    return bool(folder) and all((Path(folder) / name).is_file() for name in M3_HEAD_FILES)


def read_bge_m3_heads(folder: str | Path) -> tuple[DenseLayer, DenseLayer]:
    """BGE-M3's (multi-vector, sparse) heads: each a torch Linear's state dict (``weight``, ``bias``) in its .pt file."""
    import torch

    folder = Path(folder)
    if not is_bge_m3_folder(folder):
        raise ValueError(
            f"{folder} is not a BGE-M3 model: it needs {' and '.join(M3_HEAD_FILES)} beside its encoder (FlagEmbedding's heads)."
        )
    heads = []
    for name in M3_HEAD_FILES:
        state = torch.load(folder / name, map_location="cpu", weights_only=True)
        if "weight" not in state:
            raise ValueError(f"{folder / name} holds no 'weight': it should be a torch Linear's state dict.")
        bias = state.get("bias")
        heads.append(DenseLayer(state["weight"].float().numpy(), None if bias is None else bias.float().numpy()))
    colbert, sparse = heads
    if sparse.weight.shape[0] != 1 or colbert.weight.shape[1] != sparse.weight.shape[1]:
        raise ValueError(
            f"{folder}'s heads must both read the hidden state and the sparse one give 1 weight: colbert_linear is "
            f"{list(colbert.weight.shape)}, sparse_linear {list(sparse.weight.shape)}."
        )
    return colbert, sparse
