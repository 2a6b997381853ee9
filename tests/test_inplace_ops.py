"""The in-place form table (conformance/testlib/inplace_ops.py): each form writes in place and matches its out-of-place equivalent."""

from __future__ import annotations

import pytest
import torch

from conformance.testlib.inplace_ops import DETERMINISTIC_FORMS, INPLACE_FORMS, OUT_FORMS

EVERY_FORM = {**INPLACE_FORMS, **OUT_FORMS}

SHAPES = [(), (0,), (3,), (2, 3), (2, 0, 2)]


def _sample(shape):
    return torch.linspace(-2, 2, int(torch.Size(shape).numel()), dtype=torch.float64).reshape(shape)


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("source", sorted(EVERY_FORM))
def test_form_writes_into_the_tensor_on_any_shape(source, shape):
    t = _sample(shape)
    storage, version = t.data_ptr(), t._version
    returned = EVERY_FORM[source].apply(t)
    assert returned is None or returned is t
    assert t.shape == shape and t.data_ptr() == storage
    assert t._version > version


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("source", sorted({**DETERMINISTIC_FORMS, **OUT_FORMS}))
def test_equivalent_computes_what_the_form_writes(source, shape):
    form = {**DETERMINISTIC_FORMS, **OUT_FORMS}[source]
    t = _sample(shape)
    expected = form.equivalent(t.clone())
    form.apply(t)
    torch.testing.assert_close(t, expected, rtol=0, atol=0)


@pytest.mark.parametrize("source", sorted(DETERMINISTIC_FORMS))
def test_equivalent_is_differentiable_out_of_place(source):
    x = _sample((3,)).requires_grad_()
    result = DETERMINISTIC_FORMS[source].equivalent(x)
    assert result is not x and result.requires_grad and x._version == 0


def test_every_form_names_the_tensor_t():
    assert all("t" in source.replace("torch", "").replace("nn.", "") for source in EVERY_FORM)
    assert set(DETERMINISTIC_FORMS) < set(INPLACE_FORMS)
    assert not set(OUT_FORMS) & set(INPLACE_FORMS)


@pytest.mark.parametrize("source", sorted(OUT_FORMS))
def test_out_form_is_refused_in_grad_mode_on_a_tensor_requiring_grad(source):
    t = _sample((3,)).requires_grad_() * 1
    with pytest.raises(RuntimeError, match="out="):
        OUT_FORMS[source].apply(t)
