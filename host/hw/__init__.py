"""Hardware models: analytic costs computed without training."""

from host.hw.costs import Costs, analytic_costs, layer_costs

__all__ = ["Costs", "analytic_costs", "layer_costs"]
