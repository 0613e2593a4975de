"""Trajectory-window classifier ``D_phi(W)`` of dynamic matching (DESIGN.md section 6).

A window ``W = (R_0, ..., R_T)`` of CG configurations is mapped to one logit (positive = "AA"):

1. per frame ``t = 1..T`` an equivariant graph network (`FrameEncoder`, NequIP-style on e3nn) encodes the
   configuration ``R_t`` (edges ``R_t^j - R_t^i``) together with the displacement ``v_t^i = R_t^i - R_{t-1}^i``
   (a ``1o`` node input, divided by ``displacement_scale_nm``) into invariant per-bead features ``h_t^i``;
2. a temporal 1-D convolution over ``t``, shared across beads, mixes neighbouring frames; its output is averaged
   over time and over beads;
3. an MLP maps the pooled features to the logit.

All frames of all windows are encoded as one batch of dense graphs. The logit is invariant to global rotations
and translations of a window and each window is processed independently of the others in a batch. With
``chiral=True`` (default) the encoder also carries parity-odd channels (pseudo-vectors ``1e`` and pseudo-scalars
``0o``), so a window and its mirror image get different logits; ``chiral=False`` makes the logit invariant to
reflections too (O(3)), for systems without handedness.
``frame_only=True`` drops the displacements and the temporal mixing (kernel size 1): the classifier then sees an
unordered set of configurations, a thermodynamics-only diagnostic.

Example
-------
>>> clf = WindowClassifier(bead_types=[0, 1, 1, 0], displacement_scale_nm=0.05)
>>> windows = 0.3 * torch.randn(16, 5, 4, 3)          # (batch, T+1, n_beads, 3), nm
>>> clf(windows).shape
torch.Size([16])
>>> clf2 = build_classifier(clf.spec)                    # same architecture, fresh weights
"""
import copy
import inspect
from typing import List, Optional, Sequence

import torch
from torch import Tensor, nn
from torch.nn.utils.parametrizations import spectral_norm as _spectral_norm

from .classifier_layers import FrameEncoder

_DTYPES = {"float32": torch.float32, "float64": torch.float64}


def _maybe_sn(module: nn.Module, enabled: bool) -> nn.Module:
    return _spectral_norm(module) if enabled else module


