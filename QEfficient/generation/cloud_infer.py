"""QEfficient's ``QEfficient.generation.cloud_infer`` import path: ``QAICInferenceSession``, the session its
low-level scripts drive a compiled model with (runtime/buffer_session.py)."""

from QEfficient.runtime.buffer_session import BufferSession as QAICInferenceSession

__all__ = ["QAICInferenceSession"]
