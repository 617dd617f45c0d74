"""QEfficient: Hugging Face models exported to ONNX and run fast on ONNX Runtime, with Qualcomm QEfficient's API.

The public names load on first use (PEP 562), so that the run-time stages (``QEfficient.runtime``,
``QEfficient.generation``) and a server started on a compiled artifact do not import torch or
transformers' modeling code just because the package was imported.
"""

import importlib
import logging
import sys
import types

import QEfficient.compile
import QEfficient.export
import QEfficient.transform
from QEfficient._version import __version__

# public name -> the module that defines it
_LAZY = {
    "QEFFAutoModel": "QEfficient.models.encoder",
    "QEFFAutoModelForSequenceClassification": "QEfficient.models.encoder",
    "QEFFAutoModelForTokenClassification": "QEfficient.models.token_heads",
    "QEFFAutoModelForMaskedLM": "QEfficient.models.token_heads",
    "QEFFAutoModelForKeypointDetection": "QEfficient.models.keypoints",
    "QEFFAutoModelForKeypointMatching": "QEfficient.models.keypoints",
    "QEFFEfficientLoFTRForKeypointMatching": "QEfficient.models.dense_matching",
    "QEFFAutoModelForMaskGeneration": "QEfficient.models.mask_generation",
    "QEFFAutoModelForImageClassification": "QEfficient.models.image_encoder",
    "QEFFAutoModelForImageFeatureExtraction": "QEfficient.models.image_encoder",
    "QEFFAutoModelForDepthEstimation": "QEfficient.models.image_heads",
    "QEFFAutoModelForSemanticSegmentation": "QEfficient.models.image_heads",
    "QEFFAutoModelForObjectDetection": "QEfficient.models.image_heads",
    "QEFFAutoModelForPoseEstimation": "QEfficient.models.image_heads",
    "QEFFAutoModelForImageMatting": "QEfficient.models.image_heads",
    "QEFFAutoModelForImageToImage": "QEfficient.models.image_heads",
    "QEFFAutoModelForUniversalSegmentation": "QEfficient.models.image_heads",
    "QEFFAutoModelForTextToWaveform": "QEfficient.models.text_to_speech",
    "QEFFAutoModelForTimeSeriesPrediction": "QEfficient.models.time_series",
    "QEFFTimesFmModelForPrediction": "QEfficient.models.timesfm",
    "QEFFTimesFm2_5ModelForPrediction": "QEfficient.models.timesfm2_5",
    "QEFFAutoModelForVideoClassification": "QEfficient.models.video_classifier",
    "QEFFAutoModelForQuestionAnswering": "QEfficient.models.token_heads",
    "QEFFAutoModelForDocumentQuestionAnswering": "QEfficient.models.token_heads",
    "QEFFAutoModelForTextEncoding": "QEfficient.models.encoder",
    "QEFFAutoModelForNextSentencePrediction": "QEfficient.models.token_heads",
    "QEFFAutoModelForMultipleChoice": "QEfficient.models.token_heads",
    "QEFFAutoModelForCausalLM": "QEfficient.models.causal_lm",
    "QEFFAutoModelForCTC": "QEfficient.models.ctc",
    "QEFFAutoModelForAudioClassification": "QEfficient.models.ctc",
    "QEFFAutoModelForAudioFeatureExtraction": "QEfficient.models.ctc",
    "QEFFAutoModelForAudioFrameClassification": "QEfficient.models.audio_heads",
    "QEFFAutoModelForAudioXVector": "QEfficient.models.audio_heads",
    "QEFFAutoModelForImageTextToText": "QEfficient.models.image_text",
    "QEFFAutoModelForSpeechSeq2Seq": "QEfficient.models.speech_seq2seq",
    "QEFFAutoModelForSpeechEncoderDecoder": "QEfficient.models.speech_encoder_decoder",
    "QEFFAutoModelForRNNT": "QEfficient.models.transducer",
    "QEFFAutoModelForTDT": "QEfficient.models.transducer",
    "QEFFAutoModelForSeq2SeqLM": "QEfficient.models.seq2seq_lm",
    "QEFFAutoModelForRetrieval": "QEfficient.models.retrieval",
    "QEFFColBERTModel": "QEfficient.models.colbert",
    "QEFFBGEM3Model": "QEfficient.models.bge_m3",
    "QEFFSparseEncoder": "QEfficient.models.sparse_encoder",
    "QEFFAutoModelForVisionEncoderDecoder": "QEfficient.models.vision_seq2seq",
    "QEFFAutoModelForVisualQuestionAnswering": "QEfficient.models.visual_qa",
    "QEFFAutoModelForZeroShotImageClassification": "QEfficient.models.dual_encoder",
    "QEFFAutoModelForZeroShotObjectDetection": "QEfficient.models.zero_shot_detection",
    "QEFFBlipForConditionalGeneration": "QEfficient.models.image_seq2seq",
    "QEFFFlorence2ForConditionalGeneration": "QEfficient.models.image_seq2seq",
    "QEFFPix2StructForConditionalGeneration": "QEfficient.models.image_seq2seq",
    "QEFFPPFormulaNetForConditionalGeneration": "QEfficient.models.image_seq2seq",
    "QEFFT5Gemma2ForConditionalGeneration": "QEfficient.models.image_seq2seq",
    "QEFFCommonLoader": "QEfficient.base.common",
    "QEffAutoLoraModelForCausalLM": "QEfficient.peft.lora_model",
    "QEffAutoPeftModelForCausalLM": "QEfficient.peft.auto",
    "cloud_ai_100_exec_kv": "QEfficient.generation.text_generation_inference",
    "qualcomm_efficient_converter": "QEfficient.exporter.export_hf_to_cloud_ai_100",
}


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value  # once loaded, a plain attribute
        return value
    raise AttributeError(f"module 'QEfficient' has no attribute '{name}'")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


