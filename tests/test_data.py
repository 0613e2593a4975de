"""Windows, time-block splits and batches, checked frame by frame against explicit index arithmetic."""
import numpy as np
import pytest
import torch

from openmm_dynmatch import trajio
from openmm_dynmatch.data import (WindowDataset, frame_step_for_interval, load_windows, make_windows,
                                  ranges_window_starts, split_blocks, train_validation_datasets, window_starts)


def _labelled_positions(n_frames, n_beads=3):
    """positions[f, i] = (f, i, f + 0.5 * i): every value tells its frame and bead."""
    f, i = np.meshgrid(np.arange(n_frames), np.arange(n_beads), indexing="ij")
    return np.stack([f, i, f + 0.5 * i], axis=-1).astype(np.float64)


@pytest.mark.parametrize("window_frames, stride, frame_step", [(1, 1, 1), (4, 1, 1), (4, 3, 2), (7, 5, 3)])
def test_make_windows_shapes_and_values(window_frames, stride, frame_step):
    positions = _labelled_positions(40)
    windows = make_windows(positions, window_frames, stride, frame_step)
    span = (window_frames - 1) * frame_step + 1
    n_expected = len(range(0, 40 - span + 1, stride))
    assert windows.shape == (n_expected, window_frames, 3, 3)
    for k in range(n_expected):
        for j in range(window_frames):
            np.testing.assert_array_equal(windows[k, j], positions[k * stride + j * frame_step])
    # The last window ends inside the trajectory and one more would not fit.
    assert (n_expected - 1) * stride + span <= 40 < n_expected * stride + span


def test_make_windows_keeps_torch_tensors():
    positions = torch.as_tensor(_labelled_positions(12), dtype=torch.float32)
    windows = make_windows(positions, 3, stride=2, frame_step=2)
    assert isinstance(windows, torch.Tensor) and windows.dtype == torch.float32
    torch.testing.assert_close(windows[2, 1], positions[2 * 2 + 1 * 2])


@pytest.mark.parametrize("kwargs, message", [
    ({"window_frames": 0}, r"window_frames \(T\+1\) must be a positive integer, got 0"),
    ({"window_frames": 3, "stride": 0}, "stride must be a positive integer, got 0"),
    ({"window_frames": 3, "stride": -2}, "stride must be a positive integer, got -2"),
    ({"window_frames": 3, "frame_step": 1.5}, "frame_step must be a positive integer, got 1.5"),
    ({"window_frames": 6, "frame_step": 2}, "spans 11 frames but only 10 frames are given"),
])
def test_window_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        make_windows(_labelled_positions(10), **kwargs)


def test_split_blocks_are_contiguous_disjoint_and_cover_all_frames():
    train, validation = split_blocks(1003, validation_fraction=0.3, n_blocks=10, seed=4)
    covered = np.zeros(1003, dtype=int)
    for start, stop in train + validation:
        covered[start:stop] += 1
    np.testing.assert_array_equal(covered, 1)
    edges = np.linspace(0, 1003, 11).round().astype(int)
    assert sum(stop - start for start, stop in validation) == sum(
        edges[b + 1] - edges[b] for b in range(10) if any(s <= edges[b] < e for s, e in validation))
    n_validation_blocks = sum(int(np.sum((edges[:-1] >= s) & (edges[:-1] < e))) for s, e in validation)
    assert n_validation_blocks == 3
    assert split_blocks(1003, 0.3, 10, seed=4) == (train, validation)
    # Ranges of one set never touch (adjacent blocks of a set are merged).
    for ranges in (train, validation):
        assert all(a[1] < b[0] for a, b in zip(ranges[:-1], ranges[1:]))


def test_split_blocks_edge_cases():
    assert split_blocks(50, validation_fraction=0.0, n_blocks=5) == ([(0, 50)], [])
    train, validation = split_blocks(50, validation_fraction=0.01, n_blocks=5, seed=1)
    assert len(validation) == 1 and validation[0][1] - validation[0][0] == 10
    with pytest.raises(ValueError, match="leaves no training block"):
        split_blocks(50, validation_fraction=0.95, n_blocks=5)
    with pytest.raises(ValueError, match=r"validation_fraction must be in \[0, 1\)"):
        split_blocks(50, validation_fraction=1.0)
    with pytest.raises(ValueError, match="n_blocks must be a positive integer"):
        split_blocks(50, n_blocks=0)


