"""Benchmarks of mliap_torch models on public data sets (see ``docs/mlearn_benchmark.md``)."""