class _CallablePackage(types.ModuleType):
    """A pipeline subpackage that is also QEfficient's legacy function of the same name.

    QEfficient's ``QEfficient.export(model_name)``, ``QEfficient.compile(onnx_path, qpc_path, ...)`` and
    ``QEfficient.transform(model)`` are functions, while here ``QEfficient.export``, ``QEfficient.compile`` and
    ``QEfficient.transform`` are the pipeline's stages. Rebinding the names to the functions (QEfficient's way)
    would break attribute access such as ``QEfficient.compile.ort_cpu``; a package whose call runs the function keeps
    both working.
    """

    def __call__(self, *args, **kwargs):
        module_name, function_name = self.__dict__["_legacy_function"]
        return getattr(importlib.import_module(module_name), function_name)(*args, **kwargs)


for _name, _function in (
    ("export", ("QEfficient.exporter.export_hf_to_cloud_ai_100", "qualcomm_efficient_converter")),
    ("compile", ("QEfficient.compile.compile_helper", "compile")),
    ("transform", ("QEfficient.transformers.transform", "transform")),
):
    _package = sys.modules[f"{__name__}.{_name}"]
    _package.__class__ = _CallablePackage
    _package._legacy_function = _function
del _name, _function, _package

export = QEfficient.export  # noqa: PLW0127 - named for __all__: the package, callable as QEfficient's function
compile = QEfficient.compile  # noqa: A001
transform = QEfficient.transform

__all__ = [
    "QEFFAutoModel",
    "QEFFAutoModelForAudioClassification",
    "QEFFAutoModelForAudioFeatureExtraction",
    "QEFFAutoModelForAudioFrameClassification",
    "QEFFAutoModelForAudioXVector",
    "QEFFAutoModelForCausalLM",
    "QEFFAutoModelForCTC",
    "QEFFAutoModelForDepthEstimation",
    "QEFFAutoModelForImageClassification",
    "QEFFAutoModelForImageFeatureExtraction",
    "QEFFAutoModelForImageTextToText",
    "QEFFAutoModelForMaskedLM",
    "QEFFAutoModelForKeypointDetection",
    "QEFFAutoModelForKeypointMatching",
    "QEFFEfficientLoFTRForKeypointMatching",
    "QEFFAutoModelForMaskGeneration",
    "QEFFAutoModelForObjectDetection",
    "QEFFAutoModelForPoseEstimation",
    "QEFFAutoModelForImageMatting",
    "QEFFAutoModelForImageToImage",
    "QEFFAutoModelForQuestionAnswering",
    "QEFFAutoModelForDocumentQuestionAnswering",
    "QEFFAutoModelForTextEncoding",
    "QEFFAutoModelForNextSentencePrediction",
    "QEFFAutoModelForMultipleChoice",
    "QEFFAutoModelForRetrieval",
    "QEFFColBERTModel",
    "QEFFBGEM3Model",
    "QEFFSparseEncoder",
    "QEFFAutoModelForSemanticSegmentation",
    "QEFFAutoModelForSequenceClassification",
    "QEFFAutoModelForSpeechSeq2Seq",
    "QEFFAutoModelForSpeechEncoderDecoder",
    "QEFFAutoModelForRNNT",
    "QEFFAutoModelForTDT",
    "QEFFAutoModelForSeq2SeqLM",
    "QEFFAutoModelForTokenClassification",
    "QEFFAutoModelForUniversalSegmentation",
    "QEFFAutoModelForTextToWaveform",
    "QEFFAutoModelForTimeSeriesPrediction",
    "QEFFTimesFmModelForPrediction",
    "QEFFTimesFm2_5ModelForPrediction",
    "QEFFAutoModelForVideoClassification",
    "QEFFAutoModelForVisionEncoderDecoder",
    "QEFFAutoModelForVisualQuestionAnswering",
    "QEFFAutoModelForZeroShotImageClassification",
    "QEFFAutoModelForZeroShotObjectDetection",
    "QEFFBlipForConditionalGeneration",
    "QEFFFlorence2ForConditionalGeneration",
    "QEFFPix2StructForConditionalGeneration",
    "QEFFPPFormulaNetForConditionalGeneration",
    "QEFFT5Gemma2ForConditionalGeneration",
    "QEFFCommonLoader",
    "QEffAutoLoraModelForCausalLM",
    "QEffAutoPeftModelForCausalLM",
    "cloud_ai_100_exec_kv",
    "transform",
    "qualcomm_efficient_converter",
    "compile",
    "export",
    "__version__",
]

logging.getLogger(__name__).addHandler(logging.NullHandler())
