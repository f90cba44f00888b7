"""BED intervals: tab-separated, 0-based half-open, validated line by line against the reference.

Columns: ``chrom start end [name [score [strand [label ...]]]]``. ``track``/``browser`` lines (the first word is
``track`` or ``browser``), ``#`` comments and blank lines are skipped. Every data line must have the same number
of columns. A plain or bgzip-compressed file (``.gz``) is read transparently. Each error names the file, the
1-based line number and the problem.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

import pandas as pd

from genoformer.errors import InputError, MismatchError, MissingFileError
from genoformer.io.fasta import Reference
from genoformer.io.text import text_lines

log = logging.getLogger(__name__)

OPTIONAL_COLUMNS = ("name", "score", "strand")
STRANDS = ("+", "-", ".")
DEFAULT_LABEL_COLUMN = 7
HEADER_WORDS = ("track", "browser")  # the first word of a header line (a contig may be named "trackC")


def data_lines(path: Path):
    """Yield (1-based line number, fields) for each data line, skipping headers, comments and blanks."""
    for number, line in text_lines(path, "BED"):
        if not line.strip() or line.startswith("#") or line.split(maxsplit=1)[0] in HEADER_WORDS:
            continue
        yield number, line.split("\t")


def _parse_coordinate(value: str, path: Path, number: int, column: str) -> int:
    """A coordinate: plain decimal digits (no sign, spaces, underscores or exponent), never negative."""
    if re.fullmatch(r"[0-9]+", value):
        return int(value)
    if re.fullmatch(r"-[0-9]+", value) and int(value) < 0:
        raise InputError(f"{path} line {number}: {column} {value} is negative")
    raise InputError(f"{path} line {number}: {column} {value!r} is not an integer "
                     "(BED coordinates are plain digits 0-9)")


def _parse_score(value: str, path: Path, number: int) -> float:
    if value == ".":
        return float("nan")
    try:
        return float(value)
    except ValueError:
        raise InputError(f"{path} line {number}: score {value!r} is not a number") from None


def read_bed(path: str | os.PathLike, reference: Reference | None = None,
             label_column: int | str | None = DEFAULT_LABEL_COLUMN, *, optional_label: bool = False) -> pd.DataFrame:
    """Read a BED file into a DataFrame with columns ``chrom, start, end`` plus, where the file has them,
    ``name`` (str), ``score`` (float; ``.`` is NaN), ``strand`` (``+``, ``-`` or ``.``) and ``label``.

    Coordinates are 0-based half-open and must satisfy ``0 <= start < end``. A BED12 line is its whole interval:
    its blocks are not read (a warning counts the lines of more than one block). With a ``reference``, each
    contig must be in it (else ``MismatchError``) and ``end`` must not pass the contig's length.

    ``label_column``: the 1-based column holding a class label (default 7, used only when the file has a
    7th column; an error when columns 7 and 8 are BED9's thickStart and thickEnd on every line), ``"name"`` to
    use the name column as the label, or ``None`` for no label. Labels that are all plain integers within int64
    become ``int64`` (no leading zero or ``+``: ``01`` and ``1`` are two classes); otherwise they stay strings. A
    label with spaces around it (``'coding '``), an empty one or ``.`` (BED's missing value) is an error, not a class
    of its own. The index (named ``line``) holds each row's 1-based line number in the file, for messages that point
    at it.

    ``optional_label``: for regions whose label is only carried along (``--predict``): a file without the label
    column has no ``label``, and an empty cell or ``.`` is kept (unknown) instead of being an error.
    """
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"{path}: BED file not found")
    if label_column not in (None, "name") and not (isinstance(label_column, int) and label_column >= 4):
        raise InputError(f"{path}: label column must be a 1-based column number >= 4, 'name' or None, "
                         f"got {label_column!r}")

    rows, numbers = [], []
    n_columns = None
    label_index = 3 if label_column == "name" else label_column - 1 if isinstance(label_column, int) else None
    thick = True  # so far every line's columns 7 and 8 could be BED9's thickStart and thickEnd
    spliced = []  # line numbers of BED12 lines of more than one block
    for number, fields in data_lines(path):
        if n_columns is None:
            n_columns = len(fields)
        if len(fields) < 3:
            hint = " (fields must be separated by tabs)" if " " in fields[0] else ""
            raise InputError(f"{path} line {number}: {len(fields)} column(s), BED needs at least 3{hint}")
        if len(fields) != n_columns:
            raise InputError(f"{path} line {number}: {len(fields)} columns where earlier lines have {n_columns}")
        if not rows and not any(re.fullmatch(r"-?[0-9]+", value) for value in fields[1:3]):
            raise InputError(f"{path} line {number}: start {fields[1]!r} and end {fields[2]!r} are not coordinates: "
                             "a header row naming the columns? Start it with '#' (BED skips '#', track and browser "
                             "lines)")
        chrom = fields[0]
        start = _parse_coordinate(fields[1], path, number, "start")
        end = _parse_coordinate(fields[2], path, number, "end")
        if start >= end:
            raise InputError(f"{path} line {number}: start {start} is not before end {end} "
                             "(BED is 0-based half-open: an interval needs start < end)")
        if reference is not None:
            if chrom not in reference.contigs:
                raise MismatchError(f"{path} line {number}: contig {chrom!r} is not in reference {reference.path}")
            if end > reference.contigs[chrom]:
                raise InputError(f"{path} line {number}: end {end} is past the end of contig {chrom} "
                                 f"(length {reference.contigs[chrom]} in {reference.path})")
        row = [chrom, start, end, *fields[3:6]]
        if len(fields) >= 5:
            row[4] = _parse_score(fields[4], path, number)
        if len(fields) >= 6 and fields[5] not in STRANDS:
            raise InputError(f"{path} line {number}: strand {fields[5]!r} is not one of + - .")
        if label_index is not None and len(fields) > label_index:
            if not optional_label and not fields[label_index].strip():  # else '' would silently be a class
                raise InputError(f"{path} line {number}: label column {label_index + 1} is empty")
            if not optional_label and fields[label_index] == ".":  # BED's missing value, not a class
                raise InputError(f"{path} line {number}: label '.' in column {label_index + 1} is BED's mark for a "
                                 "missing value, not a class; give the region its class or leave it out")
            if not optional_label and fields[label_index] != fields[label_index].strip():  # a class besides 'coding'
                raise InputError(f"{path} line {number}: label {fields[label_index]!r} in column {label_index + 1} "
                                 "has spaces around it; remove them")
            row.append(fields[label_index])
        thick = thick and len(fields) >= 8 and all(re.fullmatch(r"[0-9]+", value) for value in fields[6:8]) \
            and start <= int(fields[6]) <= int(fields[7]) <= end
        if len(fields) >= 12 and re.fullmatch(r"[0-9]+", fields[9]) and int(fields[9]) > 1:
            spliced.append(number)
        rows.append(row)
        numbers.append(number)

    if not rows:
        raise InputError(f"{path}: BED file has no intervals")
    if spliced:
        log.warning("%s: %d %s more than one block (BED12 column 10; line %d first): each is read as one "
                    "interval, chromStart to chromEnd, its gaps (introns) included; give one line per block to read "
                    "the blocks alone", path, len(spliced), "line has" if len(spliced) == 1 else "lines have",
                    spliced[0])
    if label_index == 6 and thick and not optional_label:
        raise InputError(f"{path}: columns 7 and 8 hold thickStart and thickEnd on every line (BED9 or BED12), not "
                         "a class label; name the label column (--label-column N, or 'name' for column 4)")
    if label_column == "name" and n_columns < 4 and not optional_label:
        raise InputError(f"{path}: label column 'name' asked for, but the file has only {n_columns} columns")
    if isinstance(label_column, int) and label_column != DEFAULT_LABEL_COLUMN and n_columns < label_column \
            and not optional_label:
        raise InputError(f"{path}: label column {label_column} asked for, but the file has only {n_columns} columns")

    columns = ["chrom", "start", "end", *OPTIONAL_COLUMNS[: min(n_columns, 6) - 3]]
    if len(rows[0]) > len(columns):
        columns.append("label")
    table = pd.DataFrame(rows, columns=columns, index=pd.Index(numbers, name="line"))
    table = table.astype({"chrom": str, "start": "int64", "end": "int64"})
    if "label" in table:
        table["label"] = _integer_labels_or_strings(table["label"])
    return table


def _integer_labels_or_strings(labels: pd.Series) -> pd.Series:
    """``labels`` as int64 when each is an integer written as Python writes it back (``7``, ``-1``) and within int64,
    else as the strings read: ``01`` and ``1`` (or ``+1``, ``1_0``) are different classes, not one, and a longer
    number (an identifier) is never wrapped round."""
    labels = labels.astype(str)
    if labels.map(_plain_int64).all():
        return labels.map(int).astype("int64")
    return labels


def _plain_int64(label: str) -> bool:
    """Whether ``label`` is an int64 written as Python writes it back (no sign but ``-``, no leading zero)."""
    return re.fullmatch(r"-?(0|[1-9][0-9]*)", label) is not None and label != "-0" and -2 ** 63 <= int(label) < 2 ** 63


def class_order(labels) -> list[str]:
    """The distinct labels, as strings, in the order classifiers number them: numerically when every label is
    an integer (so 9 comes before 10), else alphabetically."""
    names = {str(label) for label in labels}
    if all(re.fullmatch(r"-?[0-9]+", name) for name in names):
        return sorted(names, key=lambda name: (int(name), name))  # '01' and '1' in a fixed order
    return sorted(names)
