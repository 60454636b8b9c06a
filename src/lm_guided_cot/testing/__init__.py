"""Test doubles shipped with the package: tests, benchmarks and users' own checks use them."""
