"""`hpo predict`: label new texts with a saved classifier.

Input: a CSV, TSV, JSON, JSONL or Parquet file with a text column (the suffix says which, as for study
datasets); a `.txt` file or `-` (standard input): one text per non-empty line.

Texts are strings, in UTF-8 (a `.txt` file and standard input: a byte that is not is one error naming its offset;
convert with `iconv -t utf-8` first). A text column's cell that is not a string is refused, naming the column and
the first such row, except numbers, which are labelled as the text they print as: a JSON or Parquet column of
short texts such as "2024" or "3.5" arrives as numbers, and refusing them would only make the user convert them.
Lists, mappings, bytes, booleans, dates: no text to label, and `str()` of them would be labelled without a word.

Output: every input column as it was read (so ids join back), then `label` (the most probable class) and
`p_<class>` (the probability of each class), one row per input row in input order, as CSV, TSV, JSON (an array
of records), JSONL or Parquet by the output's suffix; CSV on standard output without an output file or with `-`.
"""

from __future__ import annotations

import io
import logging
import numbers
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from hpo.errors import HpoError

if TYPE_CHECKING:
    import pandas as pd

    from hpo.classifier.saved import SavedClassifier

__all__ = ["predict_file", "predict_texts"]

log = logging.getLogger("hpo")

STDIN = "-"


def predict_texts(saved: SavedClassifier, texts: Sequence[str]) -> list[dict[str, Any]]:
    """For each text, in order: `{"label": most probable class, "probabilities": {class: probability}}`."""
    from hpo.classifier.saved import predict_proba

    if not texts:
        return []
    probabilities = predict_proba(saved, [str(text) for text in texts]).numpy()
    names = saved.label_names
    return [{"label": names[int(row.argmax())], "probabilities": dict(zip(names, map(float, row), strict=True))}
            for row in probabilities]


def predict_file(
    model_dir: Path, source: Path | str, output: Path | None, text_column: str = "text"
) -> Path | str:
    """Predict every text of `source` (a file, or "-" for stdin lines) and write the table to `output`.

    Returns the path written, or "-" when the table went to standard output (as CSV: no `output`, or "-").
    """
    from hpo.classifier.evaluate import check_model_dir, open_classifier

    output = Path(output) if output is not None and str(output) != STDIN else None
    if output is not None:
        _writer_kind(output)  # an unsupported suffix fails before anything is read
    check_model_dir(Path(model_dir))
    import pandas as pd

    stdin = str(source) == STDIN
    frame = pd.DataFrame({text_column: _stdin_lines()}) if stdin else _read_input(Path(source), text_column)
    saved = open_classifier(model_dir)
    clash = [c for c in ("label", *(f"p_{name}" for name in saved.label_names)) if c in frame.columns]
    if clash:
        raise HpoError(f"{source}: input column{'s' if len(clash) > 1 else ''} {', '.join(map(repr, clash))} "
                       "would be overwritten by the output columns (label, p_<class>); rename them in the input")
    frame = _table(saved, frame, text_column)
    if output is None:
        frame.to_csv(sys.stdout, index=False)
        sys.stdout.flush()
        return STDIN
    _write_table(frame, output)
    return output


def _table(saved: SavedClassifier, frame: pd.DataFrame, text_column: str) -> pd.DataFrame:
    """The input's columns, then the most probable label and each class's probability."""
    from hpo.classifier.saved import predict_proba

    probabilities = predict_proba(saved, [_as_text(value) for value in frame[text_column].tolist()]).numpy()
    out = frame.reset_index(drop=True).copy()
    out["label"] = [saved.label_names[i] for i in probabilities.argmax(-1).tolist()]
    for i, name in enumerate(saved.label_names):
        out[f"p_{name}"] = probabilities[:, i].astype(float)
    return out


def _stdin_lines() -> list[str]:
    """Standard input's non-empty lines, decoded here (not by Python's locale-dependent text layer) so that a byte
    that is not UTF-8 is one clear error."""
    data = sys.stdin.buffer.read()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise HpoError(f"standard input: not UTF-8 text (byte {exc.start} is {data[exc.start]:#04x}); hpo predict "
                       "reads UTF-8 (convert with iconv -t utf-8)") from None
    return _read_lines(io.StringIO(text, newline=None), "standard input")


def _read_lines(lines: Iterable[str], what: str) -> list[str]:
    texts = [text for text in (line.strip() for line in lines) if text]
    if not texts:
        raise HpoError(f"{what}: no texts (give one text per line)")
    return texts


