"""Shared helpers; QEfficient's own (``load_hf_tokenizer``, ``qpc_exists``, ``get_qpc_dir_path``, ...) keep its import
paths (``QEfficient.utils``, ``QEfficient.utils._utils``)."""

from QEfficient.utils import _utils
from QEfficient.utils._utils import *  # noqa: F403 - QEfficient's helpers, named in _utils.__all__

__all__ = list(_utils.__all__)
