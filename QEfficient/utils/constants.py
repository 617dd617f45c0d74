"""QEfficient's constants (``QEfficient.utils.constants``) that scripts read, with this backend's values.

Hardware-only constants (compiler paths, AIC versions, QNN settings) have no meaning on ONNX Runtime
and are not defined.
"""

from __future__ import annotations

import os

from QEfficient.utils.cache import qeff_home

UTILS_DIR = os.path.dirname(os.path.abspath(__file__))
QEFF_DIR = os.path.dirname(UTILS_DIR)
ROOT_DIR = os.path.dirname(QEFF_DIR)

# Where exports and artifacts go. QEfficient names two folders (qeff_models for exports, qeff_cache
# for this constant); here both are QEFF_HOME, the one cache root.
QEFF_MODELS_DIR = str(qeff_home())

ONNX_EXPORT_EXAMPLE_BATCH_SIZE = 1
ONNX_EXPORT_EXAMPLE_SEQ_LEN = 32
ONNX_EXPORT_EXAMPLE_FBS = 4
ONNX_EXPORT_CTX_LEN = 1024
ONNX_LEGACY_EXPORT_OPSET = 17
ONNX_DYNAMO_EXPORT_OPSET = 18
ONNX_EXPORT_OPSET = ONNX_LEGACY_EXPORT_OPSET

DEFAULT_SERVER_CTX_LEN = 512  # serve's context (an encoder's input limit) without --ctx_len, within the model's positions
DEFAULT_AIC_NUM_CORES = 16
DEFAULT_AIC_MXPF6_MATMUL = False
HASH_HEXDIGEST_STR_LEN = 16
MIN_MASKED_ATTENTION_VALUE = float("-inf")

ONNX_EXPORT_EXAMPLE_MAX_TOP_K_IDS = 512


def get_onnx_export_opset(dynamo: bool = False) -> int:
    return ONNX_DYNAMO_EXPORT_OPSET if dynamo else ONNX_LEGACY_EXPORT_OPSET


class Constants:
    SEQ_LEN = 32
    CTX_LEN = 32
    PROMPT_LEN = 8
    INPUT_STR = ["My name is"]
    GB = 2**30
    MAX_QPC_LIMIT = 30
    MAX_RETRIES = 10
    NUM_SPECULATIVE_TOKENS = 2
    MAX_TOP_K_IDS = ONNX_EXPORT_EXAMPLE_MAX_TOP_K_IDS
    SAMPLER_OPS = {
        "repetition_penalties",
        "presence_penalties",
        "temperatures",
        "top_ks",
        "top_ps",
        "min_ps",
        "random_numbers",
    }
    SAMPLER_INPUTS = SAMPLER_OPS | {"last_accepted_output_tokens"}
