"""QEfficient's ``QEfficient.utils.logging_utils``: the package's logger, which its users' scripts import."""

import logging

logger = logging.getLogger("QEfficient")
