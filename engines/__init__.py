"""Where independent tasks run: a local process pool or a Ray cluster, one signature for
both. build-dataset (one task per film or image chunk) and colorize (one per input) use
it; it imports neither half of filmcolor."""

from engines.run import ENGINES, EngineError, run_tasks

__all__ = ["ENGINES", "EngineError", "run_tasks"]
