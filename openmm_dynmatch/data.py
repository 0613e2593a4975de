"""Trajectory windows from mapped CG trajectories, train/validation splits in time blocks, and batches.

A window is ``T + 1`` frames ``(R_0, ..., R_T)`` of one trajectory, ``frame_step`` saved frames apart, so it
spans ``T * frame_step * frame_interval_ps``. Windows start every ``stride`` frames. Train and validation data
are contiguous blocks of time (consecutive frames are correlated, so a random frame split would leak), and
windows are cut inside a block, never across a block boundary.

A file may hold several independent trajectories one after the other (``trajectory_lengths`` in its metadata,
see :func:`openmm_dynmatch.trajio.trajectory_segments`). The functions here take their ``(start, stop)``
``segments``: blocks and ranges are cut where one trajectory ends and the next begins, so no window, training
range or validation range spans two trajectories.

Examples
--------
>>> train_ranges, val_ranges = split_blocks(10000, validation_fraction=0.2, n_blocks=5, seed=0)
>>> train = WindowDataset.from_ranges(positions, train_ranges, window_frames=7, stride=2)   # doctest: +SKIP
>>> for batch in train.batches(batch_size=64, seed=0):           # (64, 7, n_beads, 3)       # doctest: +SKIP
...     start_frames = batch[:, 0]                               # conditional mode starts
"""
from __future__ import annotations

import math

import numpy as np
import torch

_DTYPES = {"float32": torch.float32, "float64": torch.float64}


def _positive_int(value, name: str) -> int:
    try:
        valid = not isinstance(value, bool) and int(value) == value and int(value) >= 1
    except (TypeError, ValueError):
        valid = False
    if not valid:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def window_span(window_frames: int, frame_step: int = 1) -> int:
    """Number of saved frames one window covers: ``(window_frames - 1) * frame_step + 1``."""
    window_frames = _positive_int(window_frames, "window_frames (T+1)")
    return (window_frames - 1) * _positive_int(frame_step, "frame_step") + 1


def window_starts(n_frames: int, window_frames: int, stride: int = 1, frame_step: int = 1,
                  offset: int = 0) -> np.ndarray:
    """Start frames of the windows that fit in ``n_frames`` consecutive frames beginning at ``offset``.

    Returns
    -------
    np.ndarray, shape (n_windows,), int64
        ``offset, offset + stride, ...``, every start with its last frame inside the range.

    Raises
    ------
    ValueError
        If ``n_frames`` is shorter than one window.
    """
    span = window_span(window_frames, frame_step)
    stride = _positive_int(stride, "stride")
    if n_frames < span:
        raise ValueError(f"a window of {window_frames} frames, frame_step {frame_step}, spans {span} frames but "
                         f"only {n_frames} frames are given")
    return np.arange(offset, offset + n_frames - span + 1, stride, dtype=np.int64)


def make_windows(positions, window_frames: int, stride: int = 1, frame_step: int = 1):
    """Cut one trajectory into windows.

    Parameters
    ----------
    positions : np.ndarray or torch.Tensor, shape (n_frames, n_beads, 3), nm
    window_frames : int
        ``T + 1``, frames per window.
    stride : int
        Frames between the starts of consecutive windows.
    frame_step : int
        Saved frames between consecutive frames of one window.

    Returns
    -------
    same type as ``positions``, shape (n_windows, T+1, n_beads, 3), nm
        Window ``k`` frame ``j`` is ``positions[k * stride + j * frame_step]``.
    """
    if positions.ndim != 3 or positions.shape[-1] != 3:
        raise ValueError(f"positions must have shape (n_frames, n_beads, 3), got {tuple(positions.shape)}")
    starts = window_starts(positions.shape[0], window_frames, stride, frame_step)
    index = starts[:, None] + np.arange(window_frames)[None, :] * frame_step
    if isinstance(positions, torch.Tensor):
        return positions[torch.as_tensor(index, device=positions.device)]
    return np.asarray(positions)[index]


