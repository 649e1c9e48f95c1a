"""Post-processing of the search's picks: choosing them under the budget, and two-step fine-tuning."""
