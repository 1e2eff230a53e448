"""Training sampler whose draws depend only on (seed, epoch): a resumed epoch draws what the uninterrupted one would.

Torch's ``RandomSampler`` and the loader's worker seeds come from the global RNG, whose state a restart loses;
here each epoch's order and each item's augmentation seed are a pure function of ``(seed, epoch)``, whatever
the number of workers or processes. Lightning calls ``set_epoch`` at the start of every training epoch.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from torch.utils.data import Sampler


class EpochSampler(Sampler[tuple[int, int]]):
    """Yields ``(index, entropy)`` keys: a dataset index and a seed for that item's random choices.

    Args:
        size: number of items in the dataset.
        seed: the run's seed.
        num_samples: items drawn with replacement per epoch; None: a permutation of every item.
        num_replicas: DDP processes sharing the epoch (each gets every ``num_replicas``-th key).
        rank: this process's rank.
    """

    def __init__(self, size: int, seed: int, num_samples: int | None = None, num_replicas: int = 1, rank: int = 0) -> None:
        self.size, self.seed, self.num_samples = size, int(seed), num_samples
        self.num_replicas, self.rank = num_replicas, rank
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Called by Lightning at the start of each training epoch."""
        self.epoch = epoch

    def _keys(self) -> tuple[np.ndarray, np.ndarray]:
        rng = np.random.default_rng([self.seed, self.epoch])
        order = (rng.integers(0, self.size, self.num_samples) if self.num_samples else rng.permutation(self.size))
        entropy = rng.integers(0, 2**32, order.size)
        total = -(-order.size // self.num_replicas) * self.num_replicas  # pad so every process gets as many
        pick = np.resize(np.arange(order.size), total)[self.rank::self.num_replicas]
        return order[pick], entropy[pick]

    def __iter__(self) -> Iterator[tuple[int, int]]:
        order, entropy = self._keys()
        return iter(zip(order.tolist(), entropy.tolist()))

    def __len__(self) -> int:
        n = self.num_samples or self.size
        return int(-(-n // self.num_replicas))
