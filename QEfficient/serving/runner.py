"""The continuous-batching engine on a background thread, fed by a bounded queue.

Only the runner thread touches the engine. Requests come in through ``submit`` (any thread);
their ``on_token``/``on_done`` callbacks run on the runner thread, so the web layer hands them to
its event loop with ``call_soon_threadsafe``.
"""

from __future__ import annotations

import logging
import queue
import threading

from QEfficient.generation.continuous_batching import ContinuousBatchingEngine, Request

logger = logging.getLogger(__name__)


class NoRunner:
    """The runner of a server without an engine thread (speech, embeddings): nothing to stop."""

    alive = True  # what a Ray replica's health check reads

    def stop(self) -> None:
        pass


class QueueFullError(RuntimeError):
    pass


class EngineRunner:
    def __init__(self, engine: ContinuousBatchingEngine, max_queue: int = 64) -> None:
        self.engine = engine
        self.max_queue = max_queue
        self.inbox: queue.Queue[Request] = queue.Queue()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="qeff-engine", daemon=True)
        self.error: BaseException | None = None

    def start(self) -> EngineRunner:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    @property
    def pending(self) -> int:
        return self.inbox.qsize() + len(self.engine.waiting)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def submit(self, request: Request) -> None:
        """Queue a request; QueueFullError when ``max_queue`` requests already wait for a slot."""
        self.submit_all([request])

    def submit_all(self, requests: list[Request]) -> None:
        """Queue all of them or none: QueueFullError when they would take more than ``max_queue`` places.

        Called from one thread (the server's event loop), so the room checked is still there when
        they are queued: the engine only takes requests out.
        """
        if not self.alive:
            raise RuntimeError("The generation engine is not running.")
        if self.pending + len(requests) > self.max_queue:
            raise QueueFullError(f"{self.pending} requests are already waiting; try again later.")
        for request in requests:
            self.inbox.put(request)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self._turn()
            except Exception as err:  # a callback or the engine failed: fail what is in flight, keep serving
                logger.exception("engine step failed")
                self.error = err
                for slot in self.engine.busy_slots():
                    if self.engine.slots[slot] is None:  # freed with a beam search's other slots
                        continue
                    try:
                        self.engine._finish(slot, "error")
                    except Exception:
                        logger.exception("could not finish a failed request")

    def _turn(self) -> None:
        try:
            block = not self.engine.busy
            request = self.inbox.get(timeout=0.05) if block else self.inbox.get_nowait()
            self._admit(request)
            while True:
                self._admit(self.inbox.get_nowait())
        except queue.Empty:
            pass
        if self.engine.busy:
            self.engine.step()
            self.error = None

    def _admit(self, request: Request) -> None:
        try:
            self.engine.submit(request)
        except ValueError:
            request.finish_reason = "error"
            if request.on_done is not None:
                request.on_done(request)
