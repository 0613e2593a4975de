"""Windows without their rigid-body motion: what a classifier sees when only the molecule's internal motion counts.

A window ``(R_0, ..., R_T)`` of one molecule moves as a whole (translation and rotation) and internally. In
implicit solvent the whole-molecule motion feels the AA thermostat's friction on every atom, while the internal
(conformational) motion also feels the atoms the mapping removed; a CG model with one Markovian friction cannot
match both (benchmarks/README.md, science). :func:`remove_rigid_body_motion` superposes every frame onto the
previous, already superposed one (optimal translation and proper rotation, equal bead weights; Kabsch), so the
window keeps the orientation and centroid of its first frame and only internal motion is left from frame to frame.
:class:`InternalMotionClassifier` applies it in front of any window classifier (``classifier.internal_motion``).

The superposition is proper (no reflections), so a window and its mirror image stay mirror images, and it is
equivariant: rotating or translating the whole window rotates or translates the result the same way. The rotation
is computed without gradient (a rigid transform of each frame, chosen from the data); the logit's gradient with
respect to the coordinates (the R1 penalty) flows through that fixed transform.

Example
-------
>>> windows = torch.randn(8, 4, 10, 3)
>>> remove_rigid_body_motion(windows).shape
torch.Size([8, 4, 10, 3])
"""
from __future__ import annotations

import torch
from torch import Tensor, nn


def superposition(moving: Tensor, reference: Tensor) -> Tensor:
    """Proper rotations ``R`` (batch, 3, 3) minimising ``|(moving - centroid) R - (reference - centroid)|^2``.

    Parameters
    ----------
    moving, reference : torch.Tensor, shape (batch, n_beads, 3)
        Row-vector coordinates; each is centred on its own centroid here.
    """
    p = moving - moving.mean(dim=1, keepdim=True)
    q = reference - reference.mean(dim=1, keepdim=True)
    u, _, vt = torch.linalg.svd(p.transpose(1, 2) @ q)
    sign = torch.sign(torch.linalg.det(u @ vt))
    sign = torch.where(sign == 0, torch.ones_like(sign), sign)
    flip = torch.ones(moving.shape[0], 3, dtype=moving.dtype, device=moving.device)
    flip[:, 2] = sign
    return (u * flip[:, None, :]) @ vt


def remove_rigid_body_motion(windows: Tensor) -> Tensor:
    """Every frame of every window superposed onto the previous superposed frame (frame 0 stays as it is).

    Parameters
    ----------
    windows : torch.Tensor, shape (batch, T+1, n_beads, 3), nm

    Returns
    -------
    torch.Tensor, same shape
        Frames with the centroid of frame 0 and no rigid-body motion between consecutive frames.
    """
    if windows.dim() != 4 or windows.shape[-1] != 3 or windows.shape[2] < 3:
        raise ValueError(f"windows must have shape (batch, T+1, n_beads >= 3, 3), got {tuple(windows.shape)}")
    frames = [windows[:, 0]]
    origin = windows[:, 0].mean(dim=1, keepdim=True)
    for t in range(1, windows.shape[1]):
        current = windows[:, t]
        with torch.no_grad():
            rotation = superposition(current.detach(), frames[-1].detach())
        frames.append((current - current.mean(dim=1, keepdim=True)) @ rotation + origin)
    return torch.stack(frames, dim=1)


class InternalMotionClassifier(nn.Module):
    """A window classifier that sees windows without their rigid-body motion (:func:`remove_rigid_body_motion`).

    Parameters
    ----------
    classifier : torch.nn.Module
        Maps windows (B, T+1, N, 3) nm to logits (B,).
    """

    def __init__(self, classifier: nn.Module):
        super().__init__()
        self.classifier = classifier

    @property
    def spec(self) -> dict:
        """The inner classifier's ``spec`` with ``internal_motion: True`` (AttributeError if it has none)."""
        return dict(self.classifier.spec, internal_motion=True)

    def fit_scales(self, windows: Tensor) -> None:
        """The inner classifier's input scales, set from the superposed (AA) windows."""
        if hasattr(self.classifier, "fit_scales"):
            self.classifier.fit_scales(remove_rigid_body_motion(torch.as_tensor(windows)))

    def forward(self, windows: Tensor) -> Tensor:
        """Logits ``(batch,)`` of windows ``(batch, T+1, N, 3)`` nm."""
        return self.classifier(remove_rigid_body_motion(windows))
