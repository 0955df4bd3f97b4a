"""Benchmarks for batchtag; `python -m benchmarks [throughput|rate|adaptive|validate]`."""
