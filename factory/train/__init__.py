"""Super-network training, AEP, distillation, BatchNorm recalibration and evaluation."""
