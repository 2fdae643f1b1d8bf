"""Benchmarks of the diboas platform (`make bench`)."""
