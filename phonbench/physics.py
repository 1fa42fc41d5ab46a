"""Physical constants, unit conversions and phonon-DoS helpers.

Frequencies are in cm⁻¹ unless a name says otherwise (1 THz = 33.35641 cm⁻¹, 1 meV = 8.0655 cm⁻¹).
"""

from __future__ import annotations

import numpy as np

CM1_PER_THZ = 33.35641  #: cm⁻¹ per THz
CM1_PER_MEV = 8.065544  #: cm⁻¹ per meV
CM1_PER_EV = 8065.544  #: cm⁻¹ per eV
THZ_PER_CM1 = 1.0 / CM1_PER_THZ
K_B = 1.380649e-23  #: Boltzmann constant, J/K
H_PLANCK = 6.62607015e-34  #: Planck constant, J s
C_LIGHT_CM = 2.99792458e10  #: speed of light, cm/s
N_AVOGADRO = 6.02214076e23  #: 1/mol
R_GAS = K_B * N_AVOGADRO  #: J/(K mol)
AMU_KG = 1.66053906660e-27  #: kg per atomic mass unit
EV_J = 1.602176634e-19  #: J per eV
ANGSTROM_M = 1e-10

#: 51-point grid of Chen et al. 2021: 0, 20, ..., 1000 cm⁻¹
CHEN_GRID_CM1 = np.linspace(0.0, 1000.0, 51)


def thz_to_cm1(f: np.ndarray | float) -> np.ndarray | float:
    """THz → cm⁻¹."""
    return np.asarray(f) * CM1_PER_THZ


def cm1_to_thz(f: np.ndarray | float) -> np.ndarray | float:
    """cm⁻¹ → THz."""
    return np.asarray(f) / CM1_PER_THZ


def cm1_to_mev(f: np.ndarray | float) -> np.ndarray | float:
    """cm⁻¹ → meV."""
    return np.asarray(f) / CM1_PER_MEV