def check_segments(segments, n_frames: int) -> list:
    """Validated trajectory segments: contiguous half-open ``(start, stop)`` ranges covering ``0..n_frames``.

    Parameters
    ----------
    segments : sequence of (int, int) or None
        Frame ranges of the independent trajectories, in order; None means one trajectory of all frames.
    n_frames : int

    Returns
    -------
    list of (int, int)
    """
    if segments is None:
        return [(0, int(n_frames))]
    out, position = [], 0
    for segment in segments:
        start, stop = (int(v) for v in segment)
        if start != position or stop <= start:
            raise ValueError(f"segments must be non-empty (start, stop) ranges following each other from frame 0, "
                             f"got {list(segments)}")
        out.append((start, stop))
        position = stop
    if position != int(n_frames):
        raise ValueError(f"segments must cover the {n_frames} frames, they end at frame {position}: {list(segments)}")
    return out


def cut_at_boundaries(ranges, segments) -> list:
    """Split half-open frame ranges where one trajectory ends and the next begins.

    Parameters
    ----------
    ranges : sequence of (int, int)
        Half-open frame ranges.
    segments : sequence of (int, int)
        Frame ranges of the trajectories (see :func:`check_segments`).

    Returns
    -------
    list of (int, int)
        The non-empty intersections of every range with every segment, in order; each lies in one trajectory.
    """
    return [(max(a, s), min(b, e)) for a, b in ranges for s, e in segments if max(a, s) < min(b, e)]


def split_blocks(n_frames: int, validation_fraction: float = 0.2, n_blocks: int = 5, seed: int = 0,
                 segments=None):
    """Split ``n_frames`` into contiguous time blocks for training and validation.

    The frames are cut into ``n_blocks`` blocks of (nearly) equal length;
    ``round(validation_fraction * n_blocks)`` of them (at least one when the fraction is positive), drawn with
    ``seed``, are validation. Adjacent blocks of the same set are merged. With ``segments`` (several
    trajectories stored one after the other) every range is then cut at the trajectory boundaries; the blocks
    and the draw are the same as without them.

    Parameters
    ----------
    n_frames : int
    validation_fraction : float
        In ``[0, 1)``.
    n_blocks : int
    seed : int
    segments : sequence of (int, int), optional
        Half-open frame ranges of the independent trajectories (:func:`openmm_dynmatch.trajio.trajectory_segments`);
        None: one trajectory.

    Returns
    -------
    train_ranges, validation_ranges : list of (start, stop) tuples
        Half-open frame ranges, sorted by start, each inside one trajectory.
    """
    n_frames = _positive_int(n_frames, "n_frames")
    n_blocks = _positive_int(n_blocks, "n_blocks")
    if not 0.0 <= float(validation_fraction) < 1.0:
        raise ValueError(f"validation_fraction must be in [0, 1), got {validation_fraction}")
    if n_blocks > n_frames:
        raise ValueError(f"n_blocks ({n_blocks}) cannot exceed n_frames ({n_frames})")
    n_validation = int(round(validation_fraction * n_blocks))
    if validation_fraction > 0:
        n_validation = max(n_validation, 1)
    if n_validation >= n_blocks:
        raise ValueError(f"validation_fraction {validation_fraction} of {n_blocks} blocks leaves no training "
                         f"block; use more blocks or a smaller fraction")
    edges = np.linspace(0, n_frames, n_blocks + 1).round().astype(int)
    chosen = set(np.random.default_rng(seed).choice(n_blocks, size=n_validation, replace=False).tolist())
    train, validation = [], []
    for block in range(n_blocks):
        ranges = validation if block in chosen else train
        start, stop = int(edges[block]), int(edges[block + 1])
        if ranges and ranges[-1][1] == start:
            ranges[-1] = (ranges[-1][0], stop)
        else:
            ranges.append((start, stop))
    if segments is not None:
        segments = check_segments(segments, n_frames)
        train, validation = cut_at_boundaries(train, segments), cut_at_boundaries(validation, segments)
    return train, validation


