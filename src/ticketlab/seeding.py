"""Seeds: every random draw of a trial comes from its own seed, derived from what defines it.

A trial's seed depends on (base seed, cell, trial index) only, never on batch position, worker
or order, so batched, one-at-a-time, resumed and distributed runs give identical numbers.
"""

from __future__ import annotations

import numpy as np

# Independent streams of one trial seed, one per use (one table so that no two uses collide).
DATA, START, TEST, PRUNE = 0, 1, 2, 3
ORDER, AUGMENT = 11, 12  # deep training: data order, augmentation
LANDSCAPE = 40  # random directions around W* (landscape)
MOMENTS = 41  # random vectors and restarts of the moment-based starts


def substream(seed: int, stream: int) -> int:
    """A 63-bit sub-seed for one use of a trial's seed."""
    return int(np.random.SeedSequence([int(seed), int(stream)]).generate_state(1, np.uint64)[0] >> 1)


def trial_seed(base_seed: int, cell_key: str, trial: int) -> int:
    """The seed of trial ``trial`` of the cell whose stable id is ``cell_key`` (hex)."""
    key = int(cell_key[:15], 16)
    return int(np.random.SeedSequence([int(base_seed), key, int(trial)]).generate_state(1, np.uint64)[0] >> 1)


# Deep streams, appended.
VALIDATION = 13  # deep data: the validation items held out of a training pool (seeded by the split seed)
REINIT_LEVEL = 1000  # deep reinit control: level L starts from substream(substream(seed, START), REINIT_LEVEL + L)
