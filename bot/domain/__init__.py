"""The rules: pure Python, no adapters."""
