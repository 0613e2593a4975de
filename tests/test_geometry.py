"""Difference vectors by one matrix product against the direct subtraction; the vector forms of the internal
coordinates against their index forms."""
import numpy as np
import pytest
import torch

from openmm_dynmatch.models.geometry import (angle_cos, angle_cos_from_vectors, difference_matrix, differences,
                                             dihedral_cos_sin, dihedral_cos_sin_from_vectors, tuple_differences)
from openmm_dynmatch.models.graph import angle_triplets, dihedral_quadruplets, pair_index

# alanine dipeptide's ten heavy-atom beads: the backbone chain 0-1-3-4-6-8-9 with O on 1 and 6, CB on 4
BONDS = np.array([[0, 1], [1, 2], [1, 3], [3, 4], [4, 5], [4, 6], [6, 7], [6, 8], [8, 9]])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_differences_equal_the_direct_subtraction_exactly(rng, dtype):
    """Each row adds one position and subtracts one: the product must round exactly as ``x[h] - x[t]`` does."""
    heads, tails = rng.integers(0, 10, 40), rng.integers(0, 10, 40)
    keep = heads != tails
    heads, tails = heads[keep], tails[keep]
    x = torch.as_tensor(rng.normal(scale=0.7, size=(33, 10, 3)), dtype=dtype)
    got = differences(x, difference_matrix(10, heads, tails, dtype))
    assert got.dtype == dtype and got.shape == (33, len(heads), 3)
    assert torch.equal(got, x[:, heads] - x[:, tails])


def test_gradient_through_differences_equals_the_gather_gradient(rng):
    """d/dx of a function of the vectors: scattering back by the transposed matrix vs by indexing."""
    heads, tails = np.array([1, 2, 3, 0, 4, 4]), np.array([0, 1, 2, 3, 0, 2])
    x = torch.as_tensor(rng.normal(size=(5, 5, 3)))
    weights = torch.as_tensor(rng.normal(size=(len(heads), 3)))

    def gradient(vectors_of):
        xx = x.clone().requires_grad_(True)
        energy = (torch.sin(vectors_of(xx)) * weights).sum()
        return torch.autograd.grad(energy, xx)[0]

    by_matrix = gradient(lambda xx: differences(xx, difference_matrix(5, heads, tails)))
    by_index = gradient(lambda xx: xx[:, heads] - xx[:, tails])
    torch.testing.assert_close(by_matrix, by_index, rtol=1e-13, atol=1e-13)


def test_tuple_blocks_give_the_index_forms_of_angles_and_dihedrals(rng):
    pairs, angles, dihedrals = pair_index(10), angle_triplets(10, BONDS), dihedral_quadruplets(10, BONDS)
    x = torch.as_tensor(rng.normal(scale=0.3, size=(7, 10, 3)))
    p, a, d = pairs.shape[1], len(angles), len(dihedrals)
    blocks = torch.split(differences(x, tuple_differences(10, pairs, angles, dihedrals)), [p, a, a, d, d, d], 1)
    assert torch.equal(blocks[0], x[:, pairs[1]] - x[:, pairs[0]])
    assert torch.equal(angle_cos_from_vectors(blocks[1], blocks[2]), angle_cos(x, torch.as_tensor(angles)))
    assert torch.equal(dihedral_cos_sin_from_vectors(*blocks[3:]), dihedral_cos_sin(x, torch.as_tensor(dihedrals)))


def test_difference_matrix_rows_by_hand():
    expected = [[-1.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, -1.0]]
    assert difference_matrix(4, [1, 2], [0, 3]).tolist() == expected


@pytest.mark.parametrize("heads, tails, message", [
    ([0, 1], [1], "same length"),
    ([0, 4], [1, 2], r"in \[0, 4\)"),
    ([-1], [2], r"in \[0, 4\)"),
    ([2], [2], "two different beads"),
])
def test_difference_matrix_rejects_bad_indices(heads, tails, message):
    with pytest.raises(ValueError, match=message):
        difference_matrix(4, heads, tails)
