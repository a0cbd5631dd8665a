"""scarce.scaling: scaling-law fits with honest uncertainty.

Power laws with an asymptote, the joint (size x ensemble) limit, data-constrained scaling,
data efficiency, Chinchilla approaches 1-3 and compute-optimal planning. Every fit takes plain
arrays and returns a `Fit` whose estimates carry percentile-bootstrap intervals. torch is imported
only when approach 3 runs.
"""

from scarce.scaling.chinchilla import (
    compute_optimal,
    fit_approach1,
    fit_approach2,
    fit_approach3,
    flops_for_loss,
    hoffmann_grid,
    optimal_loss,
)
from scarce.scaling.efficiency import empirical_efficiency, fit_efficiency, tokens_for_loss
from scarce.scaling.laws import (
    Estimate,
    Fit,
    FitWarning,
    effective_data,
    fit_data_constrained,
    fit_joint,
    fit_power_law,
    power_law,
)
from scarce.scaling.plan import PlanRow, format_plan, plan

__all__ = [
    "Estimate", "Fit", "FitWarning", "PlanRow",
    "compute_optimal", "effective_data", "empirical_efficiency", "fit_approach1", "fit_approach2",
    "fit_approach3", "fit_data_constrained", "fit_efficiency", "fit_joint", "fit_power_law",
    "flops_for_loss", "format_plan", "hoffmann_grid", "optimal_loss", "plan", "power_law", "tokens_for_loss",
]
