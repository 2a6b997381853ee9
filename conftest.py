"""Repository root: load the conformance plugin (and pytester for the suite's own tests).

Naming the plugin here also makes every session in this checkout a conformance run
(``conformance/plugin/activation.py``), the suite's own tests under ``tests/`` included;
where the package is installed its ``pytest11`` entry point has loaded it already and
this names the same plugin (never registered twice).
"""

pytest_plugins = ["conformance.plugin", "pytester"]
