"""Value lexicons: the bundled word lists and loaders for users' own.

A lexicon maps words to categories, one row per word x category (a word may belong to several).
Dictionaries such as LIWC's hold wildcard entries (`abus*`); they are kept as prefixes until
`Lexicon.expand(words)` matches them against the words actually scored.

Formats read:
- long CSV: a word column and a category column (`word,category`; the bundled `Category,token_decoded` too);
- wide CSV / `.dicx`: first column the word, one column per category marked `X` (empty or `NA` otherwise);
- LIWC `.dic`: a `%`-delimited header of `id<TAB>category` lines, then `word<TAB>id id ...` lines.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import pandas as pd

from rewardlens.errors import UserError

# name -> (bundled file, description); the files and their citations are listed in data/SOURCES.md.
BUNDLED_LEXICONS: dict[str, tuple[str, str]] = {
    "big2-nouns": ("big2_nouns.csv", "Big Two nouns: Agency 104, Communion 159 (Pietraszkiewicz 2019)"),
    "big2-expanded": ("big2_expanded.csv", "Big Two dictionary, wildcards expanded (936 rows, 900 forms)"),
    "mfd2": ("mfd2.dicx", "Moral Foundations Dictionary 2.0: 5 foundations x virtue/vice (Frimer 2019)"),
}

_CATEGORY_COLUMNS = ("category", "categories")
_MARKS = {"x", "1", "true", "yes"}
_BLANKS = {"", "na", "nan", "0", "false", "no"}


@dataclass(frozen=True)
class Lexicon:
    """Words with their categories; `prefixes` holds unexpanded wildcard entries (`abus*` -> `abus`)."""

    name: str
    entries: pd.DataFrame  # columns word, category; one row per word x category
    prefixes: pd.DataFrame = field(default_factory=lambda: pd.DataFrame({"prefix": [], "category": []}))

    @property
    def categories(self) -> list[str]:
        """Categories in the order they first appear."""
        cats = pd.concat([self.entries["category"], self.prefixes["category"]], ignore_index=True)
        return list(dict.fromkeys(cats.tolist()))

    @property
    def words(self) -> list[str]:
        """Distinct exact words (wildcard prefixes excluded)."""
        return list(dict.fromkeys(self.entries["word"].tolist()))

    def expand(self, words: Iterable[str]) -> Lexicon:
        """Resolve wildcard prefixes against `words`; exact entries are kept as they are."""
        candidates = list(dict.fromkeys(words))
        rows = [
            (word, category)
            for prefix, category in zip(self.prefixes["prefix"], self.prefixes["category"], strict=True)
            for word in candidates
            if word.lower().startswith(prefix)
        ]
        expanded = pd.DataFrame(rows, columns=["word", "category"])
        entries = pd.concat([self.entries, expanded], ignore_index=True).drop_duplicates(ignore_index=True)
        return Lexicon(self.name, entries)

    def counts(self) -> dict[str, int]:
        """Number of exact words per category."""
        per_category = self.entries.groupby("category", sort=False)["word"].nunique()
        return {str(category): int(n) for category, n in per_category.items()}


_VIRTUE, _VICE = "_Virtue", "_Vice"


def contrast_pairs(categories: Iterable[str]) -> list[tuple[str, str]]:
    """The category contrasts a value analysis tests, as (first, second): first - second.

    A lexicon whose categories are all `<Foundation>_Virtue` / `<Foundation>_Vice` pairs (MFD 2.0) is
    contrasted within each foundation, virtue - vice, foundations in alphabetical order; any
    other lexicon by every pair of categories, in alphabetical order (Big Two: Agency - Communion).
    """
    names = list(dict.fromkeys(categories))
    foundations = sorted({name.rsplit("_", 1)[0] for name in names})
    paired = {f"{f}{_VIRTUE}" for f in foundations} | {f"{f}{_VICE}" for f in foundations}
    if len(names) > 2 and set(names) == paired:
        return [(f"{f}{_VIRTUE}", f"{f}{_VICE}") for f in foundations]
    ordered = sorted(names)
    return [(a, b) for i, a in enumerate(ordered) for b in ordered[i + 1 :]]


def list_lexicons() -> dict[str, str]:
    """Names and descriptions of the bundled lexicons."""
    return {name: description for name, (_, description) in BUNDLED_LEXICONS.items()}


def load_lexicon(spec: str | Path, words: Iterable[str] | None = None) -> Lexicon:
    """A bundled lexicon name or a path (`.csv`, `.dic`, `.dicx`).

    With `words`, wildcard entries are expanded against them; otherwise they stay in `.prefixes`.
    """
    name = str(spec)
    if name in BUNDLED_LEXICONS:
        filename = BUNDLED_LEXICONS[name][0]
        text = resources.files("rewardlens.data").joinpath(f"lexicons/{filename}").read_text("utf-8")
        lexicon = parse_lexicon(text, name, Path(filename).suffix)
    else:
        path = Path(name)
        if not path.is_file():
            known = ", ".join(BUNDLED_LEXICONS)
            raise UserError(f"lexicon {name!r}: no such file and not a bundled lexicon ({known})")
        try:
            text = path.read_text("utf-8-sig")  # LIWC exports often start with a BOM
        except (OSError, UnicodeDecodeError) as err:
            reason = err.__class__.__name__
            raise UserError(f"lexicon {path}: cannot read it as UTF-8 text ({reason})") from err
        lexicon = parse_lexicon(text, path.stem, path.suffix)
    return lexicon.expand(words) if words is not None else lexicon


def parse_lexicon(text: str, name: str, suffix: str) -> Lexicon:
    """Parse lexicon text; the format is `.dic` by suffix or by its leading `%`, else a CSV (long or wide)."""
    if suffix.lower() == ".dic" or text.lstrip().startswith("%"):
        pairs = _parse_dic(text, name)
    else:
        pairs = _parse_csv(text, name)
    return _lexicon_from_pairs(pairs, name)


def _parse_csv(text: str, name: str) -> list[tuple[str, str]]:
    rows = [row for row in csv.reader(io.StringIO(text)) if any(cell.strip() for cell in row)]
    if len(rows) < 2:
        raise UserError(f"lexicon {name}: a CSV lexicon needs a header row and at least one word")
    header = [cell.strip() for cell in rows[0]]
    lowered = [cell.lower() for cell in header]
    if len(header) == 2 and any(c in _CATEGORY_COLUMNS for c in lowered):
        # Long format: which of the two columns is the category is read from the header.
        cat_col = next(i for i, c in enumerate(lowered) if c in _CATEGORY_COLUMNS)
        word_col = 1 - cat_col
        pairs: list[tuple[str, str]] = []
        for line, row in enumerate(rows[1:], start=2):
            if len(row) != 2 or not row[word_col].strip() or not row[cat_col].strip():
                raise UserError(f"lexicon {name}: line {line} is not `word,category`")
            pairs.extend((row[word_col], category) for category in row[cat_col].split(";"))
        return pairs
    if len(header) < 2:
        raise UserError(f"lexicon {name}: expected `word,category` or a word column then category columns")
    # Wide format: the first column is the word, every other column a category marked with X.
    categories = header[1:]
    if any(not category for category in categories):
        raise UserError(f"lexicon {name}: a category column has no name")
    pairs = []
    for line, row in enumerate(rows[1:], start=2):
        if len(row) != len(header) or not row[0].strip():
            raise UserError(f"lexicon {name}: line {line} has {len(row)} fields, the header {len(header)}")
        for category, cell in zip(categories, row[1:], strict=True):
            mark = cell.strip().lower()
            if mark in _MARKS:
                pairs.append((row[0], category))
            elif mark not in _BLANKS:
                raise UserError(
                    f"lexicon {name}: line {line} marks {category!r} with {cell!r}; use X or leave it empty"
                )
    return pairs


def _parse_dic(text: str, name: str) -> list[tuple[str, str]]:
    lines = text.splitlines()
    markers = [i for i, line in enumerate(lines) if line.strip() == "%"]
    if len(markers) < 2:
        raise UserError(f"lexicon {name}: a .dic file needs a `%` ... `%` header of category ids")
    ids: dict[str, str] = {}
    for line in lines[markers[0] + 1 : markers[1]]:
        parts = line.split()
        if not parts:
            continue
        if len(parts) < 2:
            raise UserError(f"lexicon {name}: header line {line.strip()!r} is not `id category`")
        ids[parts[0]] = " ".join(parts[1:])
    pairs: list[tuple[str, str]] = []
    for number, line in enumerate(lines[markers[1] + 1 :], start=markers[1] + 2):
        parts = line.split()
        if not parts:
            continue
        if len(parts) < 2:
            raise UserError(f"lexicon {name}: line {number} has a word without category ids")
        unknown = [part for part in parts[1:] if part not in ids]
        if unknown:
            raise UserError(f"lexicon {name}: line {number}: category id {unknown[0]!r}, not in the header")
        pairs.extend((parts[0], ids[part]) for part in parts[1:])
    return pairs


def _lexicon_from_pairs(pairs: list[tuple[str, str]], name: str) -> Lexicon:
    stripped = [(word.strip(), category.strip()) for word, category in pairs]
    cleaned = [(word, category) for word, category in stripped if word and category]
    if not cleaned:
        raise UserError(f"lexicon {name}: no words")
    exact = [(w, c) for w, c in cleaned if not w.endswith("*")]
    wild = [(w.rstrip("*").lower(), c) for w, c in cleaned if w.endswith("*")]
    if any("*" in w for w, _ in exact) or any(not p or "*" in p for p, _ in wild):
        raise UserError(f"lexicon {name}: wildcards are supported only at the end of a word (`abus*`)")
    entries = pd.DataFrame(exact, columns=["word", "category"]).drop_duplicates(ignore_index=True)
    prefixes = pd.DataFrame(wild, columns=["prefix", "category"]).drop_duplicates(ignore_index=True)
    return Lexicon(name, entries, prefixes)


__all__ = ["BUNDLED_LEXICONS", "Lexicon", "contrast_pairs", "list_lexicons", "load_lexicon", "parse_lexicon"]
