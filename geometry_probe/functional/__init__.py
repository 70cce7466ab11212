"""Pure metric kernels: one module per metric family; analyzers call these."""

from geometry_probe.functional.spectrum import (
    alpha_req,
    collapsed_dims,
    effective_rank,
    numerical_rank,
    participation_ratio,
    rankme,
    stable_rank,
    top1_energy,
)

__all__ = ["alpha_req", "collapsed_dims", "effective_rank", "numerical_rank",
           "participation_ratio", "rankme", "stable_rank", "top1_energy"]
