"""Several window classifiers judged as one: the logit of the ensemble is the mean of its members' logits.

One classifier's verdict on the CG friction is a random draw: on alanine dipeptide, classifiers of other
initialisations trained alike at one friction differ in the slope of their reward by three to four times the
probe's error (benchmarks/README.md, "One classifier's verdict on the friction is a random draw"), and the game
follows the one it has. Members drawn independently and trained side by side on the same batches average that
draw out: the generator's reward is minus the mean logit, so its gradient is the members' mean.

Each member is trained as if it were alone (:func:`openmm_dynmatch.train.training_loss` sums the members' cross
entropies, so a member's gradient does not depend on the others; Adam is per-parameter), which makes the members
independent draws of the same training.

Example
-------
>>> from openmm_dynmatch.models.invariant_classifier import InvariantWindowClassifier
>>> members = [InvariantWindowClassifier(n_beads=4, window_frames=3, hidden=8) for _ in range(3)]
>>> ensemble = ClassifierEnsemble(members)
>>> ensemble.member_logits(0.3 * torch.randn(5, 3, 4, 3)).shape
torch.Size([3, 5])
"""
from typing import Sequence

import torch
from torch import Tensor, nn


class ClassifierEnsemble(nn.Module):
    """Mean logit of ``len(members)`` window classifiers.

    Parameters
    ----------
    members : sequence of torch.nn.Module
        Each maps windows (B, T+1, N, 3) nm to logits (B,); at least two.
    """

    def __init__(self, members: Sequence[nn.Module]):
        super().__init__()
        if len(members) < 2:
            raise ValueError(f"members: an ensemble needs at least 2 classifiers, got {len(members)}")
        self.members = nn.ModuleList(members)

    def fit_scales(self, windows: Tensor) -> None:
        """Every member's input scales, from the same (AA) windows."""
        for member in self.members:
            if hasattr(member, "fit_scales"):
                member.fit_scales(windows)

    def member_logits(self, windows: Tensor) -> Tensor:
        """Logits of every member, shape ``(members, batch)``."""
        return torch.stack([member(windows) for member in self.members])

    def forward(self, windows: Tensor) -> Tensor:
        """Mean logit ``(batch,)`` of windows ``(batch, T+1, N, 3)`` nm."""
        return self.member_logits(windows).mean(dim=0)
