"""Rewrite the golden files under tests/golden/ from the renderers, after a deliberate change to what they render.

Run it by hand (`python scripts/update-goldens.py`), read `git diff tests/golden`, and commit the files with the
change that explains them. The tests only compare; they never write a golden file.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.golden import cases, golden_path, rendered


def main() -> None:
    for kind, name in cases():
        path = golden_path(kind, name)
        text = rendered(kind, name)
        changed = not path.exists() or path.read_text() != text
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        print(f"{'rewrote' if changed else 'unchanged'} {path}")


if __name__ == "__main__":
    main()
