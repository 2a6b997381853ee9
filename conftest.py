"""Repository root: load the conformance plugin (and pytester for the suite's own tests)."""

pytest_plugins = ["conformance.plugin", "pytester"]
