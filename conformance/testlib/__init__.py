"""What the conformance tests draw from and assert with.

``strategies`` (tensors, dtypes, shapes; the dtype catalogues), ``ops`` (the op
registry in every call form), ``graphs`` (random computation graphs),
``networks`` (small MLPs and conv nets, drawn and seeded), ``factories`` (tensor
creation forms), ``grad_modes`` (forms of entering a grad mode), ``forms``
(backward-pass and module-freezing forms), ``inplace_ops`` (in-place forms and
their out-of-place equivalents), ``saved_tensors`` (what autograd saves for
backward), ``assertions`` (clause-prefixed assertion helpers).
"""
