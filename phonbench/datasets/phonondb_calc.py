"""Per-material phonon calculations for the phonondb build: archives in, target arrays out.

One archive of Togo's phonon database (``materials-id-<n>-<name>.tar.lzma``) holds a directory
``mp-<n>-20180417/`` with ``POSCAR-unitcell``, ``FORCE_SETS``, ``phonopy.conf`` (``DIM`` and, for
non-primitive unit cells, ``PRIMITIVE_AXIS``) and, for insulators, ``BORN``. Archives are read
from memory (:func:`read_archive`); nothing is unpacked to disk. :func:`compute_material` runs
phonopy on one archive and returns the arrays cached per material by
:mod:`phonbench.datasets.phonondb_build`.

Conventions: the phonopy *primitive* cell (``PRIMITIVE_AXIS`` applied to ``POSCAR-unitcell``) is
the cell of every target; N is its number of atoms. VASP units (eV/Å forces, THz frequencies).
"""

from __future__ import annotations

import io
import lzma
import re
import tarfile
import time
import warnings
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np

from phonbench.exceptions import DataError
from phonbench.physics import CM1_PER_THZ, chen_dos_target, dos_integral

VERSION = "20180417"
#: bump when a change here changes cached results (part of the cache settings)
CALC_VERSION = 3
REQUIRED_FILES = ("POSCAR-unitcell", "FORCE_SETS", "phonopy.conf")
OPTIONAL_FILES = ("BORN",)
#: default phonopy mesh length (Å); see docs/benchmarks/phonondb_mesh.md for the convergence check
MESH_LENGTH = 60.0
#: LO–TO direction of the Γ modes: reduced coordinates of the primitive reciprocal lattice (a*)
NAC_Q_DIRECTION = (1.0, 0.0, 0.0)
#: directions whose spread of Γ frequencies is kept as ``lo_to_spread``
LO_TO_DIRECTIONS = ((1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0), (1.0, 1.0, 1.0))
THERMO_T_K = 300.0
#: grid padding in cm⁻¹ below min(0, ω_min) and above ω_max (> half the 101-point smoothing window)
DOS_PAD_LOW_CM1, DOS_PAD_HIGH_CM1 = 5, 55
#: bands per call of phonopy's tetrahedron accumulator (see :func:`integrated_dos`)
BAND_CHUNK = 4
_DIR_RE = re.compile(r"(mp-\d+)-(\d{8})")


@dataclass(frozen=True)
class Archive:
    """Text files of one phonondb material.

    Attributes:
        mp_id: Materials Project id, e.g. ``"mp-1000"``.
        version: database version from the directory name (``"20180417"``).
        files: ``{file name: text}`` of the required and optional files present.
    """

    mp_id: str
    version: str
    files: dict[str, str]


def read_archive(blob: bytes, name: str = "archive") -> Archive:
    """Parse the bytes of one ``.tar.lzma`` archive in memory.

    Args:
        blob: the compressed archive.
        name: archive name used in error messages.

    Raises:
        DataError: not an lzma tar, not exactly one ``mp-<n>-<date>`` directory, or a required
            file missing.
    """
    try:
        with tarfile.open(fileobj=io.BytesIO(lzma.decompress(blob))) as tf:
            members = [m for m in tf.getmembers() if m.isfile()]
            files, dirs = {}, set()
            for m in members:
                top, _, base = m.name.partition("/")
                dirs.add(top)
                if base in REQUIRED_FILES + OPTIONAL_FILES:
                    files[base] = tf.extractfile(m).read().decode("utf-8")  # type: ignore[union-attr]
    except (lzma.LZMAError, tarfile.TarError, EOFError, UnicodeDecodeError) as err:
        raise DataError(f"{name}: unreadable archive ({err})", "re-fetch the phonondb mirror") from err
    match = _DIR_RE.fullmatch(dirs.pop()) if len(dirs) == 1 else None
    if match is None:
        raise DataError(f"{name}: expected one mp-<n>-<date> directory, found {sorted(dirs)}")
    missing = [f for f in REQUIRED_FILES if f not in files]
    if missing:
        raise DataError(f"{name}: missing {', '.join(missing)}", "skip the material")
    return Archive(match.group(1), match.group(2), files)


