"""Shared helpers; ``load_hf_tokenizer`` and friends keep QEfficient's import path (``QEfficient.utils``)."""

from QEfficient.utils.tokenizer import check_and_assign_cache_dir, load_hf_processor, load_hf_tokenizer

__all__ = ["check_and_assign_cache_dir", "load_hf_processor", "load_hf_tokenizer"]
