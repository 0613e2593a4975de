"""Analysis maths against independent calculations: JS divergence, free energy, features, MSM timescales,
MSD/diffusion, autocorrelation, ROC-AUC, and the checks of ``compare``."""
import numpy as np
import pytest

from openmm_dynmatch import analysis, features, kinetics
from openmm_dynmatch.trajio import TrajectoryData


# ------------------------------------------------------------------------------------------ thermodynamics

def test_js_divergence_identical_disjoint_and_formula(rng):
    samples = rng.normal(size=5000)
    edges = analysis.shared_edges(samples, n_bins=40)
    assert analysis.js_divergence_samples(samples, samples.copy(), edges) == pytest.approx(0.0, abs=1e-15)
    edges = np.linspace(-10, 10, 41)
    disjoint = analysis.js_divergence_samples(rng.uniform(-9, -1, 3000), rng.uniform(1, 9, 2000), edges)
    assert disjoint == pytest.approx(np.log(2.0), abs=1e-12)
    # the definition written out for two small histograms
    p, q = np.array([1.0, 3.0, 0.0, 6.0]), np.array([2.0, 2.0, 4.0, 2.0])
    p_n, q_n = p / p.sum(), q / q.sum()
    m = 0.5 * (p_n + q_n)
    expected = 0.5 * sum(a * np.log(a / b) for a, b in zip(p_n, m) if a > 0) \
        + 0.5 * sum(a * np.log(a / b) for a, b in zip(q_n, m) if a > 0)
    assert analysis.js_divergence(p, q) == pytest.approx(expected, rel=1e-12)
    # a pseudo-count pulls disjoint histograms below log 2
    assert analysis.js_divergence([5, 0], [0, 5], pseudo_count=1.0) < np.log(2.0)
    with pytest.raises(ValueError, match="same bins"):
        analysis.js_divergence([1, 2], [1, 2, 3])


def test_free_energy_is_minus_kt_log_p():
    counts = np.array([[10.0, 0.0], [30.0, 60.0]])
    kt = 0.00831446261815324 * 300.0
    f = analysis.free_energy(counts, 300.0)
    assert np.isnan(f[0, 1])
    expected = -kt * np.log(np.array([10.0, 30.0, 60.0]) / 100.0)
    np.testing.assert_allclose(f[[0, 1, 1], [0, 0, 1]], expected - expected.min(), rtol=1e-12)
    with pytest.raises(ValueError, match="empty"):
        analysis.free_energy(np.zeros(3), 300.0)


def test_periodic_edges_and_2d_histogram(rng):
    x = rng.uniform(-np.pi, np.pi, size=(1000, 2))
    edges = analysis.shared_edges(x[:, 0], periodic=True, n_bins=12)
    assert edges[0] == -np.pi and edges[-1] == np.pi and len(edges) == 13
    counts = analysis.histogram(x, [edges, edges])
    assert counts.shape == (12, 12) and counts.sum() == 1000
    np.testing.assert_array_equal(counts, np.histogram2d(x[:, 0], x[:, 1], bins=[edges, edges])[0])


# ------------------------------------------------------------------------------------------------ features

def _ala2_topology():
    """ACE-ALA-NME heavy atoms (AMBER names) as an mdtraj topology."""
    import mdtraj

    top = mdtraj.Topology()
    chain = top.add_chain()
    spec = [("ACE", ["CH3", "C", "O"]), ("ALA", ["N", "CA", "CB", "C", "O"]), ("NME", ["N", "C"])]
    for resname, names in spec:
        residue = top.add_residue(resname, chain)
        for name in names:
            top.add_atom(name, mdtraj.element.get_by_symbol(name[0]), residue)
    atoms = list(top.atoms)
    for i, j in [(0, 1), (1, 2), (1, 3), (3, 4), (4, 5), (4, 6), (6, 7), (6, 8), (8, 9)]:
        top.add_bond(atoms[i], atoms[j])
    return top


def test_phi_psi_from_beads_equal_mdtraj(rng):
    import mdtraj

    from openmm_dynmatch.mapping import load_mapping

    top = _ala2_topology()
    aa = mdtraj.Trajectory(rng.normal(scale=0.3, size=(50, top.n_atoms, 3)), top)
    mapping = load_mapping("ala2-heavy10", top)
    cg_positions = mapping.map_positions(aa.xyz.astype(np.float64))
    expected_phi = mdtraj.compute_phi(aa)[1][:, 0]
    expected_psi = mdtraj.compute_psi(aa)[1][:, 0]
    sources = [dict(topology=mapping.cg_topology()), dict(mapping_spec=mapping.to_dict())]
    for source in sources:
        beads = features.find_backbone_beads(mapping.bead_names, **source)
        phi_psi = features.backbone_phi_psi(cg_positions, beads)
        np.testing.assert_allclose(phi_psi[:, 0], expected_phi, atol=1e-5)
        np.testing.assert_allclose(phi_psi[:, 1], expected_psi, atol=1e-5)
    # token matching of self-describing bead names; plain names are ambiguous
    names = ["ACE1-C", "ALA2-N", "ALA2-CA", "ALA2-C", "NME3-N"]
    assert features.find_backbone_beads(names) == {"C_ace": 0, "N": 1, "CA": 2, "C": 3, "N_nme": 4}
    with pytest.raises(ValueError, match="exactly one bead"):
        features.find_backbone_beads(["C", "N", "CA", "C", "N"])


