"""Packaging: the version in one place, ranges in pyproject.toml and exact pins in constraints.txt that
agree, and a feature whose optional package is missing naming the extra that installs it. (CI also
builds the wheel and smoke-tests it in a clean venv: .ci/run.)"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import tomllib
from importlib.metadata import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

from QEfficient._version import __version__
from QEfficient.utils.extras import DISTRIBUTIONS, EXTRAS

ROOT = Path(__file__).resolve().parents[1]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def pins() -> dict[str, str]:
    lines = (ROOT / "constraints.txt").read_text().splitlines()
    return {canonicalize_name(n): v for n, v in (line.split("==") for line in lines if line and not line.startswith("#"))}


def requirements(extra: str | None = None) -> list[Requirement]:
    listed = PROJECT["dependencies"] if extra is None else PROJECT["optional-dependencies"][extra]
    return [Requirement(r) for r in listed]


def test_version_is_single_sourced_and_printed():
    import QEfficient

    assert QEfficient.__version__ == __version__
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert pyproject["project"]["dynamic"] == ["version"] and "version" not in pyproject["project"]
    assert pyproject["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "QEfficient._version.__version__"}
    out = subprocess.run([sys.executable, "-m", "QEfficient", "--version"], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.startswith(f"QEfficient {__version__} (transformers ")


def test_dependencies_are_ranges_and_the_pins_fall_inside_them():
    pinned = pins()
    for extra in [None, *PROJECT["optional-dependencies"]]:
        for req in requirements(extra):
            if req.name == "QEfficient":  # an extra made of other extras
                continue
            assert not any(s.operator in ("==", "===") for s in req.specifier), f"{req}: a range, not a pin"
            version = pinned.get(canonicalize_name(req.name))
            if extra in (None, "test", "serve", "gguf", "vision", "segmentation", "dynamo"):  # what setup.sh installs
                assert version is not None, f"{req.name} is installed by setup.sh but not pinned in constraints.txt"
            if version is not None:
                assert req.specifier.contains(version, prereleases=True), f"constraints.txt pins {req.name}=={version} outside {req}"


def test_every_python_pip_accepts_can_install_the_core_dependencies():
    """The lowest Python that requires-python admits must be one every core dependency supports, at the version CI
    pins (for transformers, its lower bound): transformers 5.21 and later need 3.11, and under a 3.10 floor pip
    on 3.10 failed on transformers instead of naming the Python to use."""
    floor = SpecifierSet(PROJECT["requires-python"])
    lowest = next(f"3.{minor}.0" for minor in range(8, 20) if floor.contains(f"3.{minor}.0"))
    for req in requirements(None):
        needs = metadata(req.name).get("Requires-Python")
        admitted = f"requires-python {PROJECT['requires-python']} admits {lowest}"
        assert needs is None or SpecifierSet(needs).contains(lowest), f"{req.name} needs Python {needs}; {admitted}"


def test_the_extras_table_matches_pyproject():
    declared = PROJECT["optional-dependencies"]
    for extra, modules in EXTRAS.items():
        names = {canonicalize_name(r.name) for r in requirements(extra)}
        assert names == {canonicalize_name(DISTRIBUTIONS.get(m, m)) for m in modules}, extra
    assert set(EXTRAS) <= set(declared)
    light = {canonicalize_name(r.name) for r in requirements()}
    assert not light & {"fastapi", "uvicorn", "gguf", "pillow", "onnxscript", "matplotlib", "accelerate", "ray"}


# Run in a child process whose imports of the optional packages fail, as when they are not installed.
MISSING_EXTRAS = textwrap.dedent(
    """
    import contextlib, io, sys
    from pathlib import Path
    for name in ("fastapi", "uvicorn", "gguf", "PIL", "onnxscript"):
        sys.modules[name] = None  # import raises ModuleNotFoundError, as for a package that is absent
    from QEfficient import QEFFAutoModelForCausalLM

    def message(call):
        err = io.StringIO()
        try:
            with contextlib.redirect_stderr(err):
                call()
        except SystemExit as exit:
            assert exit.code == 2, exit.code
            return err.getvalue().strip().splitlines()[-1]
        except ModuleNotFoundError as error:
            return str(error)
        raise AssertionError("no error")

    folder, image = Path(sys.argv[1]), sys.argv[2]
    (folder / "model.gguf").write_bytes(b"")
    from QEfficient.cloud import infer, serve
    print(message(lambda: __import__("QEfficient.serving.app")))
    print(message(lambda: serve.main([])))
    print(message(lambda: QEFFAutoModelForCausalLM.from_pretrained(folder, gguf_file="model.gguf")))
    print(message(lambda: infer.load_image(image)))  # what infer's --image_path / --image_url read with
    print(message(lambda: QEFFAutoModelForCausalLM.from_pretrained(folder).export(dynamo=True)))
    """
)


def test_a_missing_extra_names_the_install_command(tiny_model_dir, tmp_path):
    folder = tiny_model_dir("llama")
    env = {**os.environ, "QEFF_HOME": str(tmp_path / "home")}
    res = subprocess.run(
        [sys.executable, "-c", MISSING_EXTRAS, str(folder), str(tmp_path / "cat.png")],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    lines = res.stdout.strip().splitlines()[-5:]
    expected = [
        ("QEfficient.serving", "fastapi", "serve"),
        ("python -m QEfficient.cloud.serve", "fastapi", "serve"),
        ("Loading a GGUF checkpoint", "gguf", "gguf"),
        ("--image_path", "pillow", "vision"),
        ("export(dynamo=True)", "onnxscript", "dynamo"),
    ]
    for line, (feature, package, extra) in zip(lines, expected, strict=True):
        assert feature in line and f"'{package}', which is not installed" in line and f'pip install "QEfficient[{extra}]"' in line, line
    assert not list((tmp_path / "home").rglob("*.onnx")), "a failed export left a graph in the cache"


def test_run_time_stages_import_without_torch():
    """runtime/, generation/ and the HTTP app need no torch: the package's public names load lazily."""
    modules = "QEfficient, QEfficient.runtime.ort_session, QEfficient.generation.exec_kv, QEfficient.generation.continuous_batching"
    heavy = "('torch', 'transformers.modeling_utils')"
    code = f"import sys, {modules}, QEfficient.serving.app; print(sorted(n for n in {heavy} if n in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT).stdout.strip()
    assert out == "[]", out
    from QEfficient import QEFFAutoModelForCausalLM  # the lazy names still import as before

    assert QEFFAutoModelForCausalLM.__name__ == "QEFFAutoModelForCausalLM"
