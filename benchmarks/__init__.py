"""Load benchmarks of the transfer controller's stack (`python -m benchmarks.run`, `make bench`)."""