def test_generic_features_against_formulas_and_mdtraj(rng):
    import mdtraj

    positions = rng.normal(size=(20, 6, 3))
    top = mdtraj.Topology()
    residue = top.add_residue("CG", top.add_chain())
    for i in range(6):
        top.add_atom(f"B{i}", None, residue)
    traj = mdtraj.Trajectory(positions, top)
    quads = [[0, 1, 2, 3], [5, 3, 1, 0]]
    np.testing.assert_allclose(features.dihedrals(positions, quads), mdtraj.compute_dihedrals(traj, quads),
                               atol=1e-5)
    a, b, c = positions[:, 0], positions[:, 2], positions[:, 4]
    u, v = a - b, c - b
    expected = np.arccos(np.sum(u * v, 1) / np.linalg.norm(u, axis=1) / np.linalg.norm(v, axis=1))
    np.testing.assert_allclose(features.angles(positions, [[0, 2, 4]])[:, 0], expected, rtol=1e-12)
    np.testing.assert_allclose(features.distances(positions, [[1, 5]])[:, 0],
                               np.sqrt(np.sum((positions[:, 5] - positions[:, 1]) ** 2, 1)), rtol=1e-12)
    # a branched bond graph: 0-1-2-3 with 4 on 1
    terms = features.bond_graph_terms([[0, 1], [1, 2], [2, 3], [1, 4]], 5)
    assert {tuple(t) for t in terms["angles"]} == {(0, 1, 2), (0, 1, 4), (2, 1, 4), (1, 2, 3)}
    assert {tuple(t) for t in terms["dihedrals"]} == {(0, 1, 2, 3), (3, 2, 1, 4)}
    with pytest.raises(ValueError, match="index beads"):
        features.distances(positions, [[0, 6]])


def test_coordinate_msd_equals_a_loop_over_frame_pairs_and_wraps_dihedrals(rng):
    positions = np.cumsum(rng.normal(scale=0.05, size=(30, 5, 3)), axis=0) + np.arange(5)[None, :, None] * 0.15
    terms = features.bond_graph_terms([[0, 1], [1, 2], [2, 3], [1, 4]], 5)
    lags = [1, 4, 29, 30]
    result = features.coordinate_msd(positions, terms, lags)
    for kind, function in (("bonds", features.distances), ("angles", features.angles),
                           ("dihedrals", features.dihedrals)):
        values = function(positions, terms[kind])
        for row, lag in enumerate(lags[:3]):
            changes = []
            for t in range(len(positions) - lag):
                change = values[t + lag] - values[t]
                if kind == "dihedrals":
                    change = np.arctan2(np.sin(change), np.cos(change))
                changes.append(change ** 2)
            np.testing.assert_allclose(result[kind][row], np.mean(changes, axis=0), rtol=1e-10, atol=1e-15)
        assert np.all(np.isnan(result[kind][3]))  # a lag as long as the trajectory has no frame pair
    # a torsion stepping from +179 to -179 degrees moved 2 degrees, not 358
    angle = np.radians([179.0, -179.0])
    quad = np.zeros((2, 4, 3))
    quad[:, 0] = [1.0, 0.0, 0.0]
    quad[:, 2] = [0.0, 0.0, 1.0]
    quad[:, 3] = np.stack([np.cos(angle), np.sin(angle), np.ones(2)], axis=1)
    torsion = features.coordinate_msd(quad, {"dihedrals": [[0, 1, 2, 3]]}, [1])["dihedrals"]
    np.testing.assert_allclose(torsion, np.radians(2.0) ** 2, rtol=1e-9)
    with pytest.raises(ValueError, match="lags"):
        features.coordinate_msd(positions, terms, [0])


def test_tica_finds_the_slow_coordinate(rng):
    n = 4000
    slow = np.zeros(n)
    for t in range(1, n):
        slow[t] = 0.99 * slow[t - 1] + rng.normal()
    fast = rng.normal(size=(n, 2)) * 10.0
    mixed = np.column_stack([fast[:, 0] + slow, fast[:, 1], slow - fast[:, 0]])
    out = features.tica_project(mixed, [mixed[:2000]], lagtime=5, dim=2)
    assert abs(np.corrcoef(out["aa"][0][:, 0], slow)[0, 1]) > 0.95
    np.testing.assert_allclose(out["cg"][0], out["aa"][0][:2000], atol=1e-10)


