"""Benchmarks of stopcampaign (not pytest tests): run them with ``python -m tests.benchmarks``."""