class WindowClassifier(nn.Module):
    """Classifier of CG trajectory windows: per-frame equivariant encoder + temporal convolution + MLP head.

    Parameters
    ----------
    bead_types : sequence of int, length n_beads
        Type index of every bead (into ``range(n_types)``).
    n_types : int, optional
        Number of bead types; default ``max(bead_types) + 1``.
    displacement_scale_nm : float
        Length dividing the displacements ``v_t`` before they enter the network, nm. Use the RMS displacement
        per frame of the training data (`displacement_rms`) so that the vector input is O(1).
    frame_only : bool
        Ignore displacements and time order: encode every frame ``t = 0..T`` (``T = 0`` allowed) and average.
    cutoff_nm : float or None
        Smooth interaction cutoff, nm; ``None`` lets all pairs of beads interact.
    r_max_nm : float, optional
        Range of the Gaussian radial basis, nm; default ``cutoff_nm`` or 1.5 nm without cutoff.
    n_basis, radial_hidden : int
        Radial basis size and width of the radial MLPs giving the tensor-product weights.
    lmax : int
        Maximum degree of the edge spherical harmonics.
    embed_dim, hidden_scalars, hidden_vectors, n_layers : int
        Type-embedding width, ``0e`` and ``1o`` multiplicities of the hidden node features, interaction layers.
    temporal_channels, temporal_kernel, temporal_layers : int
        Width, (odd) kernel size and depth of the temporal 1-D convolution.
    head_hidden : int
        Hidden width of the output MLP.
    spectral_norm : bool
        Spectrally normalise the temporal convolutions and the head MLP.
    chiral : bool
        Let the classifier tell a window from its mirror image (invariance under proper rotations only). Adds
        ``hidden_vectors`` ``1e`` and ``0o`` channels to the hidden features; needs ``hidden_vectors >= 3``.
    dtype : {"float32", "float64"}
        Parameter dtype; windows are cast to it on entry.

    Attributes
    ----------
    spec : dict
        JSON-able constructor arguments; ``build_classifier(spec)`` rebuilds the architecture.
    """

    def __init__(self, bead_types: Sequence[int], n_types: Optional[int] = None,
                 displacement_scale_nm: float = 0.05, frame_only: bool = False, cutoff_nm: Optional[float] = None,
                 r_max_nm: Optional[float] = None, n_basis: int = 8, radial_hidden: int = 16, lmax: int = 1,
                 embed_dim: int = 8, hidden_scalars: int = 16, hidden_vectors: int = 8, n_layers: int = 2,
                 temporal_channels: int = 32, temporal_kernel: int = 3, temporal_layers: int = 2,
                 head_hidden: int = 32, spectral_norm: bool = False, chiral: bool = True, dtype: str = "float32"):
        super().__init__()
        types = [int(t) for t in bead_types]
        if len(types) < 2:
            raise ValueError(f"bead_types must list at least 2 beads, got {len(types)}")
        if n_types is None:
            n_types = max(types) + 1
        if min(types) < 0 or max(types) >= n_types:
            raise ValueError(f"bead_types must lie in [0, n_types={n_types}), got range [{min(types)}, {max(types)}]")
        if not displacement_scale_nm > 0:
            raise ValueError(f"displacement_scale_nm must be > 0, got {displacement_scale_nm}")
        if temporal_kernel < 1 or temporal_kernel % 2 == 0:
            raise ValueError(f"temporal_kernel must be a positive odd integer, got {temporal_kernel}")
        if temporal_layers < 1:
            raise ValueError(f"temporal_layers must be >= 1, got {temporal_layers}")
        if dtype not in _DTYPES:
            raise ValueError(f"unknown dtype '{dtype}'; available: {sorted(_DTYPES)}")
        if r_max_nm is None:
            r_max_nm = cutoff_nm if cutoff_nm is not None else 1.5
        self.spec = dict(bead_types=types, n_types=int(n_types), displacement_scale_nm=float(displacement_scale_nm),
                         frame_only=bool(frame_only), cutoff_nm=None if cutoff_nm is None else float(cutoff_nm),
                         r_max_nm=float(r_max_nm), n_basis=int(n_basis), radial_hidden=int(radial_hidden),
                         lmax=int(lmax), embed_dim=int(embed_dim), hidden_scalars=int(hidden_scalars),
                         hidden_vectors=int(hidden_vectors), n_layers=int(n_layers),
                         temporal_channels=int(temporal_channels), temporal_kernel=int(temporal_kernel),
                         temporal_layers=int(temporal_layers), head_hidden=int(head_hidden),
                         spectral_norm=bool(spectral_norm), chiral=bool(chiral), dtype=dtype)
        self.n_beads = len(types)
        self.frame_only = bool(frame_only)
        self.displacement_scale_nm = float(displacement_scale_nm)
        self.register_buffer("bead_types", torch.tensor(types, dtype=torch.long))
        self.encoder = FrameEncoder(int(n_types), not frame_only, embed_dim, hidden_scalars, hidden_vectors,
                                    n_layers, lmax, n_basis, radial_hidden, float(r_max_nm), cutoff_nm, bool(chiral))
        kernel = 1 if frame_only else int(temporal_kernel)
        convs: List[nn.Module] = []
        n_in = self.encoder.n_features
        for _ in range(temporal_layers):
            convs.append(_maybe_sn(nn.Conv1d(n_in, temporal_channels, kernel, padding=kernel // 2), spectral_norm))
            n_in = temporal_channels
        self.temporal = nn.ModuleList(convs)
        self.head = nn.Sequential(_maybe_sn(nn.Linear(temporal_channels, head_hidden), spectral_norm), nn.SiLU(),
                                  _maybe_sn(nn.Linear(head_hidden, 1), spectral_norm))
        self.to(_DTYPES[dtype])

    @property
    def dtype(self) -> torch.dtype:
        """Parameter dtype (windows are cast to it on entry)."""
        return _DTYPES[self.spec["dtype"]]

    def fit_scales(self, windows: Tensor) -> None:
        """Set ``displacement_scale_nm`` to the RMS per-frame displacement of (AA) windows (B, T+1, N, 3) nm, so that
        the vector input is O(1); windows of one frame keep the current scale."""
        if windows.shape[1] > 1:
            scale = max(displacement_rms(windows), 1e-4)
            self.displacement_scale_nm = scale
            self.spec["displacement_scale_nm"] = scale

    def _check(self, windows: Tensor) -> None:
        if windows.dim() != 4 or windows.shape[2] != self.n_beads or windows.shape[3] != 3:
            raise ValueError(f"windows must have shape (batch, T+1, n_beads={self.n_beads}, 3), "
                             f"got {tuple(windows.shape)}")
        min_frames = 1 if self.frame_only else 2
        if windows.shape[1] < min_frames:
            raise ValueError(f"windows need at least {min_frames} frame(s) (T+1) with frame_only={self.frame_only}, "
                             f"got {windows.shape[1]}")

    def frame_features(self, windows: Tensor) -> Tensor:
        """Invariant per-bead, per-frame features ``h_t^i``.

        Parameters
        ----------
        windows : torch.Tensor, shape (batch, T+1, n_beads, 3), nm

        Returns
        -------
        torch.Tensor, shape (batch, n_frames, n_beads, n_features)
            ``n_frames = T`` (frames 1..T), or ``T + 1`` with ``frame_only``.
        """
        self._check(windows)
        windows = windows.to(self.dtype)
        batch, n_steps, n_beads, _ = windows.shape
        if self.frame_only:
            frames, vectors = windows, None
        else:
            frames = windows[:, 1:]
            vectors = (frames - windows[:, :-1]).reshape(-1, n_beads, 3) / self.displacement_scale_nm
        n_frames = frames.shape[1]
        h = self.encoder(frames.reshape(-1, n_beads, 3), self.bead_types, vectors)
        return h.reshape(batch, n_frames, n_beads, -1)

    def forward(self, windows: Tensor) -> Tensor:
        """Logits of windows (positive = AA).

        Parameters
        ----------
        windows : torch.Tensor, shape (batch, T+1, n_beads, 3), nm

        Returns
        -------
        torch.Tensor, shape (batch,)
        """
        h = self.frame_features(windows)
        batch, n_frames, n_beads, n_feat = h.shape
        x = h.permute(0, 2, 3, 1).reshape(batch * n_beads, n_feat, n_frames)
        for conv in self.temporal:
            x = nn.functional.silu(conv(x))
        pooled = x.mean(dim=2).reshape(batch, n_beads, -1).mean(dim=1)
        return self.head(pooled).squeeze(-1)


def build_classifier(spec: dict) -> WindowClassifier:
    """Build a `WindowClassifier` from its ``spec`` dict (e.g. ``classifier.spec`` or a config section).

    Unknown keys raise ``ValueError`` listing the known ones.
    """
    if not isinstance(spec, dict):
        raise ValueError(f"spec must be a dict, got {type(spec).__name__}")
    known = set(inspect.signature(WindowClassifier.__init__).parameters) - {"self"}
    unknown = sorted(set(spec) - known)
    if unknown:
        raise ValueError(f"unknown classifier spec keys {unknown}; available: {sorted(known)}")
    if "bead_types" not in spec:
        raise ValueError("classifier spec needs 'bead_types' (list of int, one per bead)")
    return WindowClassifier(**copy.deepcopy(spec))


def r1_penalty(classifier: nn.Module, windows: Tensor) -> Tensor:
    """R1 gradient penalty: mean over windows of ``|d logit / d W|^2`` (summed over all coordinates).

    The gradient is taken with ``create_graph=True`` so the penalty can be back-propagated into the classifier
    parameters. Usually evaluated on AA (real) windows and added, times a weight, to the classifier loss.

    Parameters
    ----------
    classifier : torch.nn.Module
        Maps windows ``(batch, T+1, n_beads, 3)`` to logits ``(batch,)``.
    windows : torch.Tensor, shape (batch, T+1, n_beads, 3), nm

    Returns
    -------
    torch.Tensor, 0-d, 1/nm^2
    """
    if windows.dim() != 4:
        raise ValueError(f"windows must have shape (batch, T+1, n_beads, 3), got {tuple(windows.shape)}")
    windows = windows.detach().requires_grad_(True)
    logits = classifier(windows)
    (grad,) = torch.autograd.grad(logits.sum(), windows, create_graph=True)
    return grad.pow(2).sum(dim=(1, 2, 3)).mean()


def displacement_rms(windows: Tensor) -> float:
    """Root-mean-square per-frame displacement of a bead along one axis, nm (a `displacement_scale_nm`).

    Parameters
    ----------
    windows : torch.Tensor or array, shape (batch, T+1, n_beads, 3), nm, with T >= 1
    """
    windows = torch.as_tensor(windows)
    if windows.dim() != 4 or windows.shape[1] < 2:
        raise ValueError(f"windows must have shape (batch, T+1 >= 2, n_beads, 3), got {tuple(windows.shape)}")
    disp = windows[:, 1:] - windows[:, :-1]
    return float(disp.double().pow(2).mean().sqrt())