def ranges_window_starts(ranges, window_frames: int, stride: int = 1, frame_step: int = 1,
                         segments=None) -> np.ndarray:
    """Window starts inside each half-open frame range; ranges shorter than a window contribute none.

    Parameters
    ----------
    ranges : sequence of (int, int)
        Half-open frame ranges.
    window_frames, stride, frame_step : int
        As for :func:`window_starts`.
    segments : sequence of (int, int), optional
        Trajectory ranges: the frame ranges are first cut at their boundaries, so that every window lies in one
        trajectory (a window starts only where it fits whole before its trajectory ends).

    Returns
    -------
    np.ndarray, shape (n_windows,), int64

    Raises
    ------
    ValueError
        If no range holds a single window.
    """
    span = window_span(window_frames, frame_step)
    if segments is not None:
        ranges = cut_at_boundaries(ranges, segments)
    starts = [window_starts(stop - start, window_frames, stride, frame_step, offset=start)
              for start, stop in ranges if stop - start >= span]
    if not starts:
        raise ValueError(f"no frame range in {list(ranges)} is long enough for one window of {span} frames")
    return np.concatenate(starts)


def frame_step_for_interval(window_interval_ps: float, frame_interval_ps: float) -> int:
    """Saved frames between window frames for a wanted window frame spacing (must be a whole multiple)."""
    ratio = float(window_interval_ps) / float(frame_interval_ps)
    step = int(round(ratio))
    if step < 1 or not math.isclose(ratio, step, rel_tol=1e-6):
        raise ValueError(f"window_interval_ps {window_interval_ps} must be a positive whole multiple of the "
                         f"frame interval {frame_interval_ps} ps")
    return step


class WindowDataset:
    """Windows of a CG trajectory, gathered on demand from one positions array.

    Parameters
    ----------
    positions : np.ndarray or torch.Tensor, shape (n_frames, n_beads, 3), nm
        Frames; several trajectories may be stored one after the other (see ``segments``).
    starts : array, shape (n_windows,), int
        First frame of each window.
    window_frames : int
        ``T + 1``.
    frame_step : int
        Saved frames between consecutive window frames.
    dtype : torch.dtype or str
        ``torch.float64`` (default) or ``torch.float32``.
    segments : sequence of (int, int), optional
        Half-open frame ranges of the independent trajectories in ``positions``; every window must lie inside
        one of them (checked). None: one trajectory.

    Examples
    --------
    >>> data = WindowDataset.from_ranges(positions, [(0, 800)], window_frames=5, stride=1)  # doctest: +SKIP
    >>> windows = data[np.arange(4)]           # (4, 5, n_beads, 3)                         # doctest: +SKIP
    """

    def __init__(self, positions, starts, window_frames: int, frame_step: int = 1, dtype=torch.float64,
                 segments=None):
        dtype = _DTYPES.get(dtype, dtype)
        if dtype not in (torch.float32, torch.float64):
            raise ValueError(f"dtype must be torch.float32 or torch.float64, got {dtype}")
        self.positions = torch.as_tensor(np.asarray(positions), dtype=dtype)
        if self.positions.ndim != 3 or self.positions.shape[-1] != 3:
            raise ValueError(f"positions must have shape (n_frames, n_beads, 3), got {tuple(self.positions.shape)}")
        self.window_frames = _positive_int(window_frames, "window_frames (T+1)")
        self.frame_step = _positive_int(frame_step, "frame_step")
        self.starts = np.asarray(starts, dtype=np.int64).reshape(-1)
        last = window_span(window_frames, frame_step) - 1
        if self.starts.size == 0:
            raise ValueError("starts is empty: no windows")
        if self.starts.min() < 0 or self.starts.max() + last >= self.positions.shape[0]:
            raise ValueError(f"windows must lie inside the {self.positions.shape[0]} frames; starts range "
                             f"{self.starts.min()}..{self.starts.max()} with a span of {last + 1} frames")
        self.segments = check_segments(segments, self.positions.shape[0])
        stops = np.array([stop for _, stop in self.segments])
        crossing = np.searchsorted(stops, self.starts, side="right") != np.searchsorted(
            stops, self.starts + last, side="right")
        if crossing.any():
            raise ValueError(f"windows starting at frames {self.starts[crossing][:5].tolist()} span two "
                             f"trajectories (segments {self.segments})")
        self._offsets = torch.arange(self.window_frames) * self.frame_step

    @classmethod
    def from_ranges(cls, positions, ranges, window_frames: int, stride: int = 1, frame_step: int = 1,
                    dtype=torch.float64, segments=None) -> "WindowDataset":
        """Windows inside the half-open frame ranges (see :func:`split_blocks`), cut at the boundaries of the
        trajectories ``segments`` when given."""
        if segments is not None:
            segments = check_segments(segments, len(positions))
        starts = ranges_window_starts(ranges, window_frames, stride, frame_step, segments)
        return cls(positions, starts, window_frames, frame_step, dtype, segments)

    def __len__(self) -> int:
        return int(self.starts.size)

    @property
    def n_beads(self) -> int:
        return int(self.positions.shape[1])

    def __getitem__(self, index) -> torch.Tensor:
        """Windows by dataset index: an int gives (T+1, n_beads, 3), an index array (B, T+1, n_beads, 3)."""
        starts = torch.as_tensor(self.starts[index])
        return self.positions[starts[..., None] + self._offsets]

    @property
    def start_frames(self) -> torch.Tensor:
        """First frame of every window, shape (n_windows, n_beads, 3), nm (conditional-mode starts)."""
        return self.positions[torch.as_tensor(self.starts)]

    def batches(self, batch_size: int, seed: int = 0, shuffle: bool = True, drop_last: bool = False):
        """Iterate once over all windows in batches.

        Parameters
        ----------
        batch_size : int
        seed : int
            Seed of the shuffle (use e.g. ``seed + epoch`` for a new order each epoch).
        shuffle : bool
        drop_last : bool
            Skip a final batch smaller than ``batch_size``.

        Yields
        ------
        torch.Tensor, shape (batch, T+1, n_beads, 3), nm
        """
        batch_size = _positive_int(batch_size, "batch_size")
        order = np.random.default_rng(seed).permutation(len(self)) if shuffle else np.arange(len(self))
        for first in range(0, len(self), batch_size):
            chunk = order[first:first + batch_size]
            if drop_last and chunk.size < batch_size:
                return
            yield self[chunk]

    def sample(self, batch_size: int, rng: np.random.Generator):
        """A random batch (without replacement when possible) and the dataset indices it came from.

        Returns
        -------
        windows : torch.Tensor, shape (batch_size, T+1, n_beads, 3), nm
        indices : np.ndarray, shape (batch_size,), int
        """
        batch_size = _positive_int(batch_size, "batch_size")
        indices = rng.choice(len(self), size=batch_size, replace=batch_size > len(self))
        return self[indices], indices


