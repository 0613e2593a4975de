"""Units and their stripping at the public boundary.

Inside the package everything is a plain float/array/tensor in nm, ps, amu (g/mol), kJ/mol, kJ/mol/nm and K.
``openmm.unit`` quantities are accepted at public functions and converted here; this module imports
``openmm.unit`` only when it is handed a quantity, so the training maths stays free of OpenMM.
"""
from __future__ import annotations

import numbers

BOLTZMANN_KJ_PER_MOL_K = 0.00831446261815324

_UNIT_NAMES = {
    "nm": "nanometer",
    "ps": "picosecond",
    "1/ps": "picosecond**-1",
    "K": "kelvin",
    "kJ/mol": "kilojoule_per_mole",
    "kJ/mol/nm": "kilojoule_per_mole/nanometer",
    "amu": "dalton",
    "ns": "nanosecond",
}


def kt_kj_per_mol(temperature_k: float) -> float:
    """Thermal energy ``k_B T`` in kJ/mol for a temperature in K."""
    return BOLTZMANN_KJ_PER_MOL_K * float(temperature_k)


def _openmm_unit(unit_key: str):
    from openmm import unit

    if unit_key == "1/ps":
        return unit.picosecond**-1
    if unit_key == "kJ/mol/nm":
        return unit.kilojoule_per_mole / unit.nanometer
    return getattr(unit, _UNIT_NAMES[unit_key])


def strip_unit(value, unit_key: str, name: str = "value"):
    """Return ``value`` as a plain number (or array) in the package unit ``unit_key``.

    Parameters
    ----------
    value : float, array or openmm.unit.Quantity
        A plain value is taken to be in ``unit_key`` already.
    unit_key : str
        One of ``nm``, ``ps``, ``ns``, ``1/ps``, ``K``, ``kJ/mol``, ``kJ/mol/nm``, ``amu``.
    name : str
        The argument's name, used in error messages.
    """
    if unit_key not in _UNIT_NAMES:
        raise ValueError(f"unknown unit '{unit_key}'; available: {sorted(_UNIT_NAMES)}")
    if hasattr(value, "value_in_unit"):
        try:
            return value.value_in_unit(_openmm_unit(unit_key))
        except TypeError as err:
            raise ValueError(f"{name}: expected a quantity compatible with {unit_key}, got {value}") from err
    return value


def positive_float(value, unit_key: str, name: str) -> float:
    """Strip the unit of a scalar and check it is a finite positive number."""
    number = strip_unit(value, unit_key, name)
    if not isinstance(number, numbers.Real) or not (number > 0) or number != number or number == float("inf"):
        raise ValueError(f"{name} must be a finite positive number in {unit_key}, got {value!r}")
    return float(number)
