"""Names and label values a launch gives its Kubernetes objects, within Kubernetes' limits for any study name.

A study name may hold 128 characters and end with '-', '.' or '_'; a label value holds at most 63 and must start
and end with a letter or digit, and the Job's name also becomes its pods' `batch.kubernetes.io/job-name` label
and their host names. So a name that does not fit is cut and given a short hash of the whole study name: two
studies whose names differ only after the cut still get different labels and names. The full study name is kept
in the annotation `hpo/study-name`, which `hpo stop` checks before deleting anything.
"""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime

from hpo.errors import HpoError
from hpo.spec import check_study_name

__all__ = ["DNS_LABEL", "DNS_SUBDOMAIN", "MAX_LABEL", "MAX_NAME", "job_name", "label_key", "label_value",
           "study_label"]

MAX_LABEL = 63  # a label value, and a DNS label
MAX_NAME = 52  # pods are named `<job>-<index>-<5 random>`, hostnames `<job>-<index>`: keep those under 63
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$")
_HASH = 8  # hex digits of the study name's hash: collisions one in four billion


def label_value(value: str) -> bool:
    return len(value) <= MAX_LABEL and bool(_LABEL_VALUE.fullmatch(value))


def label_key(key: str) -> bool:
    prefix, _, name = key.rpartition("/")
    prefix_ok = not prefix or (len(prefix) <= 253 and bool(DNS_SUBDOMAIN.fullmatch(prefix)))
    return prefix_ok and 0 < len(name) <= MAX_LABEL and bool(_LABEL_VALUE.fullmatch(name))


def _digest(study_name: str) -> str:
    return hashlib.sha256(study_name.encode()).hexdigest()[:_HASH]


def study_label(study_name: str) -> str:
    """The study's `hpo/study` label value: the name itself when it is a label value, else its first characters
    and a hash of the whole name (the same every time, so `hpo stop` selects by it)."""
    check_study_name(study_name)
    if label_value(study_name):
        return study_name
    head = study_name[:MAX_LABEL - _HASH - 1].rstrip("-._")  # a study name starts with a letter or digit
    return f"{head}-{_digest(study_name)}"


def job_name(study_name: str, launched_at: datetime, suffix: str) -> str:
    """`hpo-<study>-<YYYYmmdd-HHMMSS>-<suffix>` within MAX_NAME: the study part is the name when it is already a
    short lower-case DNS label, else the name lower-cased, cut, and followed by a hash of the whole name."""
    check_study_name(study_name)
    if not re.fullmatch(r"[0-9a-f]{1,8}", suffix):
        raise HpoError(f"the name suffix must be 1 to 8 lower-case hex digits (got {suffix!r})")
    stamp = launched_at.astimezone(UTC).strftime("%Y%m%d-%H%M%S")
    room = MAX_NAME - len(f"hpo--{stamp}-{suffix}")
    slug = study_name
    if len(slug) > room or not DNS_LABEL.fullmatch(slug):
        head = re.sub(r"[^a-z0-9]+", "-", study_name.lower())[:room - _HASH - 1].strip("-")
        slug = f"{head}-{_digest(study_name)}" if head else _digest(study_name)
    return f"hpo-{slug}-{stamp}-{suffix}"
