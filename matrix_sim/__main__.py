import sys

from matrix_sim.cli import main

if __name__ == "__main__":      # import-safe: the sampler process is spawned (stream/sampler_process.py)
    sys.exit(main())
