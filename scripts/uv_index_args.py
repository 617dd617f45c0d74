"""Where and how pip would fetch packages here, for ``uv pip install``: pip's own reading of its configuration files and
PIP_* variables (its index, extra indexes, find-links, constraints, trusted hosts, CA bundle and timeout), so that uv
installs from the same places.

    python scripts/uv_index_args.py        # arguments, one a line
    python scripts/uv_index_args.py env    # NAME=value lines for uv's environment

Run by scripts/setup.sh with the venv's pip; any failure here makes the set-up install with pip instead."""

from __future__ import annotations

import sys

from pip._internal.commands import create_command


def uv_arguments(options) -> list[str]:
    args = []
    if options.no_index:
        args.append("--no-index")
    else:
        args += ["--index-url", options.index_url]
        for url in options.extra_index_urls:
            args += ["--extra-index-url", url]
    for link in options.find_links:
        args += ["--find-links", link]
    for path in options.constraints:
        # a constraint in pip's configuration reaches the builds' own pip too (it reads the same files)
        args += ["--constraint", path, "--build-constraints", path]
    for host in options.trusted_hosts:
        args += ["--allow-insecure-host", host]
    if not options.cert:  # pip reads the system's certificates (truststore); uv its own bundle unless told
        args.append("--system-certs")
    return args


def uv_environment(options) -> list[str]:
    values = [f"UV_HTTP_TIMEOUT={int(options.timeout)}"]
    if options.cert:
        values.append(f"SSL_CERT_FILE={options.cert}")
    return values


def main(argv: list[str]) -> None:
    options, _ = create_command("install").parse_args([])
    print("\n".join(uv_environment(options) if argv == ["env"] else uv_arguments(options)))


if __name__ == "__main__":
    main(sys.argv[1:])