# ------------------------------------------------------------------------------------------------ kinetics

def test_implied_timescale_of_two_state_chain(rng):
    p, q, dt = 0.02, 0.05, 0.1
    dwell = np.stack([rng.geometric(p, 1500), rng.geometric(q, 1500)], axis=1).reshape(-1)
    chain = np.repeat(np.tile([0, 1], 1500), dwell)
    lags = [1, 4, 10]
    its = kinetics.implied_timescales(chain, lags, dt, n_timescales=1, n_bootstrap=8, n_blocks=8, seed=3)
    for j, lag in enumerate(lags):
        eigenvalue = (1.0 - p - q) ** lag  # second eigenvalue of T^lag
        exact = -lag * dt / np.log(eigenvalue)
        estimate = its["timescales_ps"][j, 0]
        assert abs(estimate - exact) < 0.1 * exact
        assert abs(estimate - exact) < 4.0 * its["std_ps"][j, 0] + 0.03 * exact
    np.testing.assert_allclose(its["lags_ps"], np.array(lags) * dt)


@pytest.mark.parametrize("method", ["kmeans", "regspace"])
def test_discretize_assigns_cg_to_nearest_aa_centre(rng, method):
    centres = np.array([[0.0, 0.0], [5.0, 0.0], [0.0, 5.0]])
    aa = centres[rng.integers(0, 3, 600)] + 0.2 * rng.normal(size=(600, 2))
    cg = rng.uniform(-1, 6, size=(200, 2))
    states = kinetics.discretize(aa, cg, n_clusters=3, method=method, dmin=2.0, seed=1)
    assert len(states["centers"]) == 3
    nearest = np.argmin(np.linalg.norm(cg[:, None] - states["centers"][None], axis=2), axis=1)
    np.testing.assert_array_equal(states["cg"], nearest)
    with pytest.raises(ValueError, match="unknown clustering method"):
        kinetics.discretize(aa, cg, method="dbscan")


def test_msd_of_free_brownian_particles(rng):
    diffusion, dt, n_frames, n_particles = 0.3, 0.01, 20000, 8
    steps = rng.normal(scale=np.sqrt(2 * diffusion * dt), size=(n_frames, n_particles, 3))
    positions = np.cumsum(steps, axis=0)
    msd = kinetics.mean_squared_displacement(positions, dt, max_lag=100)
    d_beads = kinetics.diffusion_coefficient(msd["time_ps"], msd["msd_nm2"])
    np.testing.assert_allclose(d_beads.mean(), diffusion, rtol=0.05)
    np.testing.assert_allclose(d_beads, diffusion, rtol=0.15)
    # the centre of mass of N independent particles diffuses N times slower
    d_com = kinetics.diffusion_coefficient(msd["time_ps"], msd["msd_com_nm2"])
    assert d_com == pytest.approx(diffusion / n_particles, rel=0.15)
    # beads relative to the COM: <|x_i - X|^2> grows with (1 - 1/N) of the free rate
    internal = kinetics.mean_squared_displacement(positions, dt, max_lag=100, remove_com=True)
    d_internal = kinetics.diffusion_coefficient(internal["time_ps"], internal["msd_nm2"])
    assert d_internal.mean() == pytest.approx(diffusion * (1 - 1 / n_particles), rel=0.05)


def test_squared_displacements_equal_the_sum_over_origins(rng):
    """The FFT form against the mean over time origins written out, on a drifting walk far from the origin (the
    mean removal keeps the cancellation of the running sums small), for the shortest and the longest lag."""
    x = np.cumsum(rng.normal(size=(3001, 4)), axis=0) + 40.0
    lags = np.array([1, 2, 5, 64, 1000, 3000])
    direct = np.array([np.mean((x[m:] - x[:-m]) ** 2, axis=0) for m in lags])
    np.testing.assert_allclose(kinetics.squared_displacements(x, lags), direct, rtol=1e-9)
    with pytest.raises(ValueError, match=r"lags must lie in \[1, 3000\]"):
        kinetics.squared_displacements(x, [0, 3])


def test_acf_of_ar1_process(rng):
    phi, n = 0.9, 200000
    noise = rng.normal(size=n)
    x = np.empty(n)
    x[0] = noise[0] / np.sqrt(1 - phi ** 2)
    for t in range(1, n):
        x[t] = phi * x[t - 1] + noise[t]
    acf = kinetics.autocorrelation(x, max_lag=60)
    assert acf[0] == 1.0
    np.testing.assert_allclose(acf[:31], phi ** np.arange(31), atol=0.03)
    # direct estimator written out for one lag
    centred = x - x.mean()
    direct = np.mean(centred[7:] * centred[:-7]) / np.mean(centred ** 2)
    assert acf[7] == pytest.approx(direct, abs=1e-3)
    # trapezoidal integral of phi^k over all k: 1/(1 - phi) - 1/2 frames
    dt = 0.2
    assert kinetics.integrated_time(acf, dt) == pytest.approx(dt * (1 / (1 - phi) - 0.5), rel=0.15)


