import sys

from matrix_sim.cli import main

sys.exit(main())
