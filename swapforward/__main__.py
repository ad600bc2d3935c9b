"""`python -m swapforward ...` (and `accelerate launch -m swapforward batch ...`) run the command line."""

from .frontends.cli import main

main()
