"""QEfficient: Hugging Face models exported to ONNX and run fast on ONNX Runtime, with Qualcomm QEfficient's API."""

import logging
import sys
import types

import QEfficient.compile
import QEfficient.export
from QEfficient._version import __version__
from QEfficient.base.common import QEFFCommonLoader
from QEfficient.compile.compile_helper import compile as _legacy_compile
from QEfficient.exporter.export_hf_to_cloud_ai_100 import qualcomm_efficient_converter
from QEfficient.generation.text_generation_inference import cloud_ai_100_exec_kv
from QEfficient.models.causal_lm import QEFFAutoModelForCausalLM
from QEfficient.models.ctc import QEFFAutoModelForCTC
from QEfficient.models.encoder import QEFFAutoModel, QEFFAutoModelForSequenceClassification
from QEfficient.models.image_text import QEFFAutoModelForImageTextToText
from QEfficient.models.speech_seq2seq import QEFFAutoModelForSpeechSeq2Seq


class _CallablePackage(types.ModuleType):
    """A pipeline subpackage that is also QEfficient's legacy function of the same name.

    QEfficient's ``QEfficient.export(model_name)`` and ``QEfficient.compile(onnx_path, qpc_path, ...)``
    are functions, while here ``QEfficient.export`` and ``QEfficient.compile`` are the pipeline's
    stages. Rebinding the names to the functions (QEfficient's way) would break attribute access such
    as ``QEfficient.compile.ort_cpu``; a package whose call runs the function keeps both working.
    """

    def __call__(self, *args, **kwargs):
        return self.__dict__["_legacy_function"](*args, **kwargs)


for _name, _function in (("export", qualcomm_efficient_converter), ("compile", _legacy_compile)):
    _package = sys.modules[f"{__name__}.{_name}"]
    _package.__class__ = _CallablePackage
    _package._legacy_function = _function
del _name, _function, _package

export = QEfficient.export  # noqa: PLW0127 - named for __all__: the package, callable as QEfficient's function
compile = QEfficient.compile  # noqa: A001

__all__ = [
    "QEFFAutoModel",
    "QEFFAutoModelForCausalLM",
    "QEFFAutoModelForCTC",
    "QEFFAutoModelForImageTextToText",
    "QEFFAutoModelForSequenceClassification",
    "QEFFAutoModelForSpeechSeq2Seq",
    "QEFFCommonLoader",
    "cloud_ai_100_exec_kv",
    "compile",
    "export",
    "__version__",
]

logging.getLogger(__name__).addHandler(logging.NullHandler())
