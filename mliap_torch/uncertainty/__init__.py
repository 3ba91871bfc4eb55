"""Uncertainty of potentials: MaxVol active sets and the extrapolation grade γ (docs/uncertainty.md)."""
