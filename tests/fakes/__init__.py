"""Honest fakes: they record what happened for the tests to assert on."""
