"""Training wall time that survives resuming from a checkpoint."""

from __future__ import annotations

import time
from typing import Any

import pytorch_lightning as pl


class ElapsedTime(pl.Callback):
    """Counts the seconds spent in ``fit`` and stores them in every checkpoint.

    A run resumed from a checkpoint starts from the stored count, so :attr:`seconds` is the
    wall time of the whole run however often it was interrupted (time lost between the
    last checkpoint and an interruption is not counted).
    """

    def __init__(self) -> None:
        self._before = 0.0  # seconds of earlier, checkpointed parts of the run
        self._start: float | None = None

    @property
    def seconds(self) -> float:
        """Wall seconds of the run so far."""
        running = 0.0 if self._start is None else time.perf_counter() - self._start
        return self._before + running

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._start = time.perf_counter()

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._before, self._start = self.seconds, None

    def state_dict(self) -> dict[str, Any]:
        return {"seconds": self.seconds}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._before = float(state_dict.get("seconds", 0.0))
        if self._start is not None:
            self._start = time.perf_counter()
