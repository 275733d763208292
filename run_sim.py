"""Play matrix-sim (`python run_sim.py --help`); the game itself lives in matrix_sim.client."""
import sys

from matrix_sim.client.app import main

if __name__ == "__main__":
    sys.exit(main())
