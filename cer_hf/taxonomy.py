"""Expression labels: basic expressions, named compound sets, label parsing, AU names, dataset label orders.

Every label that enters the toolkit (a folder name, a CSV cell, a RAF-DB index already
mapped to its name) goes through `parse_label`, so "happy", "HAPPINESS", "Happily_Surprised"
and "Sadness|Fear" all end up as the same canonical names.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

BASIC_EXPRESSIONS: tuple[str, ...] = (
    "Neutral",
    "Anger",
    "Disgust",
    "Fear",
    "Happiness",
    "Sadness",
    "Surprise",
)
# Compounds never contain Neutral, so the models' default label space is the other six.
EMOTION_BASICS: tuple[str, ...] = BASIC_EXPRESSIONS[1:]
# Labels that real datasets carry but that are not targets of compound recognition.
EXTRA_LABELS: tuple[str, ...] = ("Contempt", "Other")


@dataclass(frozen=True)
class CompoundClass:
    """A compound expression: its name and the two basic expressions it is made of."""

    name: str
    constituents: tuple[str, str]


def _compound(name: str, first: str, second: str) -> CompoundClass:
    return CompoundClass(name, (first, second))


COMPOUND_SETS: dict[str, tuple[CompoundClass, ...]] = {
    # ABAW7 compound expression track (C-EXPR-DB), in the challenge's order.
    "abaw7": (
        _compound("Fearfully Surprised", "Fear", "Surprise"),
        _compound("Happily Surprised", "Happiness", "Surprise"),
        _compound("Sadly Surprised", "Sadness", "Surprise"),
        _compound("Disgustedly Surprised", "Disgust", "Surprise"),
        _compound("Angrily Surprised", "Anger", "Surprise"),
        _compound("Sadly Fearful", "Sadness", "Fear"),
        _compound("Sadly Angry", "Sadness", "Anger"),
    ),
    # RAF-DB compound subset, in RAF-DB's own label order 1..11.
    "rafdb": (
        _compound("Happily Surprised", "Happiness", "Surprise"),
        _compound("Happily Disgusted", "Happiness", "Disgust"),
        _compound("Sadly Fearful", "Sadness", "Fear"),
        _compound("Sadly Angry", "Sadness", "Anger"),
        _compound("Sadly Surprised", "Sadness", "Surprise"),
        _compound("Sadly Disgusted", "Sadness", "Disgust"),
        _compound("Fearfully Angry", "Fear", "Anger"),
        _compound("Fearfully Surprised", "Fear", "Surprise"),
        _compound("Angrily Surprised", "Anger", "Surprise"),
        _compound("Angrily Disgusted", "Anger", "Disgust"),
        _compound("Disgustedly Surprised", "Disgust", "Surprise"),
    ),
}

# Every spelling we accept for one basic expression (lower case, after stripping separators).
_BASIC_SPELLINGS: dict[str, str] = {}
for _name, _spellings in {
    "Neutral": ("neutral", "neutrality", "calm"),
    "Anger": ("anger", "angry", "angrily"),
    "Disgust": ("disgust", "disgusted", "disgustedly"),
    "Fear": ("fear", "fearful", "fearfully", "afraid", "scared"),
    "Happiness": ("happiness", "happy", "happily", "joy"),
    "Sadness": ("sadness", "sad", "sadly"),
    "Surprise": ("surprise", "surprised", "surprisedly"),
    "Contempt": ("contempt", "contemptuous", "contemptuously"),
    "Other": ("other", "others"),
}.items():
    for _spelling in _spellings:
        _BASIC_SPELLINGS[_spelling] = _name

_COMPOUND_BY_CONSTITUENTS: dict[frozenset[str], str] = {
    frozenset(c.constituents): c.name for classes in COMPOUND_SETS.values() for c in classes
}
_COMPOUND_CONSTITUENTS: dict[str, tuple[str, str]] = {
    c.name: c.constituents for classes in COMPOUND_SETS.values() for c in classes
}
_SEPARATORS = re.compile(r"[\s_|+,&/\-]+")


def compound_set(name: str) -> tuple[CompoundClass, ...]:
    """Return the compound classes of a named set (`abaw7` or `rafdb`), in their order."""
    try:
        return COMPOUND_SETS[name]
    except KeyError:
        raise ValueError(
            f"unknown compound set {name!r}; known sets: {', '.join(sorted(COMPOUND_SETS))}"
        ) from None


def accepted_labels() -> list[str]:
    """All canonical label names the parser can return."""
    return [*BASIC_EXPRESSIONS, *EXTRA_LABELS, *_COMPOUND_CONSTITUENTS]


def _unknown(label: object, detail: str = "") -> ValueError:
    return ValueError(
        f"unknown expression label {label!r}{detail}; accepted labels are "
        f"{', '.join(accepted_labels())} (any case, '_'/'-'/'|'/'+' as separators, "
        "adjectives and adverbs such as 'happy' or 'Happily_Surprised' too)"
    )


def parse_label(label: object) -> str:
    """Map a label as written in a dataset to its canonical name.

    Returns a basic expression ("Happiness"), an extra label ("Contempt", "Other") or a
    compound name ("Happily Surprised"). Raises `ValueError` naming the label otherwise.
    """
    if not isinstance(label, str) or not label.strip():
        raise _unknown(label)
    tokens = [t for t in _SEPARATORS.split(label.strip().lower()) if t]
    basics = []
    for token in tokens:
        if token not in _BASIC_SPELLINGS:
            raise _unknown(label, f" (part {token!r} is not an expression)")
        basics.append(_BASIC_SPELLINGS[token])
    unique = frozenset(basics)
    if len(unique) == 1:
        return basics[0]
    if len(unique) == 2 and unique in _COMPOUND_BY_CONSTITUENTS:
        return _COMPOUND_BY_CONSTITUENTS[unique]
    raise _unknown(label, f" ({' + '.join(sorted(unique))} is no known compound)")


def constituents(label: str) -> tuple[str, ...]:
    """The basic expressions a label stands for: one for a basic, two for a compound."""
    name = parse_label(label)
    return _COMPOUND_CONSTITUENTS.get(name, (name,))


def is_compound(label: str) -> bool:
    """Whether a label names a compound expression."""
    return parse_label(label) in _COMPOUND_CONSTITUENTS


def compound_from_basics(first: str, second: str) -> str | None:
    """The compound formed by two different basic expressions, or None if there is none."""
    return _COMPOUND_BY_CONSTITUENTS.get(frozenset((parse_label(first), parse_label(second))))


def multi_hot(label: str, label_space: tuple[str, ...] | list[str]) -> list[float]:
    """Encode a label as a multi-hot vector over `label_space` (a list of basic names).

    Raises `ValueError` when a constituent is outside the label space (for example
    Neutral with the six-basic default space), so callers filter such samples first.
    """
    parts = constituents(label)
    missing = [p for p in parts if p not in label_space]
    if missing:
        raise ValueError(
            f"label {label!r} needs {', '.join(missing)}, which is not in the label space "
            f"{list(label_space)}; filter such samples (e.g. Neutral) before encoding"
        )
    return [1.0 if name in parts else 0.0 for name in label_space]


# ----------------------------------------------------------------------------- Action Units, dataset codes

# The 12 Action Units annotated in Aff-Wild2 / ABAW, in the order of its label files and of every `aus` column.
AU_NAMES: tuple[str, ...] = (
    "AU1", "AU2", "AU4", "AU6", "AU7", "AU10", "AU12", "AU15", "AU23", "AU24", "AU25", "AU26",
)
# Missing-label markers of the ABAW annotation files (and of every `aus`/`valence`/`arousal` column here).
MISSING_AU = -1
MISSING_EXPR = -1
MISSING_VA = -5.0

# Integer codes of the public datasets, in each dataset's own order (index = code).
RAFDB_BASIC_LABELS: tuple[str, ...] = (  # codes 1..7
    "Surprise", "Fear", "Disgust", "Happiness", "Sadness", "Anger", "Neutral",
)
RAFDB_COMPOUND_LABELS: tuple[str, ...] = tuple(c.name for c in compound_set("rafdb"))  # codes 1..11
AFFECTNET_LABELS: tuple[str, ...] = (  # codes 0..7; 8, 9, 10 are not expressions
    "Neutral", "Happiness", "Sadness", "Surprise", "Fear", "Disgust", "Anger", "Contempt",
)
AFFECTNET_NON_EXPRESSIONS: dict[int, str] = {8: "None", 9: "Uncertain", 10: "Non-Face"}
FER2013_LABELS: tuple[str, ...] = (  # codes 0..6
    "Anger", "Disgust", "Fear", "Happiness", "Sadness", "Surprise", "Neutral",
)
AFFWILD2_EXPR_LABELS: tuple[str, ...] = (  # codes 0..7 (Aff-Wild2 EXPR files' header order)
    "Neutral", "Anger", "Disgust", "Fear", "Happiness", "Sadness", "Surprise", "Other",
)
CEXPRDB_LABELS: tuple[str, ...] = tuple(c.name for c in compound_set("abaw7"))  # codes 0..6

# Labels kept / dropped by `filter_targets` unless told otherwise.
TARGET_LABELS: tuple[str, ...] = (
    *EMOTION_BASICS,
    *dict.fromkeys(c.name for classes in COMPOUND_SETS.values() for c in classes),
)
NON_TARGET_LABELS: tuple[str, ...] = ("Neutral", "Contempt", "Other")

# Named code tables for `label_names=` (CSV code columns, numbered class folders, ...).
LABEL_CODES: dict[str, dict[int, str]] = {
    "rafdb-basic": {i + 1: name for i, name in enumerate(RAFDB_BASIC_LABELS)},
    "rafdb-compound": {i + 1: name for i, name in enumerate(RAFDB_COMPOUND_LABELS)},
    "affectnet": dict(enumerate(AFFECTNET_LABELS)),
    "fer2013": dict(enumerate(FER2013_LABELS)),
    "affwild2": dict(enumerate(AFFWILD2_EXPR_LABELS)),
    "cexprdb": dict(enumerate(CEXPRDB_LABELS)),
}


