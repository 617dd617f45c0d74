"""Past one process: replicas on Ray Serve (``ray_serve``) and batch jobs on Ray Data (``ray_data``).

Ray is optional: nothing here is imported by ``import QEfficient`` or by the single-process server,
and the modules that need it say how to install it.
"""

from __future__ import annotations

INSTALL_HINT = 'Ray is not installed: pip install "QEfficient[ray]" (it brings ray[serve,data]).'


def require_ray():
    """The ``ray`` module, or an ImportError that says how to install it."""
    try:
        import ray
        import ray.data  # noqa: F401
        import ray.serve  # noqa: F401
    except ImportError as err:
        raise ImportError(INSTALL_HINT) from err
    return ray
