"""QEfficient's ``QEfficient.finetune.utils.logging_utils.logger``: the package's logger."""

from QEfficient.utils.logging_utils import logger

__all__ = ["logger"]
