"""NAT2's search: accuracy predictors, their metrics, and (elsewhere in this package) the evolutionary loop."""
