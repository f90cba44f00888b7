"""Class labels of variants from one INFO field, for ``classify-variants`` and the workflow's DAG-time check.

``positive``/``negative`` name the values of each class (values in neither are left out and counted; with one
class named, the other is every other value); without them the field must hold 0/1 (or be a Flag: present = 1).
A missing value ('.') leaves its variant out. Each ALT of a multi-allelic record is labelled by its own value: that
ALT's entry of a field declared ``Number=A`` (one value per ALT) or ``Number=R`` (one for REF, then one per ALT;
the REF's entry labels nothing), as :func:`genoformer.io.vcf.read_variants` cuts them; a record whose value count
does not fit its ALTs is an error there. A named value that no variant has, a value that differs from a named
one only in case or spaces, a field no variant has a value in, a field declared ``Number=G`` and a class of fewer
than 2 variants are errors. Only numpy is imported: the workflow reads labels while it builds its DAG
(:func:`genoformer.workflow_checks.check_variant_labels`), before any job runs.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Iterable

import numpy as np

from genoformer.errors import ConfigError, InputError

log = logging.getLogger(__name__)


@dataclass
class VariantLabels:
    """Which variants of a VariantSet are labelled (``indices``), their ``labels`` (0/1) and class names."""

    indices: np.ndarray
    labels: np.ndarray
    classes: list[str]
    unlabelled: int

    def subsample(self, max_per_class: int | None, seed: int) -> "VariantLabels":
        """At most ``max_per_class`` variants of each class (seeded sample, file order kept)."""
        if max_per_class is None:
            return self
        rng = np.random.default_rng(seed)
        keep = np.sort(np.concatenate([rng.permutation(np.flatnonzero(self.labels == c))[:max_per_class]
                                       for c in (0, 1)]))
        return VariantLabels(self.indices[keep], self.labels[keep], self.classes, self.unlabelled)


def _value_text(value) -> str:
    if isinstance(value, tuple):
        return ",".join(map(str, value))
    return str(value)


def _named_class(value: str | None, positive: set[str], negative: set[str]) -> int | None:
    """1 or 0 for a value named as positive or negative; when only one class is named, the other is the rest."""
    if value is None:
        return None
    if value in positive or (value not in negative and not positive):
        return 1
    if value in negative or not negative:
        return 0
    return None


def _missing(item) -> bool:
    """Whether one INFO item is VCF's missing value '.': pysam gives None for a number, the text '.' for a String."""
    return item is None or item == "."


def _has_value(value) -> bool:
    """False for a missing INFO value ('.', or a list of nothing but '.')."""
    return not (_missing(value) or (isinstance(value, tuple) and all(_missing(item) for item in value)))


def _shown(values: list[str]) -> str:
    return ", ".join(values[:8]) + (", ..." if len(values) > 8 else "")


def _own_value(value, number):
    """A variant's own value of a field declared ``Number=number``: of a ``Number=R`` field, which
    :func:`genoformer.io.vcf.read_variants` cuts to (REF's, this ALT's), the ALT's entry."""
    if number == "R" and isinstance(value, tuple) and len(value) == 2:
        return value[1]
    return value


def label_values(infos: Iterable[dict], field: str, flag: bool, number=None) -> list[str | None]:
    """The label of each variant as text, from its INFO (a dict as pysam gives it, cut to the variant's ALT):
    ``'1'``/``'0'`` for a Flag ``field``, else its own value (the ALT's entry of a field declared ``Number=R``,
    ``number``; a list joined by commas), or None where it is missing."""
    if flag:
        return ["1" if field in info else "0" for info in infos]
    values = (_own_value(info.get(field), number) for info in infos)
    return [_value_text(value) if _has_value(value) else None for value in values]


def _spelling(value: str) -> str:
    """A label value as :func:`_check_no_near_miss` compares it: case and surrounding spaces ignored."""
    return value.strip().casefold()


def _check_no_near_miss(found: list[str], named: set[str], side: str, field: str, path) -> None:
    """ConfigError for a value of ``found`` not in ``named`` that equals one of them but for case and spaces."""
    spellings = {_spelling(value): value for value in sorted(named)}
    for value in found:
        if value not in named and _spelling(value) in spellings:
            raise ConfigError(f"{path}: INFO field '{field}' has the value {value!r}, which differs from the {side} "
                              f"label value {spellings[_spelling(value)]!r} only in case or spaces; name it too, "
                              "or correct the file")


