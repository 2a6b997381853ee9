"""Timing benchmarks (pytest-benchmark) of the behaviours with a cost claim.

Not part of the default conformance run; run them with
``python -m pytest conformance/benchmarks`` (see the README, "Benchmarks").
"""
