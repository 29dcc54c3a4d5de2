"""One rule for a missing service or tool: under CI=true (what .ci/run sets) it fails the test, elsewhere it skips
it with the reason, so CI can never pass by skipping what it was meant to run."""

from __future__ import annotations

import os
from typing import NoReturn

import pytest

IN_CI = os.environ.get("CI") == "true"


def unavailable(reason: str) -> NoReturn:
    if IN_CI:
        pytest.fail(f"{reason} (CI=true: a missing service is a failure)")
    pytest.skip(reason)
