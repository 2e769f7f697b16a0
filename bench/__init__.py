"""``make bench``: the pipeline's throughput, latency and memory on this machine (see docs/benchmarks.md)."""
