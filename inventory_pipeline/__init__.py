"""inventory_pipeline: retail inventory decisions as a Dagster pipeline (README.md)."""

from inventory_pipeline.core.allocator import tune_allocator

# every process that runs a stage imports the package first: code servers, run and step workers,
# the CLI, the twin's workers and the tests (core/allocator.py says why)
ALLOCATOR = tune_allocator()
