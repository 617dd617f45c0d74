"""Where pip would look for packages here, as arguments for ``uv pip install`` (one a line): pip's own reading of its
configuration files and PIP_* variables (index, extra indexes, find-links, constraints, trusted hosts), so that uv
installs from the same places. ``cert``: the CA bundle pip uses, if any (uv reads it from SSL_CERT_FILE).

Run by scripts/setup.sh with the venv's pip; any failure here makes the set-up install with pip instead."""

from __future__ import annotations

import sys

from pip._internal.commands import create_command


def main(argv: list[str]) -> None:
    options, _ = create_command("install").parse_args([])
    if argv == ["cert"]:
        print(options.cert or "")
        return
    args = ["--no-index"] if options.no_index else []
    if options.index_url:
        args += ["--index-url", options.index_url]
    for url in options.extra_index_urls:
        args += ["--extra-index-url", url]
    for link in options.find_links:
        args += ["--find-links", link]
    for path in options.constraints:
        args += ["--constraint", path]
    for host in options.trusted_hosts:
        args += ["--allow-insecure-host", host]
    print("\n".join(args))


if __name__ == "__main__":
    main(sys.argv[1:])