def class_labels(values: list[str | None], field: str, positive: list[str] | None, negative: list[str] | None,
                 path) -> tuple[list[int | None], list[str]]:
    """The class (1, 0 or None: unlabelled) of each label text of :func:`label_values`, and the class names.

    Raises ``InputError`` when no variant of ``path`` has a value in ``field`` or a class has fewer than 2
    variants, and ``ConfigError`` for a value named as both classes, a named value no variant has (naming the
    values there are), a value that differs from a named one only in case or surrounding spaces (``Stop`` next to
    ``stop``), or values other than 0/1 when no class is named.
    """
    found = sorted({value for value in values if value is not None})
    if not found:
        raise InputError(f"{path}: no variant has a value in INFO field '{field}'")
    if positive or negative:
        positive, negative = set(positive or ()), set(negative or ())
        if positive & negative:
            raise ConfigError(f"label value(s) {', '.join(sorted(positive & negative))} named as both classes")
        for side, named in (("positive", positive), ("negative", negative)):
            absent = sorted(named - set(found))
            if absent:
                raise ConfigError(f"{path}: no variant has the {side} label value(s) {', '.join(absent)} in INFO "
                                  f"field '{field}' (its values: {_shown(found)})")
            _check_no_near_miss(found, named, side, field, path)
        labels = [_named_class(value, positive, negative) for value in values]
        classes = ["|".join(sorted(negative)) or "other", "|".join(sorted(positive)) or "other"]
    else:
        if not set(found) <= {"0", "1"}:
            raise ConfigError(f"{path}: INFO field '{field}' has values {_shown(found)}; name the classes "
                              "(--positive and --negative, a variant task's positive and negative) or use a 0/1 field")
        labels = [None if value is None else int(value) for value in values]
        classes = ["0", "1"]
    counts = np.bincount([label for label in labels if label is not None], minlength=2)
    if counts.min() < 2:
        raise InputError(f"{path}: INFO field '{field}' gives {counts[0]} {classes[0]} and {counts[1]} "
                         f"{classes[1]} variants; each class needs at least 2")
    return labels, classes


def _check_one_label_per_variant(variant_set, labels: list[int | None], classes: list[str], field: str) -> None:
    """Raise InputError when one variant (contig, position, REF, ALT) is labelled with both classes, naming both
    records: the two copies would land on both sides of the classifier at once."""
    first: dict[tuple, tuple[int, object]] = {}
    for variant, label in zip(variant_set.variants, labels):
        if label is None:
            continue
        seen = first.setdefault((variant.contig, variant.pos, variant.ref.upper(), variant.alt.upper()),
                                (label, variant))
        if seen[0] != label:
            raise InputError(f"{variant_set.path} records {seen[1].record} and {variant.record}: variant "
                             f"{variant.contig}:{variant.pos} {variant.ref}>{variant.alt} has INFO {field} of both "
                             f"classes ({classes[seen[0]]!r} and {classes[label]!r}); give each variant one label")


def variant_labels(variant_set, field: str, positive: list[str] | None = None,
                   negative: list[str] | None = None) -> VariantLabels:
    """Read the 0/1 label of every variant from INFO ``field`` (see the module docstring)."""
    header = variant_set.header
    if field not in header.info:
        declared = ", ".join(header.info) or "none"
        raise InputError(f"{variant_set.path}: INFO field '{field}' is not declared in the header "
                         f"(declared: {declared})")
    if header.info[field].number == "G":  # read_variants leaves such a field out: no variant would have a value
        raise InputError(f"{variant_set.path}: INFO field '{field}' is declared Number=G (a value per genotype), "
                         "which pysam reads in FORMAT only: it cannot hold a variant's label")
    flag, number = header.info[field].type == "Flag", header.info[field].number
    values = label_values((v.info for v in variant_set.variants), field, flag, number)
    empty = [v for v in variant_set.variants
             if not flag and field in v.info and not _has_value(_own_value(v.info[field], number))]
    if empty:
        log.warning("%s record %d (%s:%d): INFO %s has no value ('.'); %d such variant(s) left out as unlabelled",
                    variant_set.path, empty[0].record, empty[0].contig, empty[0].pos, field, len(empty))
    labels, classes = class_labels(values, field, positive, negative, variant_set.path)
    _check_one_label_per_variant(variant_set, labels, classes, field)
    indices = np.array([i for i, label in enumerate(labels) if label is not None], dtype=np.int64)
    return VariantLabels(indices, np.array([labels[i] for i in indices], dtype=np.int64), classes,
                         len(labels) - indices.size)
