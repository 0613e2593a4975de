"""Small physical models and reference calculations shared by the tests (importable: tests/ is on sys.path)."""
import numpy as np
import torch


class HarmonicChain(torch.nn.Module):
    """``U = sum_bonds k/2 (r - r0)^2`` along a linear chain (bonds ``(i, i+1)``), per walker.

    Parameters
    ----------
    k : float
        Force constant, kJ/mol/nm^2.
    r0 : float
        Bond length, nm.
    dtype : torch.dtype
        The model computes in this dtype (inputs are cast to it).
    learnable : bool
        ``k`` and ``r0`` as ``nn.Parameter`` (estimator tests) instead of buffers.
    """

    def __init__(self, k: float = 800.0, r0: float = 0.3, dtype: torch.dtype = torch.float64,
                 learnable: bool = False):
        super().__init__()
        for name, value in (("k", k), ("r0", r0)):
            tensor = torch.tensor(value, dtype=dtype)
            if learnable:
                setattr(self, name, torch.nn.Parameter(tensor))
            else:
                self.register_buffer(name, tensor)

    def forward(self, positions: torch.Tensor) -> torch.Tensor:
        x = positions.to(self.k.dtype)
        r = torch.linalg.norm(x[:, 1:] - x[:, :-1], dim=-1)
        return 0.5 * (self.k * (r - self.r0) ** 2).sum(-1)


def central_difference_forces(energy, x: torch.Tensor, h: float = 1e-6) -> torch.Tensor:
    """``-dU/dx`` by central finite differences of the summed energy, one coordinate at a time.

    Parameters
    ----------
    energy : callable
        Positions ``(n_walkers, n_beads, 3)`` -> energies ``(n_walkers,)``.
    x : torch.Tensor, shape (n_walkers, n_beads, 3), float64
    h : float
        Step, nm.
    """
    numeric = torch.zeros_like(x)
    with torch.no_grad():
        for idx in np.ndindex(*x.shape):
            xp, xm = x.clone(), x.clone()
            xp[idx] += h
            xm[idx] -= h
            numeric[idx] = -(energy(xp).sum() - energy(xm).sum()) / (2 * h)
    return numeric
