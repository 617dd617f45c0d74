"""Run the image-text sweep (tests/image_text_sweep.py) and write docs/architectures_image_text.md.

PYTHONPATH=$PWD python scripts/image_text_sweep.py                 # every type, rewrites the table
PYTHONPATH=$PWD python scripts/image_text_sweep.py --types llava_next mistral3   # a few, printed only
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from tests.image_text_sweep import Result, all_types, check_type, table

DOC = Path(__file__).resolve().parents[1] / "docs" / "architectures_image_text.md"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--types", nargs="*", help="only these model types (the table file is left alone)")
    args = parser.parse_args(argv)
    results: list[Result] = []
    for model_type in args.types or all_types():
        result = check_type(model_type)
        results.append(result)
        print(json.dumps(result.__dict__), flush=True)
    if not args.types:
        DOC.write_text(table(results))
        print(f"wrote {DOC}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
