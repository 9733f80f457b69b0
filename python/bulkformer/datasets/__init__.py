"""Data sets: the cohort simulator and tiny bundles for tests and examples."""
from .simulate import SimulatedCohort, simulate_cohort
from .tiny import correlation_graph, tiny_bundle

__all__ = ["SimulatedCohort", "correlation_graph", "simulate_cohort", "tiny_bundle"]
