"""Multi-layer networks on real data and on a deep pruned oracle: models, loaders, masked training, IMP.

Knows nothing of the one-hidden-layer engine; shares the pruning criteria of ``ticketlab.pruning``.
"""

__all__ = []
