"""How far a render is and how long it has left: elapsed time and an estimate from the denoising steps done so far.

A render's share done counts each frame to render as one: a frame written is 1, a frame in the middle of its
denoising is the share of its steps done (a batch's frames move together; a stream's each at its own step). The rate
is measured from the first step report on, so model loading, prompt encoding and the first step's warm-up (CUDA
kernels, caches) don't count against the frames still to do. No estimate before a second report: one point is no
rate.
"""

from __future__ import annotations

import threading
import time
from typing import Callable, Iterable


class Pace:
    """Elapsed time and time left of one render (thread-safe: frame events may come from the writer thread)."""

    def __init__(self, todo: Iterable[int], clock: Callable[[], float] = time.monotonic):
        self._clock = clock
        self.started = clock()
        self._todo = set(todo)
        self._partial: dict[int, float] = {}  # frame -> share of its steps done, until it is written
        self._written = 0
        self._first: tuple[float, float] | None = None  # (time, share done) at the first step report
        self._lock = threading.Lock()

    def step(self, frames: Iterable[int], step: int, steps: int) -> None:
        """A step report of these frames (those not to render, like a clip's current frames, don't count)."""
        share = min(1.0, step / steps) if steps > 0 else 1.0
        with self._lock:
            for f in frames:
                if f in self._todo:
                    self._partial[f] = max(share, self._partial.get(f, 0.0))
            if self._first is None:
                self._first = (self._clock(), self._share())

    def frame(self, frame: int) -> None:
        """A frame is written."""
        with self._lock:
            if frame in self._todo:
                self._todo.discard(frame)
                self._partial.pop(frame, None)
                self._written += 1

    def _share(self) -> float:
        total = self._written + len(self._todo)
        return (self._written + sum(self._partial.values())) / total if total else 1.0

    def share(self) -> float:
        with self._lock:
            return self._share()

    def elapsed(self) -> float:
        """Seconds since the render started."""
        return max(0.0, self._clock() - self.started)

    def eta(self) -> float | None:
        """Seconds left at the rate since the first step report; None until there is a rate."""
        with self._lock:
            if self._first is None:
                return None
            now, share = self._clock(), self._share()
            since, first = now - self._first[0], self._first[1]
            if share >= 1.0:
                return 0.0
            if share <= first or since <= 0:
                return None
            return since * (1.0 - share) / (share - first)

    def timing(self) -> dict:
        """The keys progress and frame events carry: elapsed and eta (None: not known yet)."""
        eta = self.eta()
        return {"elapsed": round(self.elapsed(), 2), "eta": None if eta is None else round(eta, 1)}
