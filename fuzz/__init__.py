"""Fuzzers of the parsers that read untrusted input (SEC-6); see ``fuzz.targets``."""
