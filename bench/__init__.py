"""Benchmarks that check our numbers against the references in EVALUATION.md."""
