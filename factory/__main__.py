"""`python -m factory` (and `torchrun -m factory`) runs the command line."""

from factory.cli import main

main()
