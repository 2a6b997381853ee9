"""Hypothesis profiles: ``default`` (fast, random), ``ci`` (fast, derandomized), ``thorough``.

Selected with hypothesis' own ``--hypothesis-profile NAME``, or the environment
variable ``CONFORMANCE_PROFILE``; without either, ``ci`` when the ``CI``
environment variable is set, else ``default``.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

__all__ = ["ENV_VAR", "PROFILES", "register_profiles", "selected_profile"]

ENV_VAR = "CONFORMANCE_PROFILE"

_common = dict(
    deadline=None,  # first calls into torch kernels are slow; timing is the benchmarks' job
    print_blob=True,  # failures print a @reproduce_failure blob
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

PROFILES = {
    "default": dict(max_examples=25, **_common),
    "ci": dict(max_examples=25, derandomize=True, database=None, **_common),
    "thorough": dict(max_examples=500, **_common),
}


#: the most examples a property test draws in a compiled mode: each example is a new program, compiled anew
#: (60 ms to 0.4 s a frame with aot_eager on a 2-core CPU, seconds with inductor), so compiled runs draw fewer
#: programs: hypothesis' simplest example and one random one (``thorough``: 50).  With 2 instead of 3 every
#: clause has the same outcome in both compiled modes on torch 2.13 (no expectation went stale) and the
#: compiled runs take a fifth less time (issue 14)
COMPILED_MAX_EXAMPLES = {"default": 2, "ci": 2, "thorough": 50}
#: inductor generates and builds C++ for every new program (seconds each on a CPU; its FX graph cache keeps
#: them across runs): it draws fewer still
INDUCTOR_MAX_EXAMPLES = {"default": 2, "ci": 2, "thorough": 20}


def compiled_max_examples(profile: str, backend: str | None) -> int:
    table = INDUCTOR_MAX_EXAMPLES if backend == "inductor" else COMPILED_MAX_EXAMPLES
    return table.get(profile, table["default"])


def register_profiles() -> None:
    for name, values in PROFILES.items():
        settings.register_profile(name, **values)


def selected_profile(environ: dict[str, str] | None = None) -> str:
    environ = os.environ if environ is None else environ
    if environ.get(ENV_VAR):
        return environ[ENV_VAR]
    ci = environ.get("CI", "").strip().lower()
    return "ci" if ci not in ("", "0", "false", "no") else "default"