def test_windows_never_cross_split_boundaries():
    n_frames, window_frames, frame_step = 500, 5, 3
    positions = _labelled_positions(n_frames)
    train_ranges, validation_ranges = split_blocks(n_frames, 0.4, n_blocks=5, seed=2)
    train, validation = train_validation_datasets(positions, window_frames, stride=2, frame_step=frame_step,
                                                  validation_fraction=0.4, n_blocks=5, seed=2)
    for dataset, ranges in ((train, train_ranges), (validation, validation_ranges)):
        frames = dataset[np.arange(len(dataset))][:, :, 0, 0].numpy().astype(int)  # frame index of each entry
        np.testing.assert_array_equal(frames, frames[:, :1] + frame_step * np.arange(window_frames))
        inside = [any(start <= w[0] and w[-1] < stop for start, stop in ranges) for w in frames]
        assert all(inside)
        # Every window that fits in a range is present: count them independently.
        span = (window_frames - 1) * frame_step + 1
        assert len(dataset) == sum(len(range(start, stop - span + 1, 2)) for start, stop in ranges)


def test_ranges_window_starts_skips_short_ranges():
    starts = ranges_window_starts([(0, 3), (10, 20)], window_frames=4, stride=3)
    np.testing.assert_array_equal(starts, [10, 13, 16])
    with pytest.raises(ValueError, match="long enough for one window of 4 frames"):
        ranges_window_starts([(0, 3)], window_frames=4)
    np.testing.assert_array_equal(window_starts(10, 3, stride=4, offset=100), [100, 104])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_dataset_batches_cover_every_window_once_with_seeded_order(dtype):
    positions = _labelled_positions(60)
    data = WindowDataset.from_ranges(positions, [(0, 60)], window_frames=4, stride=1, frame_step=2, dtype=dtype)
    batches = list(data.batches(batch_size=16, seed=3))
    assert all(b.dtype == dtype and b.shape[1:] == (4, 3, 3) for b in batches)
    assert [b.shape[0] for b in batches] == [16, 16, 16, 6]
    starts = torch.cat([b[:, 0, 0, 0] for b in batches]).numpy().astype(int)
    assert sorted(starts.tolist()) == list(range(54))
    again = torch.cat([b[:, 0, 0, 0] for b in data.batches(batch_size=16, seed=3)]).numpy().astype(int)
    np.testing.assert_array_equal(starts, again)
    assert [b.shape[0] for b in data.batches(batch_size=16, seed=3, drop_last=True)] == [16, 16, 16]
    ordered = torch.cat(list(data.batches(batch_size=10, shuffle=False)))
    torch.testing.assert_close(ordered, torch.as_tensor(make_windows(positions, 4, 1, 2), dtype=dtype))
    torch.testing.assert_close(data.start_frames, torch.as_tensor(positions[:54], dtype=dtype))


def test_dataset_sample_and_validation():
    data = WindowDataset(_labelled_positions(20), starts=[0, 5, 9], window_frames=3, frame_step=5)
    windows, indices = data.sample(2, np.random.default_rng(0))
    assert windows.shape == (2, 3, 3, 3) and len(set(indices.tolist())) == 2
    for window, index in zip(windows, indices):
        assert window[:, 0, 0].tolist() == [data.starts[index] + 5 * j for j in range(3)]
    with pytest.raises(ValueError, match="windows must lie inside the 20 frames"):
        WindowDataset(_labelled_positions(20), starts=[10], window_frames=3, frame_step=5)
    with pytest.raises(ValueError, match="dtype must be"):
        WindowDataset(_labelled_positions(20), starts=[0], window_frames=3, dtype=torch.int64)


def test_frame_step_for_interval():
    assert frame_step_for_interval(0.5, 0.1) == 5
    with pytest.raises(ValueError, match="whole multiple"):
        frame_step_for_interval(0.25, 0.1)