def _read_input(path: Path, text_column: str) -> pd.DataFrame:
    """The input table (a .txt file: one `text_column` row per non-empty line), its text column checked."""
    from hpo.train.data import _READERS, read_table

    kind = "txt" if path.suffix.lower() == ".txt" else _READERS.get(path.suffix.lower())
    if kind is None:
        raise HpoError(f"{path}: unsupported file type; use one of {', '.join(_READERS)}, .txt (a text per line) "
                       "or - for standard input")
    if not path.exists():
        raise HpoError(f"{path}: no such file")
    if path.is_dir():
        raise HpoError(f"{path}: is a directory, not a file of texts")
    if path.stat().st_size == 0:
        raise HpoError(f"{path}: no texts (the file is empty)")
    if kind == "txt":
        import pandas as pd

        data = path.read_bytes()
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise HpoError(f"{path}: not UTF-8 text (byte {exc.start} is {data[exc.start]:#04x}); a .txt input is "
                           "one text per line, in UTF-8 (convert with iconv -t utf-8)") from None
        return pd.DataFrame({text_column: _read_lines(io.StringIO(text, newline=None), str(path))})
    frame = read_table(path)
    if not len(frame):
        raise HpoError(f"{path}: no texts (no rows)")
    if text_column not in frame.columns:
        raise HpoError(
            f"{path}: no column {text_column!r}; columns: {', '.join(map(str, frame.columns)) or 'none'} "
            "(choose one with --text-column)"
        )
    _check_texts(path, text_column, frame[text_column].tolist())
    texts = [_as_text(value) for value in frame[text_column].tolist()]
    empty = sum(1 for text in texts if not text)
    if empty == len(texts):
        raise HpoError(f"{path}: no texts (every {text_column!r} value is empty)")
    if empty:  # kept, so that output row i is input row i
        log.warning("%s: %d of %d texts are empty; they are predicted as empty texts", path, empty, len(texts))
    return frame


def _check_texts(path: Path, column: str, values: list[Any]) -> None:
    """Refuse a cell that holds no text (see the module's docstring), naming the first and counting them."""
    bad = [i for i, value in enumerate(values) if _kind_of_non_text(value) is not None]
    if bad:
        first = values[bad[0]]
        more = f" (and {len(bad) - 1} more row{'s' if len(bad) > 2 else ''})" if len(bad) > 1 else ""
        raise HpoError(f"{path}: column {column!r}, row {bad[0] + 1} (counting from 1) holds {_kind_of_non_text(first)}"
                       f", not text{more}; hpo predict labels texts (strings, or numbers read as text)")


def _kind_of_non_text(value: Any) -> str | None:
    """What a non-text cell holds, in the reader's words; None for text, a number, or an empty cell."""
    if isinstance(value, str) or _is_empty(value):
        return None
    if isinstance(value, bool | np.bool_):
        return "a boolean"
    if isinstance(value, numbers.Number):  # NaN (an empty cell) included
        return None
    if isinstance(value, bytes | bytearray | memoryview):
        return "bytes"
    if isinstance(value, dict):
        return "an object (a mapping)"
    if isinstance(value, list | tuple | set | np.ndarray):
        return "a list"
    return f"a {type(value).__name__}"


def _as_text(value: Any) -> str:
    return "" if _is_empty(value) else str(value).strip()


def _is_empty(value: Any) -> bool:
    """A missing cell, as pandas and pyarrow give it: None, NaN, pandas' NA."""
    import pandas as pd

    return value is None or value is pd.NA or (isinstance(value, float) and value != value)


_WRITERS = {".csv": "csv", ".tsv": "tsv", ".json": "json", ".jsonl": "jsonl", ".parquet": "parquet"}


def _writer_kind(path: Path) -> str:
    kind = _WRITERS.get(path.suffix.lower())
    if kind is None:
        raise HpoError(f"{path}: unsupported output type; use one of {', '.join(_WRITERS)}")
    return kind


def _write_table(frame: pd.DataFrame, path: Path) -> None:
    from hpo.files import write_output

    kind = _writer_kind(path)

    def write(partial: Path) -> None:
        if kind in ("csv", "tsv"):
            frame.to_csv(partial, sep="\t" if kind == "tsv" else ",", index=False)
        elif kind == "json":
            frame.to_json(partial, orient="records", force_ascii=False, indent=2)
        elif kind == "jsonl":
            frame.to_json(partial, orient="records", lines=True, force_ascii=False)
        else:
            frame.to_parquet(partial, index=False)

    write_output(path, write)
