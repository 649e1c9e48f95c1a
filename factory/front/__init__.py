"""Shared: Pareto fronts and spread selection over objective rows (the search and the picks use both)."""
