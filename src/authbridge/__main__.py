"""``python -m authbridge`` runs the command line."""

from authbridge.cli import main

main()
