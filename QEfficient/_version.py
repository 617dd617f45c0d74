"""The package version, in one place: setuptools reads it statically (pyproject.toml, ``attr``) and
``QEfficient.__version__`` imports it, so a source checkout, an editable install and a wheel agree."""

__version__ = "0.1.0"
