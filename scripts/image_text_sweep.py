"""Run the image-text sweep (tests/image_text_sweep.py) and write docs/architectures_image_text.md.

PYTHONPATH=$PWD python scripts/image_text_sweep.py                 # every type, rewrites the table
PYTHONPATH=$PWD python scripts/image_text_sweep.py --types llava_next mistral3   # a few, printed only
PYTHONPATH=$PWD python scripts/image_text_sweep.py --update llava_next mistral3  # a few, their table rows rewritten
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

from tests.image_text_sweep import STATUSES, Result, all_types, check_type, table

DOC = Path(__file__).resolve().parents[1] / "docs" / "architectures_image_text.md"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--types", nargs="*", help="only these model types (the table file is left alone)")
    parser.add_argument("--update", nargs="*", help="only these model types; their rows of the table are rewritten")
    args = parser.parse_args(argv)
    results: dict[str, Result] = {}
    for model_type in args.update or args.types or all_types():
        result = check_type(model_type)
        results[model_type] = result
        print(json.dumps(result.__dict__), flush=True)
    if args.types:
        return 0
    if args.update:
        results = {**table_rows(DOC.read_text()), **results}
    DOC.write_text(table([results[t] for t in all_types() if t in results]))
    print(f"wrote {DOC}")
    return 0


def table_rows(text: str) -> dict[str, Result]:
    """The rows of a table written by ``table`` (the note's escaped pipes restored)."""
    rows: dict[str, Result] = {}
    for line in text.splitlines():
        cells = [c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", line)[1:-1]]
        if len(cells) == 6 and cells[2] in STATUSES:
            rows[cells[0]] = Result(*cells)
    return rows


if __name__ == "__main__":
    sys.exit(main())
