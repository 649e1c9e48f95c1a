"""The train stage: train the super-network (`factory train`), or take a `--supernet` and transfer it to this
data (`transfer`). The training machinery itself (trainer, losses, evaluation) is the shared layer
`factory.training`, which the search's adaptation and the fine-tuning use too."""
