"""Past one process: replicas on Ray Serve (``ray_serve``) and batch jobs on Ray Data (``ray_data``),
with the compiled artifact shipped through Ray's object store to nodes that share no disk (``shipping``).

Ray is optional: nothing here is imported by ``import QEfficient`` or by the single-process server,
and the modules that need it say how to install it.
"""

from __future__ import annotations

from QEfficient.utils.extras import require_extra


def require_ray(feature: str = "Ray Serve / Ray Data"):
    """The ``ray`` module (with Serve and Data), or a MissingExtraError naming ``pip install "QEfficient[ray]"``."""
    require_extra("ray", feature)
    import ray

    return ray
