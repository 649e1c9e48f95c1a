"""Training machinery shared by the stages: the super-network trainer, AEP, distillation, BatchNorm recalibration,
evaluation, checkpoints, devices and precision."""
