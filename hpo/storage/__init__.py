"""Optuna's RDB storage for many workers: outage retry, locks, the budget's admission, retries of lost trials,
one-trip reports, the worker's trial cache, and the queries the rest of the project asks of a study."""

from hpo.storage.budget import BudgetSpent
from hpo.storage.cache import study_storage
from hpo.storage.queries import count_states, fail_own_running_trial, last_heartbeats, limit_trials, target_only_tally
from hpo.storage.rdb import HpoRDBStorage, load_study, open_storage, storage_exists
from hpo.storage.retries import DEFAULT_MAX_RETRIES, LOST, retry_trial

__all__ = ["DEFAULT_MAX_RETRIES", "LOST", "BudgetSpent", "HpoRDBStorage", "count_states", "fail_own_running_trial",
           "last_heartbeats", "limit_trials", "load_study", "open_storage", "retry_trial", "storage_exists",
           "study_storage", "target_only_tally"]
