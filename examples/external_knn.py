"""A model trained outside phonbench: k-nearest neighbours on element fractions.

It reads only the files of ``phonbench data export`` (ASE and scikit-learn, no phonbench import)
and writes a predictions CSV that ``phonbench score`` checks and scores::

    phonbench data export dos --split tutorial --out dos-export
    python examples/external_knn.py dos-export --fold 0 --out knn-predictions.csv
    phonbench score knn-predictions.csv --dataset dos --split tutorial --fold 0 \
        --card examples/external_knn.toml --out my-results

Features: the fraction of each element (atomic numbers 1-103) in the cell. Model: scikit-learn's
``KNeighborsRegressor`` (k=5, distance-weighted), fitted on the train and valid parts together.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import ase.io
import numpy as np
from sklearn.neighbors import KNeighborsRegressor

N_ELEMENTS = 103


def element_fractions(path: Path) -> tuple[list[str], np.ndarray]:
    """Material ids and ``(n, 103)`` element fractions of an extended-XYZ file."""
    frames = ase.io.read(path, index=":", format="extxyz") if path.stat().st_size else []
    features = np.zeros((len(frames), N_ELEMENTS))
    for i, atoms in enumerate(frames):
        numbers = atoms.get_atomic_numbers()
        np.add.at(features[i], numbers - 1, 1.0 / len(numbers))
    return [str(atoms.info["id"]) for atoms in frames], features


def read_table(path: Path) -> tuple[list[str], list[str], np.ndarray]:
    """Header, ids and ``(n, d)`` value columns (``mask_*`` columns left out) of a targets CSV."""
    with open(path, newline="") as fh:
        rows = list(csv.reader(fh))
    header = rows[0]
    n_values = sum(1 for name in header[1:] if not name.startswith("mask_"))
    values = np.array([[float(x) for x in row[1:1 + n_values]] for row in rows[1:]]).reshape(-1, n_values)
    return header, [row[0] for row in rows[1:]], values


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("export", type=Path, help="folder written by `phonbench data export`")
    parser.add_argument("--fold", default="0", help="fold name (the fold_<name> folder)")
    parser.add_argument("--out", type=Path, required=True, help="predictions CSV to write")
    parser.add_argument("-k", type=int, default=5, help="number of neighbours")
    args = parser.parse_args()
    fold = args.export / f"fold_{args.fold}"

    ids, features, targets = [], [], []
    for part in ("train", "valid"):
        part_ids, x = element_fractions(fold / f"{part}.extxyz")
        _, target_ids, y = read_table(fold / f"{part}_targets.csv")
        assert part_ids == target_ids, f"{part}: structures and targets are in different orders"
        ids += part_ids
        features.append(x)
        targets.append(y)
    model = KNeighborsRegressor(n_neighbors=args.k, weights="distance")
    model.fit(np.vstack(features), np.vstack(targets))

    test_ids, x_test = element_fractions(fold / "test.extxyz")
    prediction = model.predict(x_test).reshape(len(test_ids), -1)
    with open(fold / "test_template.csv", newline="") as fh:
        template = list(csv.reader(fh))
    header, masks = template[0], {row[0]: row[1 + prediction.shape[1]:] for row in template[1:]}
    with open(args.out, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        for material, values in zip(test_ids, prediction):
            writer.writerow([material, *map(repr, values.tolist()), *masks[material]])
    print(f"wrote {len(test_ids)} predictions to {args.out}")


if __name__ == "__main__":
    main()
