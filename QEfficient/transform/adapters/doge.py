"""Doge's dynamic mask attention: once the keys outnumber ``keep_window_size``, each query keeps only that many of them
(the strongest by their learnt ``dt`` bias). The static cache's empty slots take part in that choice here, so a
``ctx_len`` past the window is refused; below it no key is dropped and the graph is exact."""

from __future__ import annotations

from dataclasses import dataclass

from QEfficient.transform.adapters.base import ArchAdapter


@dataclass(frozen=True)
class DogeAdapter(ArchAdapter):
    def context_limit(self, config) -> tuple[int, str] | None:
        window = getattr(config, "keep_window_size", None)
        if isinstance(window, int) and window > 0:
            return window, "Doge's dynamic mask (each query keeps its keep_window_size strongest keys) is not reproduced past it yet"
        return None
