"""QEfficient's command-line spellings, shared by every command (cloud/ and finetune/ alike)."""

from __future__ import annotations

import argparse


def add_argument(parser: argparse.ArgumentParser, name: str, *aliases: str, **kwargs) -> None:
    """Accept both --a_b and --a-b, as QEfficient does, for the name and each alias
    (``add_argument(p, "mxfp6", "mxfp6_matmul")``: QEfficient's two spellings of one option)."""
    flags = {f"--{n}" for alias in (name, *aliases) for n in (alias, alias.replace("_", "-"))}
    parser.add_argument(*sorted(flags), dest=name, **kwargs)
