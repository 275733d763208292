import sys

from matrix_sim.cli import main

if __name__ == "__main__":      # import-safe: multiprocessing starts the sampler process (stream/sampler_process.py)
    sys.exit(main())