def test_load_windows_from_a_mapped_file(tmp_path):
    import mdtraj

    top = mdtraj.Topology()
    residue = top.add_residue("CG", top.add_chain())
    for name in ("A", "B", "C"):
        top.add_atom(name, None, residue)
    positions = _labelled_positions(30) * 0.01
    meta = {"temperature_k": 300.0, "frame_interval_ps": 0.2, "bead_names": ["A", "B", "C"]}
    with trajio.TrajectoryWriter(tmp_path / "cg.h5", top, meta) as writer:
        writer.write(positions, 0.2 * np.arange(30))
    train, validation, metadata = load_windows(tmp_path / "cg.h5", window_frames=3, validation_fraction=0.2,
                                               n_blocks=5, seed=0)
    assert metadata["frame_interval_ps"] == 0.2
    train_ranges, validation_ranges = split_blocks(30, 0.2, 5, seed=0)
    expected = np.concatenate([make_windows(positions[a:b], 3) for a, b in validation_ranges])
    np.testing.assert_allclose(validation[np.arange(len(validation))].numpy(), expected, atol=1e-7)
    assert len(train) == sum(b - a - 2 for a, b in train_ranges)


# ------------------------------------------------------------------ several trajectories in one file

LENGTHS = [137, 300, 64, 9, 500]


def _trajectory_of_frame(lengths):
    """Which trajectory every frame belongs to, by counting frames one by one."""
    return np.array([k for k, n in enumerate(lengths) for _ in range(n)])


def _segments(lengths):
    segments, start = [], 0
    for n in lengths:
        segments.append((start, start + n))
        start += n
    return segments


@pytest.mark.parametrize("n_blocks, fraction, seed", [(5, 0.2, 0), (7, 0.3, 4), (3, 0.34, 1)])
def test_split_blocks_with_trajectories_never_span_a_boundary(n_blocks, fraction, seed):
    n_frames, owner = sum(LENGTHS), _trajectory_of_frame(LENGTHS)
    train, validation = split_blocks(n_frames, fraction, n_blocks, seed, segments=_segments(LENGTHS))
    for start, stop in train + validation:
        assert owner[start] == owner[stop - 1], (start, stop)
    # the frames of each set are those of the split without boundaries: only the cuts are new
    plain_train, plain_validation = split_blocks(n_frames, fraction, n_blocks, seed)
    for cut, plain in ((train, plain_train), (validation, plain_validation)):
        frames = np.concatenate([np.arange(a, b) for a, b in cut])
        np.testing.assert_array_equal(frames, np.concatenate([np.arange(a, b) for a, b in plain]))
    # a range ends exactly where a trajectory ends or where the set changes, nowhere else
    ends = set(np.cumsum(LENGTHS).tolist()) | {b for _, b in plain_train + plain_validation}
    assert {b for _, b in train + validation} <= ends


@pytest.mark.parametrize("window_frames, stride, frame_step", [(4, 1, 1), (5, 3, 2), (12, 1, 1)])
def test_windows_lie_in_one_trajectory_and_every_fitting_start_is_used(window_frames, stride, frame_step):
    n_frames, owner = sum(LENGTHS), _trajectory_of_frame(LENGTHS)
    positions = _labelled_positions(n_frames, n_beads=2)
    train, _ = split_blocks(n_frames, 0.3, 6, seed=3, segments=_segments(LENGTHS))
    data = WindowDataset.from_ranges(positions, train, window_frames, stride, frame_step,
                                     segments=_segments(LENGTHS))
    frames = data[np.arange(len(data))][:, :, 0, 0].numpy().astype(int)  # frame index of every window frame
    assert np.all(owner[frames] == owner[frames[:, :1]])
    # independent count: walk runs of frames with the same (set, trajectory) label and place starts by stride
    in_train = np.zeros(n_frames, dtype=bool)
    for a, b in train:
        in_train[a:b] = True
    span = (window_frames - 1) * frame_step + 1
    expected, frame = [], 0
    while frame < n_frames:
        end = frame
        while end < n_frames and in_train[end] == in_train[frame] and owner[end] == owner[frame]:
            end += 1
        if in_train[frame]:
            expected += list(range(frame, end - span + 1, stride))
        frame = end
    np.testing.assert_array_equal(data.starts, expected)


