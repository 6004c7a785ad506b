"""Seeds: every random draw of a trial comes from its own seed, derived from what defines it.

A trial's seed depends on (base seed, cell, trial index) only, never on batch position, worker
or order, so batched, one-at-a-time, resumed and distributed runs give identical numbers.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "RANDOM_START", "LANDSCAPE", "DENSE_START_DISTANCE", "MOMENTS", "substream", "trial_seed", "VALIDATION",
    "REINIT_LEVEL", "reinit_seed", "random_mask_seed",
]

# Independent streams of one trial seed, one per use: the one table of every stream number.
# A number may serve two uses only where no seed ever reaches both: oracle trials and deep IMP runs
# never share a seed, nor do trials of different experiments (their seeds derive from the experiment
# name, see experiments.base.Cell.seed_key). Numbers are kept as they were so results do not change.
DATA, START, TEST, PRUNE = 0, 1, 2, 3
RANDOM_START = START + 10  #: the uniform random start on the mask (init.starts.random_start)
ORDER, AUGMENT = 11, 12  # deep training: data order, augmentation (deep runs only; RANDOM_START is oracle-only)
LANDSCAPE = 40  #: random directions around W* (landscape experiment only)
DENSE_START_DISTANCE = 40  #: each trial's dense-start distance lambda (Figures 7-10 only, never with LANDSCAPE)
MOMENTS = 41  #: random vectors and restarts of the moment-based starts


def substream(seed: int, stream: int) -> int:
    """A 63-bit sub-seed for one use of a trial's seed."""
    return int(np.random.SeedSequence([int(seed), int(stream)]).generate_state(1, np.uint64)[0] >> 1)


def trial_seed(base_seed: int, cell_key: str, trial: int) -> int:
    """The seed of trial ``trial`` of the cell whose stable id is ``cell_key`` (hex)."""
    key = int(cell_key[:15], 16)
    return int(np.random.SeedSequence([int(base_seed), key, int(trial)]).generate_state(1, np.uint64)[0] >> 1)


# Deep streams, appended.
VALIDATION = 13  #: deep data: the validation items held out of a training pool (seeded by the split seed)
ORACLE_TRAIN, ORACLE_TEST = 100, 102  # deep oracle: inputs and noise of its training pool and test set
REINIT_LEVEL = 1000  #: deep reinit control: offset of the level inside the init stream (see reinit_seed)


def reinit_seed(seed: int, level: int) -> int:
    """The fresh init of the deep reinit control at ``level`` (a stream of its own inside the run's init
    stream, so it never equals theta_0's seed)."""
    return substream(substream(seed, START), REINIT_LEVEL + level)


def random_mask_seed(seed: int, level: int) -> int:
    """The scores of the deep random-mask control at ``level``, inside the run's PRUNE stream."""
    return substream(substream(seed, PRUNE), level)
