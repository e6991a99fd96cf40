"""Loopback simulators of the oVirt Engine API and the Kubernetes API (tests, benchmarks, demo)."""
