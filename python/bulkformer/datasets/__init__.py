"""Data sets: the cohort simulator and tiny bundles for tests and examples."""
from .simulate import CohortDesign, SimulatedCohort, simulate_cohort
from .tiny import tiny_bundle

__all__ = ["CohortDesign", "SimulatedCohort", "simulate_cohort", "tiny_bundle"]
