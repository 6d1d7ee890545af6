"""Baselines the results tables compare against."""
