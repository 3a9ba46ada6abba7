"""Benchmarks: cvm-migrate against rsync on the same data, same run (see bench/README.md)."""