def test_window_dataset_refuses_windows_across_trajectories():
    positions = _labelled_positions(20)
    with pytest.raises(ValueError, match=r"windows starting at frames \[8\] span two trajectories"):
        WindowDataset(positions, [0, 8, 12], window_frames=3, segments=[(0, 10), (10, 20)])
    with pytest.raises(ValueError, match="segments must cover the 20 frames"):
        WindowDataset(positions, [0], window_frames=3, segments=[(0, 10), (10, 15)])
    with pytest.raises(ValueError, match="following each other from frame 0"):
        split_blocks(20, 0.2, 4, segments=[(0, 10), (12, 20)])


def _write_cg(path, positions, metadata):
    import mdtraj

    top = mdtraj.Topology()
    residue = top.add_residue("CG", top.add_chain())
    for name in ("A", "B", "C"):
        top.add_atom(name, None, residue)
    meta = {"temperature_k": 300.0, "frame_interval_ps": 0.2, "bead_names": ["A", "B", "C"], **metadata}
    with trajio.TrajectoryWriter(path, top, meta) as writer:
        writer.write(positions, 0.2 * np.arange(len(positions)))


def test_load_windows_of_a_file_with_several_trajectories(tmp_path):
    lengths = [40, 25, 35]
    positions, owner = _labelled_positions(100) * 0.01, _trajectory_of_frame(lengths)
    _write_cg(tmp_path / "runs.h5", positions, {"trajectory_lengths": lengths})
    _write_cg(tmp_path / "one.h5", positions, {})
    _write_cg(tmp_path / "one_listed.h5", positions, {"trajectory_lengths": [100]})
    train, validation, _ = load_windows(tmp_path / "runs.h5", window_frames=6, validation_fraction=0.3,
                                        n_blocks=4, seed=1)
    for data in (train, validation):
        frames = np.rint(data[np.arange(len(data))][:, :, 0, 0].numpy() * 100).astype(int)
        assert np.all(owner[frames] == owner[frames[:, :1]])
    # a file without the key, or with one trajectory listed, splits exactly as before
    expected_train, expected_validation = train_validation_datasets(positions, 6, validation_fraction=0.3, n_blocks=4,
                                                                    seed=1)
    for name in ("one.h5", "one_listed.h5"):
        got_train, got_validation, _ = load_windows(tmp_path / name, window_frames=6, validation_fraction=0.3,
                                                    n_blocks=4, seed=1)
        np.testing.assert_array_equal(got_train.starts, expected_train.starts)
        np.testing.assert_array_equal(got_validation.starts, expected_validation.starts)


def test_trajectory_segments_and_strided_loading(tmp_path):
    assert trajio.trajectory_segments({}, 12) == [(0, 12)]
    assert trajio.trajectory_segments({"trajectory_lengths": [5, 7]}, 12) == [(0, 5), (5, 12)]
    for bad in ([5, 6], [5, 0, 7], "12", [5.0, 7]):
        with pytest.raises(ValueError, match="trajectory_lengths must be a list of positive integers summing"):
            trajio.trajectory_segments({"trajectory_lengths": bad}, 12)
    lengths = [5, 7, 4, 9]
    _write_cg(tmp_path / "runs.h5", _labelled_positions(25) * 0.01, {"trajectory_lengths": lengths})
    owner = _trajectory_of_frame(lengths)
    for start, stop, stride in ((0, None, 3), (6, 20, 2), (0, 5, 1), (13, None, 4)):
        data = trajio.load(tmp_path / "runs.h5", stride=stride, start=start, stop=stop)
        kept = np.arange(25)[start:stop:stride]
        np.testing.assert_allclose(data.positions[:, 0, 0], kept * 0.01, atol=1e-6)
        expected = [int(np.sum(owner[kept] == k)) for k in range(len(lengths)) if np.any(owner[kept] == k)]
        assert data.metadata["trajectory_lengths"] == expected
        for a, b in data.segments:
            assert len(set(owner[kept[a:b]])) == 1
