"""Fuzzers of the parsers that read untrusted input (SEC-6); see ``fuzz.targets``."""

import os

# atheris instruments Python bytecode: fuzz the proxy's Python modules, not their compiled build
os.environ.setdefault("ISTHMUS_PROXY_COMPILED", "0")
