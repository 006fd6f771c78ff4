"""Benchmarks: each prints syncd's figures beside the reference path measured in the same run."""
