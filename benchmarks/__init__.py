"""Benchmarks of the pipeline (`make bench`): run from the repository, not part of the installed package."""
