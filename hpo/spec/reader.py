"""Reading a study file safely: bytes first (a size limit, UTF-8 with a clear error otherwise), then YAML with a
loader that refuses a key given twice and a document whose aliases expand past a bound."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from hpo.errors import SpecError

__all__ = ["MAX_FILE_BYTES", "MAX_YAML_NODES", "read_text", "read_yaml"]

MAX_FILE_BYTES = 1 << 20  # a study file is a page of YAML; this bounds what validation reads
MAX_YAML_NODES = 100_000  # values after expanding aliases: a few hundred in any real study file


def read_yaml(path: Path) -> dict[str, Any]:
    """A study file as a mapping: at most MAX_FILE_BYTES of UTF-8 YAML, no key twice in a mapping, at most
    MAX_YAML_NODES values once aliases are expanded (a few lines of anchors can otherwise expand to billions)."""
    return parse_yaml(read_text(path), str(path))


def read_text(path: Path) -> str:
    """A study file's text: at most MAX_FILE_BYTES, UTF-8 (a byte-order mark allowed)."""
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise SpecError(str(path), [("", f"the file is {size:,} bytes; a study file is at most "
                                              f"{MAX_FILE_BYTES:,}")])
        data = path.read_bytes()
    except OSError as exc:
        raise SpecError(str(path), [("", f"cannot read the study file: {exc.strerror}")]) from None
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise SpecError(str(path), [("", "the file is UTF-16 text; save it as UTF-8")])
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise SpecError(str(path), [("", f"not UTF-8 text (byte {exc.start} is {data[exc.start]:#04x}); "
                                          "save it as UTF-8")]) from None
    return text


def parse_yaml(text: str, source: str) -> dict[str, Any]:
    """`text` (a study file's, named `source` in errors) as a mapping, through the strict loader below."""
    try:
        raw = _StrictLoader.load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        raise SpecError(source, [("", f"not valid YAML: {where}{getattr(exc, 'problem', None) or exc}")]) from None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise SpecError(source, [("", "a study file is a YAML mapping of fields")])
    return raw


class _StrictLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing a key given twice in one mapping (PyYAML silently keeps the last) and a
    document that expands to more than MAX_YAML_NODES values. Written by hand: PyYAML has neither check."""

    @classmethod
    def load(cls, text: str) -> Any:
        loader = cls(text)
        try:
            node = loader.get_single_node()
            if node is None:
                return None
            _expanded_size(node, {})
            return loader.construct_document(node)
        finally:
            loader.dispose()

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        # A mapping's own keys, given twice, are a mistake; keys that a merge (`<<: *defaults`) brings in are meant
        # to be overridden by its own, as yaml.safe_load reads them.
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            if isinstance(key, str | int | float | bool) and key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} is given twice (first on line {seen[key]})", key_node.start_mark)
            seen.setdefault(key, key_node.start_mark.line + 1)
        return super().construct_mapping(node, deep=deep)


def _expanded_size(node: yaml.Node, sizes: dict[int, int | None]) -> int:
    """Values in `node` with every alias expanded; raises once past MAX_YAML_NODES or on a recursive alias."""
    known = sizes.get(id(node), 0)
    if known is None:
        raise yaml.composer.ComposerError(None, None, "an alias refers to itself", node.start_mark)
    if known:
        return known
    sizes[id(node)] = None
    children = node.value if isinstance(node, yaml.SequenceNode) else \
        [part for pair in node.value for part in pair] if isinstance(node, yaml.MappingNode) else []
    size = 1 + sum(_expanded_size(child, sizes) for child in children)
    if size > MAX_YAML_NODES:
        raise yaml.composer.ComposerError(None, None, f"the document expands to more than {MAX_YAML_NODES:,} "
                                          "values (aliases repeat what they refer to)", node.start_mark)
    sizes[id(node)] = size
    return size
