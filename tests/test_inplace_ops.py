"""The in-place form table (conformance/inplace_ops.py): each form writes in place and matches its out-of-place equivalent."""

from __future__ import annotations

import pytest
import torch

from conformance.inplace_ops import DETERMINISTIC_FORMS, INPLACE_FORMS

SHAPES = [(), (0,), (3,), (2, 3), (2, 0, 2)]


def _sample(shape):
    return torch.linspace(-2, 2, int(torch.Size(shape).numel()), dtype=torch.float64).reshape(shape)


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("source", sorted(INPLACE_FORMS))
def test_form_writes_into_the_tensor_on_any_shape(source, shape):
    t = _sample(shape)
    storage, version = t.data_ptr(), t._version
    returned = INPLACE_FORMS[source].apply(t)
    assert returned is None or returned is t
    assert t.shape == shape and t.data_ptr() == storage
    assert t._version > version


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("source", sorted(DETERMINISTIC_FORMS))
def test_equivalent_computes_what_the_form_writes(source, shape):
    t = _sample(shape)
    expected = DETERMINISTIC_FORMS[source].equivalent(t.clone())
    DETERMINISTIC_FORMS[source].apply(t)
    torch.testing.assert_close(t, expected, rtol=0, atol=0)


@pytest.mark.parametrize("source", sorted(DETERMINISTIC_FORMS))
def test_equivalent_is_differentiable_out_of_place(source):
    x = _sample((3,)).requires_grad_()
    result = DETERMINISTIC_FORMS[source].equivalent(x)
    assert result is not x and result.requires_grad and x._version == 0


def test_every_form_names_the_tensor_t():
    assert all("t" in source.replace("torch", "").replace("nn.", "") for source in INPLACE_FORMS)
    assert set(DETERMINISTIC_FORMS) < set(INPLACE_FORMS)
