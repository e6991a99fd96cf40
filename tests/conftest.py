"""Fixtures shared by every test module: loopback simulators, started and stopped per test."""
