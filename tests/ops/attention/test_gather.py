"""gather_rows: forward equals indexing, backward equals autograd's accumulating index backward."""
import torch

from mmhrsam.ops.attention.gather import gather_rows


def reference_grads(x, index, grad, overwrite=None):
    x = x.detach().requires_grad_()
    y = x[:, index]
    if overwrite is not None:
        y = y.clone()
        y[:, overwrite] = 0.0  # the caller overwrites these rows: no gradient from them
    y.backward(grad)
    return x.grad


def test_permutation():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(2, 10, 3, 4, generator=gen, requires_grad=True)
    index = torch.randperm(10, generator=gen)
    grad = torch.randn(2, 10, 3, 4, generator=gen)
    y = gather_rows(x, index, torch.argsort(index))
    assert torch.equal(y, x[:, index])
    y.backward(grad)
    assert torch.equal(x.grad, reference_grads(x, index, grad))


def test_pad_slots_and_rows_never_taken():
    """Slots 2 and 5 are pad slots pointing at row 0 and overwritten; row 6 is taken by no slot."""
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(2, 7, 5, generator=gen, requires_grad=True)
    index = torch.tensor([3, 0, 0, 1, 2, 0, 4, 5])
    pad = torch.tensor([2, 5])
    inverse = torch.tensor([1, 3, 4, 0, 6, 7, 8])  # row i -> its real slot; 8 = len(index): none
    grad = torch.randn(2, 8, 5, generator=gen)
    y = gather_rows(x, index, inverse).clone()
    y[:, pad] = 0.0
    y.backward(grad)
    assert torch.equal(x.grad, reference_grads(x, index, grad, overwrite=pad))
    assert torch.equal(x.grad[:, 6], torch.zeros(2, 5))


def test_no_grad_is_plain_indexing():
    x = torch.randn(1, 4, 2)
    index = torch.tensor([2, 0, 3, 1])
    assert torch.equal(gather_rows(x, index, torch.argsort(index)), x[:, index])
