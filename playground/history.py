"""A training run's loss history: appended by the trainer's thread, read by anyone."""

from __future__ import annotations

import csv
import io
import json
import threading
from dataclasses import asdict, dataclass, fields

import numpy as np


@dataclass(frozen=True)
class Record:
    """One point on the loss curves: training (a few steps' mean) or validation (an epoch's end)."""

    split: str  # "train" or "val"
    epoch: int  # 1-based epoch the point belongs to
    step: int  # optimizer steps done when it was taken
    loss: float
    reconstruction_loss: float
    kl_loss: float  # the KL term before the KL weight is applied
    kl_weight: float  # the weight in force (it ramps during a warm-up)
    steps_per_second: float
    seconds: float  # training time so far, pauses and compiling excluded


CSV_COLUMNS = [spec.name for spec in fields(Record)]


class History:
    """Thread-safe list of ``Record``s plus the latest KL per latent dimension."""

    def __init__(self, records: list[Record] | None = None):
        self._lock = threading.Lock()
        self._records: list[Record] = list(records or [])
        self._kl_per_dim: np.ndarray | None = None
        self.version = 0  # bumps on every change, so readers can skip redraws

    def append(self, record: Record, kl_per_dim: np.ndarray | None = None) -> None:
        with self._lock:
            self._records.append(record)
            if kl_per_dim is not None:
                self._kl_per_dim = np.asarray(kl_per_dim, dtype=np.float64)
            self.version += 1

    def clear(self) -> None:
        with self._lock:
            self._records.clear()
            self._kl_per_dim = None
            self.version += 1

    def records(self, split: str | None = None) -> list[Record]:
        with self._lock:
            return [r for r in self._records if split is None or r.split == split]

    def last(self, split: str) -> Record | None:
        """The newest record of ``split``, or None."""
        with self._lock:
            return next((r for r in reversed(self._records) if r.split == split), None)

    def columns(self, split: str) -> dict[str, np.ndarray]:
        """The records of one split as arrays, one per field (for plotting)."""
        rows = self.records(split)
        return {name: np.array([getattr(r, name) for r in rows]) for name in CSV_COLUMNS if name != "split"}

    @property
    def kl_per_dim(self) -> np.ndarray | None:
        with self._lock:
            return None if self._kl_per_dim is None else self._kl_per_dim.copy()

    def __len__(self) -> int:
        with self._lock:
            return len(self._records)

    def to_csv(self) -> str:
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, lineterminator="\n")
        writer.writeheader()
        for record in self.records():
            writer.writerow(asdict(record))
        return buffer.getvalue()

    def to_json(self) -> str:
        return json.dumps([asdict(record) for record in self.records()])

    @classmethod
    def from_json(cls, text: str) -> History:
        """A history from ``to_json`` output; a ValueError if the text is not one."""
        try:
            return cls([Record(**row) for row in json.loads(text)])
        except (TypeError, ValueError) as error:
            raise ValueError(f"This is not a saved loss history: {error}") from None
