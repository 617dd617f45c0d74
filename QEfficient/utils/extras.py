"""Optional features and the pip extra that installs each.

The core install exports and runs models; the web server, GGUF checkpoints, image loading and the
dynamo exporter need packages that many users never want. A feature calls ``require_extra`` before
it needs its packages, so a missing one names the command that installs it instead of a bare
``No module named ...``. The table below must match ``[project.optional-dependencies]``
(tests/test_packaging.py checks that).
"""

from __future__ import annotations

import importlib

# extra -> the modules it provides (import names, not distribution names)
EXTRAS: dict[str, tuple[str, ...]] = {
    "serve": ("fastapi", "uvicorn", "llguidance", "prometheus_client"),
    "gguf": ("gguf", "accelerate"),
    "vision": ("PIL",),
    "segmentation": ("scipy",),
    "dynamo": ("onnxscript",),
    "bench": ("matplotlib",),
    "ray": ("ray", "ray.serve", "ray.data"),
    "lora": ("peft",),
    "finetune": ("peft", "datasets"),
}
# import name -> distribution name, where they differ
DISTRIBUTIONS = {"PIL": "pillow", "ray.serve": "ray", "ray.data": "ray", "prometheus_client": "prometheus-client"}


class MissingExtraError(ModuleNotFoundError):
    """A feature's optional package is not installed; the message says which extra installs it."""


def install_command(extra: str) -> str:
    return f'pip install "QEfficient[{extra}]"'


def require_extra(extra: str, feature: str) -> None:
    """Raise MissingExtraError unless every module of ``extra`` imports; ``feature`` names what needs it."""
    for module in EXTRAS[extra]:
        try:
            importlib.import_module(module)
        except ImportError as err:
            package = DISTRIBUTIONS.get(module, module)
            # the package itself is absent, or it is there but one of its own imports fails
            state = "is not installed" if getattr(err, "name", None) == module else f"failed to import ({err})"
            raise MissingExtraError(
                f"{feature} needs the optional package '{package}', which {state}. Install it with: {install_command(extra)}",
                name=module,
            ) from err
