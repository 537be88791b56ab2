"""The transformer block's feed-forward network."""
from torch import Tensor, nn


class Mlp(nn.Module):
    """fc1 -> exact GELU -> fc2 (names ``fc1``/``fc2`` as in the released checkpoints).

    Args:
        dim (int): input and output channels.
        hidden_dim (int): hidden channels.
    """

    def __init__(self, dim: int, hidden_dim: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden_dim)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden_dim, dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(self.act(self.fc1(x)))


class Permute(nn.Module):
    """Permute dimensions (lets a LayerNorm act on the channels of an NCHW map).

    Args:
        *dims (int): the permutation, as for :meth:`torch.Tensor.permute`.
    """

    def __init__(self, *dims: int):
        super().__init__()
        self.dims = dims

    def forward(self, x: Tensor) -> Tensor:
        return x.permute(*self.dims)
