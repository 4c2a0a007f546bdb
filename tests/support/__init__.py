"""Helpers shared by the test suite (servers, connections)."""
