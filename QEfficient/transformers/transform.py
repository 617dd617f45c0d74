"""QEfficient's ``QEfficient.transform(model, form_factor="cloud")``.

There it swaps a model's modules for Cloud AI 100 ones before export; here the rewrites are applied when a model is
exported, so the model comes back as it is, and a form factor other than "cloud" is refused as QEfficient refuses it.
"""

from __future__ import annotations

from typing import Any


def transform(model: Any, form_factor: str = "cloud") -> Any:
    if form_factor != "cloud":
        raise ValueError("Only form_factor='cloud' is supported as of now!")
    return model