def train_validation_datasets(positions, window_frames: int, stride: int = 1, frame_step: int = 1,
                              validation_fraction: float = 0.2, n_blocks: int = 5, seed: int = 0,
                              dtype=torch.float64, segments=None):
    """Training and validation :class:`WindowDataset` of the frames, split in time blocks.

    Parameters
    ----------
    positions : np.ndarray or torch.Tensor, shape (n_frames, n_beads, 3), nm
    segments : sequence of (int, int), optional
        Half-open frame ranges of the independent trajectories in ``positions`` (None: one trajectory).

    Returns
    -------
    train : WindowDataset
    validation : WindowDataset or None
        None when ``validation_fraction`` is 0.
    """
    train_ranges, validation_ranges = split_blocks(len(positions), validation_fraction, n_blocks, seed, segments)
    train = WindowDataset.from_ranges(positions, train_ranges, window_frames, stride, frame_step, dtype, segments)
    validation = WindowDataset.from_ranges(positions, validation_ranges, window_frames, stride, frame_step,
                                           dtype, segments) if validation_ranges else None
    return train, validation


def load_windows(path, window_frames: int, stride: int = 1, frame_step: int = 1, validation_fraction: float = 0.2,
                 n_blocks: int = 5, seed: int = 0, dtype=torch.float64):
    """Read a mapped CG trajectory file and split it into training and validation windows (cut at the
    boundaries of the trajectories it holds, see :func:`openmm_dynmatch.trajio.trajectory_segments`).

    Returns
    -------
    train : WindowDataset
    validation : WindowDataset or None
    metadata : dict
        The file's metadata (bead names, masses, temperature_k, frame_interval_ps, ...).
    """
    from openmm_dynmatch import trajio

    data = trajio.load(path)
    train, validation = train_validation_datasets(data.positions, window_frames, stride, frame_step,
                                                  validation_fraction, n_blocks, seed, dtype, data.segments)
    return train, validation, data.metadata