def test_roc_auc_equals_pair_counting(rng):
    scores = rng.integers(0, 5, size=60).astype(float)  # many ties
    labels = rng.integers(0, 2, size=60)
    pos, neg = scores[labels == 1], scores[labels == 0]
    pairs = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    assert kinetics.roc_auc(scores, labels) == pytest.approx(pairs / (len(pos) * len(neg)), rel=1e-12)
    assert kinetics.roc_auc([0.1, 0.2, 0.8, 0.9], [0, 0, 1, 1]) == 1.0
    assert analysis.roc_auc([0.9, 0.8, 0.2, 0.1], [0, 0, 1, 1]) == 0.0
    with pytest.raises(ValueError, match="both classes"):
        kinetics.roc_auc([0.1, 0.2], [1, 1])


# ------------------------------------------------------------------------------------------ compare checks

def _data(positions, dt=0.5, names=None):
    n_beads = len(names) if names else positions.shape[1]
    metadata = {"temperature_k": 300.0, "frame_interval_ps": dt, "bead_names": names or
                [f"B{i}" for i in range(n_beads)], "bonds": [[i, i + 1] for i in range(n_beads - 1)]}
    return TrajectoryData(positions, np.arange(len(positions)) * dt, None, metadata)


def test_compare_splits_walkers_and_handles_constant_bonds(rng):
    aa_positions = np.cumsum(rng.normal(scale=0.05, size=(400, 4, 3)), axis=0)
    walkers = [np.cumsum(rng.normal(scale=0.05, size=(200, 4, 3)), axis=0) for _ in range(2)]
    walkers[1][:, 1] = walkers[1][:, 0] + [0.15, 0.0, 0.0]  # one rigid bond
    kwargs = dict(lags=[1, 3], n_clusters=5, n_bootstrap=2, n_bins=15, backbone=None)
    joined = analysis.compare(_data(aa_positions), _data(np.concatenate(walkers, axis=1), names=[
        f"B{i}" for i in range(4)]), **kwargs)
    separate = analysis.compare(_data(aa_positions), [_data(w) for w in walkers], **kwargs)
    assert joined["info"]["n_trajectories_cg"] == 2
    assert joined == separate
    assert all(np.isfinite(np.asarray(d, dtype=float)).all() for d in joined["bonds"]["bond_density"]["cg"])


def test_compare_rejects_mismatched_inputs(rng):
    aa = _data(rng.normal(size=(100, 4, 3)))
    with pytest.raises(ValueError, match="frame intervals differ"):
        analysis.compare(aa, _data(rng.normal(size=(100, 4, 3)), dt=1.0))
    with pytest.raises(ValueError, match="bead_names"):
        analysis.compare(aa, _data(rng.normal(size=(100, 5, 3))))
    with pytest.raises(ValueError, match="multiple of 4 beads"):
        analysis.compare(aa, _data(rng.normal(size=(100, 6, 3)), names=[f"B{i}" for i in range(4)]))


def test_compare_treats_each_run_of_a_file_as_its_own_trajectory(rng):
    """A file of two runs one after the other (``trajectory_lengths``, clocks restarting) compares exactly like
    the two runs given separately: TICA, MSM counts, cores, MSD and ACF never join them."""
    runs = [np.cumsum(rng.normal(scale=0.05, size=(n, 4, 3)), axis=0) for n in (300, 200)]
    cg = _data(np.cumsum(rng.normal(scale=0.05, size=(400, 4, 3)), axis=0))
    kwargs = dict(lags=[1, 3], n_clusters=5, n_bootstrap=2, n_bins=15, backbone=None)
    joined = _data(np.concatenate(runs))
    joined.metadata["trajectory_lengths"] = [300, 200]
    joined.time_ps = np.concatenate([np.arange(300), np.arange(200)]) * 0.5
    together = analysis.compare(joined, cg, **kwargs)
    separate = analysis.compare([_data(x) for x in runs], cg, **kwargs)
    assert together["info"]["n_trajectories_aa"] == 2 and together["info"]["frame_interval_ps"] == 0.5
    assert together == separate
    # without the key the same frames are one trajectory, and the MSD then spans the jump between the runs
    joined.metadata.pop("trajectory_lengths")
    as_one = analysis.compare(joined, cg, **kwargs)
    assert as_one["info"]["n_trajectories_aa"] == 1 and as_one["msd"] != together["msd"]