def parse_conf(text: str) -> tuple[np.ndarray, np.ndarray]:
    """``(supercell_matrix (3, 3) int, primitive_matrix (3, 3) float)`` from ``phonopy.conf``.

    ``DIM`` has 3 (diagonal) or 9 integers; ``PRIMITIVE_AXIS`` 9 numbers or fractions (identity
    when absent).

    Raises:
        DataError: ``DIM`` missing or either tag malformed.
    """
    tags = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            tags[key.strip().upper()] = value.split()
    try:
        dim = [int(x) for x in tags["DIM"]]
        smat = np.diag(dim) if len(dim) == 3 else np.array(dim).reshape(3, 3)
        axis = tags.get("PRIMITIVE_AXIS", ["1", "0", "0", "0", "1", "0", "0", "0", "1"])
        pmat = np.array([float(Fraction(x)) for x in axis]).reshape(3, 3)
    except (KeyError, ValueError, ZeroDivisionError) as err:
        raise DataError(f"phonopy.conf: bad or missing DIM/PRIMITIVE_AXIS ({err!r})") from err
    if round(abs(np.linalg.det(smat))) < 1 or abs(np.linalg.det(pmat)) < 1e-6:
        raise DataError("phonopy.conf: singular DIM or PRIMITIVE_AXIS")
    return smat.astype(np.int64), pmat


def load_phonopy(archive: Archive) -> Any:
    """A ``phonopy.Phonopy`` with force constants (compact, symmetrised) and NAC when BORN exists.

    Mirrors ``phonopy.load`` defaults: finite-difference (traditional) force constants, symmetrised
    with the symfc projector, which imposes the space group, translational and permutation
    symmetry together, so the three Γ acoustic modes are zero. (The cheaper traditional
    symmetrisation applies them one after the other and leaves acoustic modes of up to 0.06 THz,
    e.g. mp-3635, or 6 THz in mp-12266.) All files are read from memory.

    Raises:
        DataError: a file does not parse or its atom count does not match the cells.
    """
    import phonopy
    from phonopy.file_IO import parse_BORN_from_strings, parse_FORCE_SETS_from_strings
    from phonopy.interface.calculator import get_calculator_physical_units
    from phonopy.interface.vasp import read_vasp_from_strings

    smat, pmat = parse_conf(archive.files["phonopy.conf"])
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            unitcell = read_vasp_from_strings(archive.files["POSCAR-unitcell"])
            ph = phonopy.load(unitcell=unitcell, supercell_matrix=smat, primitive_matrix=pmat,
                              produce_fc=False, is_nac=False, log_level=0)
            ph.dataset = parse_FORCE_SETS_from_strings(archive.files["FORCE_SETS"], natom=len(ph.supercell))
            if "BORN" in archive.files:
                nac = dict(parse_BORN_from_strings(archive.files["BORN"], ph.primitive))
                nac["factor"] = get_calculator_physical_units("vasp").nac_factor
                ph.nac_params = nac
            ph.produce_force_constants(calculate_full_force_constants=False, show_drift=False)
            ph.symmetrize_force_constants(show_drift=False, use_symfc_projector=True)
    except Exception as err:  # phonopy raises many types (ValueError, RuntimeError, its own)
        msg = " ".join(f"{type(err).__name__}: {err}".split())[:160]
        raise DataError(f"{archive.mp_id}: phonopy could not load the files ({msg})") from err
    return ph


def gamma_modes(ph: Any) -> tuple[np.ndarray, float, float]:
    """Γ frequencies with NAC along :data:`NAC_Q_DIRECTION`, their LO–TO spread and splitting.

    Returns:
        ``(modes (3N,) THz sorted descending, spread, splitting)``: ``spread`` (THz) is the largest
        change of any sorted mode between the :data:`LO_TO_DIRECTIONS`, ``splitting`` (THz) the
        largest change between ``modes`` and the analytic (no-NAC, TO-only) Γ modes; both 0
        without BORN.
    """
    def at_gamma(direction: Any) -> np.ndarray:
        ph.run_qpoints([[0.0, 0.0, 0.0]], nac_q_direction=direction)
        return np.sort(ph.qpoints.frequencies[0])[::-1]

    if not ph.nac_params:
        return at_gamma(None), 0.0, 0.0
    sets = np.array([at_gamma(d) for d in LO_TO_DIRECTIONS])
    splitting = float(np.abs(sets[0] - at_gamma(None)).max())
    return sets[0], float(np.abs(sets - sets[0]).max()), splitting


