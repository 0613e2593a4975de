"""An ensemble of networks whose energies are averaged: ``U_net = (1/K) sum_k U_k``.

Force matching on mapped AA forces is noise-dominated: the networks it ends at differ between training seeds
(initial weights, minibatch order) by kJ/mol along slow coordinates, enough to change a barrier-crossing rate
by a factor of about two (benchmarks/README.md, "Force matching's spread between training seeds"). Each member is
a network of one kind, initialised on its own; force matching fits every member to the forces on its own
minibatches (:func:`openmm_dynmatch.baselines.train_force_matching`), so the average's seed-to-seed error
falls as that of a mean of independent fits. The other objectives train the average as one network.

The spec (``{"kind": "ensemble", ..., "member": {...}, "size": K}``) rebuilds the same architecture, so an
ensemble is saved, loaded and exported (TorchScript) like any other network.
"""
import copy
from typing import Optional

import torch
from torch import Tensor, nn

from .graph import bead_type_array, validate_bonds

#: Keys every member spec gets from the ensemble.
SHARED_KEYS = ("n_beads", "bead_types", "n_types", "bonds")


class EnsembleNet(nn.Module):
    """Mean energy of ``size`` networks of one kind.

    Parameters
    ----------
    n_beads, bead_types, n_types, bonds
        As for every network kind; passed on to each member.
    member : dict, optional
        The members' network spec: ``kind`` (default ``internal_mlp``) and its hyper-parameters (not the shared
        keys above).
    size : int
        Number of members, at least 1.

    Examples
    --------
    >>> net = EnsembleNet(4, bonds=[[0, 1], [1, 2], [2, 3]], member={"kind": "internal_mlp", "hidden": 16},
    ...                   size=3)
    >>> x = torch.randn(5, 4, 3)
    >>> torch.allclose(net(x), sum(m(x) for m in net.members) / 3)
    True
    """

    def __init__(self, n_beads: int, bead_types=None, n_types=None, bonds=None, member: Optional[dict] = None,
                 size: int = 4):
        super().__init__()
        from .potential import build_net  # the registry lives there and lists this kind

        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise ValueError(f"size: expected a positive number of ensemble members, got {size!r}")
        member = dict(member or {"kind": "internal_mlp"})
        clash = sorted(set(member) & set(SHARED_KEYS))
        if clash:
            raise ValueError(f"member: {clash} are set by the ensemble itself; give only the kind and its options")
        if member.get("kind", "pair_mlp") == "ensemble":
            raise ValueError("member: an ensemble cannot be a member of an ensemble")
        types, n_types = bead_type_array(bead_types, n_beads, n_types)
        shared = {"n_beads": int(n_beads), "bead_types": types.tolist(), "n_types": n_types,
                  "bonds": validate_bonds(bonds, n_beads).tolist()}
        self.members = nn.ModuleList([build_net(dict(member, **shared)) for _ in range(size)])
        self.spec = dict(shared, kind="ensemble", member=copy.deepcopy(member), size=int(size))

    def forward(self, positions: Tensor) -> Tensor:
        """Mean member energy: positions (n_walkers, n_beads, 3) nm -> (n_walkers,) kJ/mol."""
        total = torch.zeros(positions.shape[0], dtype=positions.dtype, device=positions.device)
        for net in self.members:
            total = total + net(positions)
        return total / len(self.members)

    def fit_scales(self, frames: Tensor) -> None:
        """Set every member's input scales from data frames, where the member kind has them."""
        for net in self.members:
            if hasattr(net, "fit_scales"):
                net.fit_scales(frames)
