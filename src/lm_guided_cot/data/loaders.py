"""Training batches that a mid-epoch resume continues from, instead of replaying the epoch."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
from torch.utils.data import DataLoader, RandomSampler


class EpochSeededRandomSampler(RandomSampler):
    """A shuffle that depends only on (seed, epoch), so a resumed run replays the same order.

    Lightning calls ``set_epoch`` at every epoch start; under DDP it swaps in a
    ``DistributedSampler`` instead (shuffled, seeded by ``seed_everything``).
    """

    def __init__(self, data_source, seed: int) -> None:
        super().__init__(data_source, generator=torch.Generator())
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self):
        self.generator.manual_seed(self.seed + self.epoch)
        yield from super().__iter__()


class EpochPosition:
    """How many batches of the current epoch the training loader has handed out, and how many
    a restored run must pass over before its next batch."""

    def __init__(self) -> None:
        self.yielded = 0
        self.to_skip = 0

    def state_dict(self) -> dict[str, int]:
        return {"batches_yielded": self.yielded}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        # Setting, not adding: Lightning restores the loader's state and the data module's, and
        # either may come first or alone (it drops loader states when configure_optimizers asked
        # for trainer.estimated_stepping_batches before the restore, Lightning issue #20550).
        self.to_skip = int(state.get("batches_yielded", 0))


class ResumableDataLoader(DataLoader):
    """A ``DataLoader`` whose place in the epoch is saved in checkpoints.

    Lightning saves ``state_dict`` of a training loader that has one; a run resumed from a
    checkpoint taken mid-epoch then gets the epoch's next batch. The skip is applied at the
    iterator's first batch, not when it is made: Lightning makes the iterator before it sets the
    sampler's epoch and, in some set-ups, before it restores states. Without this a resumed run
    trains on the epoch's first batches again (Lightning only warns that the loader "is not
    resumable").
    """

    def __init__(self, *args, position: EpochPosition | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.position = position if position is not None else EpochPosition()

    def __iter__(self) -> Iterator:
        return self._batches(super().__iter__())

    def _batches(self, batches: Iterator) -> Iterator:
        skip, self.position.to_skip = self.position.to_skip, 0
        if skip >= len(self):  # the checkpoint ended its epoch: this one starts afresh
            skip = 0
        for _ in range(skip):
            next(batches)
        self.position.yielded = skip
        for batch in batches:
            self.position.yielded += 1
            yield batch

    def state_dict(self) -> dict[str, int]:
        return self.position.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.position.load_state_dict(state)