def integrated_dos(m: Any, freqs: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Tetrahedron-method integrated DoS N(ω) (states per cell) at ``edges``.

    phonopy's ``TetrahedronDOSAccumulator`` evaluates every band at every sampling point; here it
    is called on :data:`BAND_CHUNK` bands at a time with only the edges inside their frequency
    range (N of those bands is 0 below and their count above it). Same result to ~1e-13, and
    10–40 times faster for cells with many narrow bands.

    Args:
        m: phonopy ``Mesh`` (after ``run_mesh``).
        freqs: ``(n_irr_q, 3N)`` mesh frequencies (any unit, that of ``edges``).
        edges: ``(n_edges,)`` increasing sampling points.

    Returns:
        ``(n_edges,)`` N(edges).
    """
    from phonopy.phonon.spectrum import TetrahedronDOSAccumulator

    cumulative = np.zeros(len(edges))
    for b0 in range(0, freqs.shape[1], BAND_CHUNK):
        chunk = np.ascontiguousarray(freqs[:, b0:b0 + BAND_CHUNK])
        i = int(np.searchsorted(edges, chunk.min(), "right"))
        j = int(np.searchsorted(edges, chunk.max(), "left"))
        if j > i:
            acc = TetrahedronDOSAccumulator(chunk, m.bz_grid, ir_grid_points=m.ir_grid_points,
                                            ir_grid_weights=m.weights, ir_grid_map=m.grid_mapping_table,
                                            sampling_points=edges[i:j])
            cumulative[i:j] += acc.result.cumulative[0, :, 0]
        cumulative[j:] += chunk.shape[1]
    return cumulative


def mesh_dos(ph: Any, mesh: float | tuple[int, int, int]) -> dict[str, Any]:
    """Gamma-centred symmetric mesh, tetrahedron total DoS in 1 cm⁻¹ bins, thermo at 300 K.

    The DoS value at integer ω_k is the tetrahedron-method integrated DoS N(ω) differenced over
    the bin [ω_k − ½, ω_k + ½] cm⁻¹ (phonopy ``TetrahedronDOSAccumulator``), i.e. the DoS averaged
    over the bin (:func:`integrated_dos`): it sums to exactly 3N, however narrow the peaks are.
    Thermal properties use phonopy's mesh sums with the three Γ acoustic modes excluded.

    Args:
        ph: loaded phonopy object.
        mesh: phonopy mesh length (Å) or three mesh numbers.

    Returns:
        dict with ``dos_start`` (int, cm⁻¹ of the first grid point), ``dos`` ``(n,)`` float64 in
        states/(cm⁻¹·primitive cell) on ``dos_start + arange(n)``, ``f_min``/``f_max`` (cm⁻¹ over
        the mesh), ``mesh`` ``(3,)`` numbers, ``n_irr_q``, and ``cv``/``s``/``f`` at 300 K per
        primitive cell (J/(K·mol), J/(K·mol), kJ/mol).
    """
    with warnings.catch_warnings():  # phonopy notes when it switches to a generalized regular grid
        warnings.simplefilter("ignore")
        ph.run_mesh(mesh, is_gamma_center=True, is_mesh_symmetry=True)
    m = ph.mesh
    freqs = m.frequencies * CM1_PER_THZ
    f_min, f_max = float(freqs.min()), float(freqs.max())
    lo = int(np.floor(min(0.0, f_min))) - DOS_PAD_LOW_CM1
    hi = int(np.ceil(f_max)) + DOS_PAD_HIGH_CM1
    dos = np.diff(integrated_dos(m, freqs, np.arange(lo, hi + 2, dtype=np.float64) - 0.5))
    ph.run_thermal_properties(temperatures=[THERMO_T_K], exclude_gamma_acoustic=True)
    tp = ph.thermal_properties
    return {
        "dos_start": lo,
        "dos": dos,
        "f_min": f_min,
        "f_max": f_max,
        "mesh": np.asarray(m.mesh_numbers, dtype=np.int64),
        "n_irr_q": len(m.qpoints),
        "cv": float(tp.heat_capacity[0]),
        "s": float(tp.entropy[0]),
        "f": float(tp.free_energy[0]),
    }


def dos_target(dos_start: int, dos: np.ndarray) -> tuple[np.ndarray, float]:
    """The ``dos`` dataset's 51-point target (:func:`phonbench.physics.chen_dos_target`).

    Args:
        dos_start: first grid point (cm⁻¹); the grid is ``dos_start + arange(len(dos))``.
        dos: ``(n,)`` DoS in states/(cm⁻¹·cell).

    Returns:
        ``(target (51,), scale)`` with ``scale`` in states/(cm⁻¹·cell).
    """
    freqs = dos_start + np.arange(len(dos), dtype=np.float64)
    return chen_dos_target(freqs, dos)


def compute_material(archive: Archive, mesh: float | tuple[int, int, int] = MESH_LENGTH) -> dict[str, np.ndarray]:
    """All cached arrays of one material (see :mod:`phonbench.datasets.phonondb_build`).

    Returns:
        ``{name: array}``: structure (``lattice`` (3, 3) Å, ``numbers`` (N,), ``frac_coords``
        (N, 3)), ``dos_start``, ``dos`` (float32, states/(cm⁻¹·cell)), ``dos51`` (51,),
        ``dos_scale``, ``dos_norm`` (∫dos dω over the 1 cm⁻¹ grid, ≈ 3N), ``gamma`` (3N,) THz,
        ``lo_to_spread`` and ``lo_to_splitting`` THz, ``has_born``, ``cv``/``s`` J/(K·mol-atoms), ``f`` kJ/(mol-atoms),
        ``omega_max`` cm⁻¹, ``omega_min`` cm⁻¹, ``mesh`` (3,), ``n_irr_q``, ``seconds``.

    Raises:
        DataError: loading fails, or a result is not finite.
    """
    start = time.perf_counter()
    ph = load_phonopy(archive)
    prim = ph.primitive
    n_atoms = len(prim)
    modes, spread, splitting = gamma_modes(ph)
    res = mesh_dos(ph, mesh)
    target, scale = dos_target(res["dos_start"], res["dos"])
    out = {
        "lattice": np.asarray(prim.cell, dtype=np.float64),
        "numbers": np.asarray(prim.numbers, dtype=np.int64),
        "frac_coords": np.asarray(prim.scaled_positions, dtype=np.float64),
        "dos_start": np.int64(res["dos_start"]),
        "dos": res["dos"].astype(np.float32),
        "dos51": target,
        "dos_scale": np.float64(scale),
        "dos_norm": np.float64(dos_integral(res["dos"], res["dos_start"] + np.arange(len(res["dos"])))),
        "gamma": modes,
        "lo_to_spread": np.float64(spread),
        "lo_to_splitting": np.float64(splitting),
        "has_born": np.bool_("BORN" in archive.files),
        "cv": np.float64(res["cv"] / n_atoms),
        "s": np.float64(res["s"] / n_atoms),
        "f": np.float64(res["f"] / n_atoms),
        "omega_max": np.float64(res["f_max"]),
        "omega_min": np.float64(res["f_min"]),
        "mesh": res["mesh"],
        "n_irr_q": np.int64(res["n_irr_q"]),
    }
    bad = [k for k, v in out.items() if np.asarray(v).dtype.kind == "f" and not np.isfinite(v).all()]
    if bad or len(modes) != 3 * n_atoms:
        raise DataError(f"{archive.mp_id}: non-finite {bad} or {len(modes)} Γ modes for {n_atoms} atoms")
    out["seconds"] = np.float64(time.perf_counter() - start)
    return out
