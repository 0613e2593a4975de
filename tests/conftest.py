"""Shared, tiny, seeded fixtures and the one tolerance table of the test suite."""
import numpy as np
import pytest
import torch

# Tolerances by dtype, for torch.testing.assert_close / np.testing.assert_allclose.
TOLERANCES = {
    torch.float64: {"rtol": 1e-9, "atol": 1e-9},
    torch.float32: {"rtol": 1e-4, "atol": 1e-4},
}


def tolerance(dtype) -> dict:
    """rtol/atol for comparing values of ``dtype`` (torch or numpy dtype)."""
    if isinstance(dtype, np.dtype) or dtype in (np.float32, np.float64):
        dtype = torch.float64 if np.dtype(dtype) == np.float64 else torch.float32
    return TOLERANCES[dtype]


def pytest_collection_modifyitems(config, items):
    """Mark every test that is not ``integration`` as ``unit`` (markers: pytest.ini)."""
    for item in items:
        if item.get_closest_marker("integration") is None:
            item.add_marker(pytest.mark.unit)


@pytest.fixture(autouse=True)
def _seed_everything():
    torch.manual_seed(1234)
    np.random.seed(1234)
    yield


@pytest.fixture
def one_thread():
    """One torch thread for the test (small tensors: one thread beats two contending ones)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def rng():
    return np.random.default_rng(20261125)


def available_platforms():
    """Names of the OpenMM platforms present on this machine."""
    import openmm

    return [openmm.Platform.getPlatform(i).getName() for i in range(openmm.Platform.getNumPlatforms())]
