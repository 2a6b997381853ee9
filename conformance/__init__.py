"""autograd-conformance: a pytest conformance suite for PyTorch's autograd semantics."""

__version__ = "0.1.0"
