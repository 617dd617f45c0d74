"""python -m QEfficient [--version]: the package version and the command-line tools it ships."""

from __future__ import annotations

import argparse
import importlib.metadata
import platform

from QEfficient._version import __version__

TOOLS = {
    "infer": "export, compile and generate in one step",
    "export": "export a model to ONNX",
    "execute": "run a compiled artifact",
    "serve": 'an OpenAI-compatible server (needs pip install "QEfficient[serve]")',
}


def _installed(distribution: str) -> str:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def version_text() -> str:
    """This package's version, then the versions of the libraries that decide its behaviour."""
    deps = ", ".join(f"{name} {_installed(name)}" for name in ("transformers", "torch", "onnxruntime", "onnx"))
    return f"QEfficient {__version__} ({deps}; Python {platform.python_version()})"


def main(argv: list[str] | None = None) -> None:
    epilog = "commands:\n" + "\n".join(f"  python -m QEfficient.cloud.{name:<8} {what}" for name, what in TOOLS.items())
    p = argparse.ArgumentParser(
        prog="python -m QEfficient", description=__doc__, epilog=epilog, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--version", action="version", version=version_text())
    p.parse_args(argv)
    p.print_help()


if __name__ == "__main__":
    main()
