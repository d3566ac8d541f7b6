"""`python -m fashionstyle.cli ...` (torchrun and SLURM launches) runs the command line."""
import sys

from fashionstyle.cli.main import main

sys.exit(main())
