"""Optuna's RDB storage for many workers: outage retry, locks, the budget's admission, retries of lost trials,
one-trip reports, the worker's trial cache, and the queries the rest of the project asks of a study."""

from hpo.storage.budget import BudgetSpent
from hpo.storage.cache import study_storage
from hpo.storage.provenance import provenance_of, store_provenance
from hpo.storage.queries import (
    count_states,
    fail_own_running_trial,
    last_heartbeats,
    limit_trials,
    still_running,
    target_only_tally,
)
from hpo.storage.rdb import HpoRDBStorage, load_study, open_storage, storage_exists
from hpo.storage.retries import DEFAULT_MAX_RETRIES, LOST, retry_trial
from hpo.storage.rows import (
    StudySummary,
    TrialRow,
    best_numbers,
    curves,
    frozen_trials,
    study_summaries,
    trial_numbers,
    trial_rows,
)
from hpo.storage.snapshot import snapshot_study

__all__ = ["DEFAULT_MAX_RETRIES", "LOST", "BudgetSpent", "HpoRDBStorage", "StudySummary", "TrialRow", "best_numbers",
           "count_states", "curves", "fail_own_running_trial", "frozen_trials", "last_heartbeats", "limit_trials",
           "load_study", "open_storage", "provenance_of", "retry_trial", "snapshot_study", "still_running",
           "storage_exists", "store_provenance", "study_storage", "study_summaries", "target_only_tally",
           "trial_numbers", "trial_rows"]
