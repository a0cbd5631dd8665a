"""Reading fit inputs from CSV files, with one-line errors that say which file, line and column is wrong.

The fits themselves take arrays; this module is only the CLI's door. Every problem a user can fix
(missing file or column, a non-number, a non-positive value, too few rows) is a `UserError`.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from scarce.errors import UserError


def read_columns(path: str | Path, required: Sequence[str], *, any_of: Sequence[Sequence[str]] = (),
                 min_rows: int = 3) -> dict[str, np.ndarray]:
    """The named columns of a CSV file as positive float arrays.

    `required` columns must all be present; of each group in `any_of` at least one must be (all
    present ones are returned). Extra columns are ignored. Values must be finite and > 0, since every
    quantity here (params, tokens, FLOPs, members, loss) is positive and fits work in log space.
    """
    path = Path(path)
    header, rows = _read(path)
    names = list(required)
    for group in any_of:
        present = [c for c in group if c in header]
        if not present:
            raise UserError(f"{path}: needs a column {' or '.join(map(repr, group))} (found: {', '.join(header)})")
        names += present
    missing = [c for c in required if c not in header]
    if missing:
        raise UserError(f"{path}: missing column {', '.join(map(repr, missing))} (found: {', '.join(header)})")
    if len(rows) < min_rows:
        raise UserError(f"{path}: {len(rows)} data row(s); this fit needs at least {min_rows}")
    return {c: _column(path, header, rows, c) for c in dict.fromkeys(names)}


def _read(path: Path) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """Header (stripped names) and (line number, cells) for each non-blank row."""
    try:
        with open(path, newline="", encoding="utf-8") as f:
            lines = list(csv.reader(f))
    except FileNotFoundError:
        raise UserError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise UserError(f"{path}: cannot read as CSV ({e})") from None
    numbered = [(i + 1, row) for i, row in enumerate(lines) if any(cell.strip() for cell in row)]
    if not numbered:
        raise UserError(f"{path}: empty file (expected a header row and data rows)")
    header = [h.strip() for h in numbered[0][1]]
    return header, numbered[1:]


def _column(path: Path, header: list[str], rows, name: str) -> np.ndarray:
    """Parse one column, naming the line of the first bad value."""
    j = header.index(name)
    out = np.empty(len(rows))
    for k, (line, cells) in enumerate(rows):
        text = cells[j].strip() if j < len(cells) else ""
        try:
            v = float(text)
        except ValueError:
            raise UserError(f"{path} line {line}: column {name!r} has {text!r}, not a number") from None
        if not math.isfinite(v) or v <= 0:
            raise UserError(f"{path} line {line}: column {name!r} must be a positive finite number, got {text!r}")
        out[k] = v
    return out
