"""N worker processes on one study in PostgreSQL: this project's setup against plain Optuna, side by side.

What is measured
----------------
For each worker count N (default 4, 16, 64), three configurations run one after the other, each on a fresh
database (`hpo_bench_<uuid>`, created on the local server and dropped afterwards):

1. ours - what every `hpo run` process does (hpo/search/worker.py): `hpo.storage.open_storage(url)` (the resilient
   RDB storage: one pooled connection, one overflow, heartbeats; the schema lock while it opens) under
   `hpo.storage.study_storage` (Optuna's trial cache, with a direct query for WAITING trials),
   `optuna.create_study(..., load_if_exists=True)`, the budget stored as the study's user attribute `n_trials`,
   then `hpo.search.runner.run_trials(...)`, whose storage admits a trial only while COMPLETE + PRUNED + RUNNING is
   below the budget, counted under the study-row lock Optuna takes to number trials (hpo/budget.py). Workers
   get HPO_STORAGE_RETRY_S=60.
2. plain - Optuna as its documentation shows it: `optuna.storages.RDBStorage(url)` with SQLAlchemy's default
   engine and pool (QueuePool, 5 + 10 overflow per process), `study.optimize(objective, n_trials=budget,
   callbacks=[MaxTrialsCallback(budget, states=(COMPLETE, PRUNED))])` (n_trials is only a cap: no worker can
   need more than the whole budget). Every worker starts on the empty database, so they race to create Optuna's
   tables, and the losers die of a duplicate-type error;
3. plain-pre - the same workers, but the parent created the study (and so the tables) before starting them, the
   usual cure for that race; this is the run to compare throughput, overshoot and connections with.

All use the same objective, which trains nothing, so what is timed is the storage and the coordination
around it: 5 suggestions (3 floats, 1 int, 1 categorical) and 20 intermediate values (`trial.report(v, step)`,
steps 1..20, NopPruner, no `should_prune`), then a returned value. A RandomSampler seeded per process. The
global budget is 300 COMPLETE + PRUNED trials (`--budget`).

Why: a budget must be exact and a worker must not die of a crowded database. Plain Optuna's MaxTrialsCallback
checks the budget only after a trial finishes, so N workers overshoot it by up to N - 1 trials; and nothing
bounds its connections (each process may pool up to 15) or retries a refused connection, so a worker that
meets PostgreSQL's `max_connections` (100 here, shared with anything else on the server) raises and dies.
Ours pays for the exact budget with one count per trial inside that lock and for the heartbeats with a
thread per trial; this script measures what that costs in throughput and what it buys (overshoot, deaths, peak
connections). Results on a 2-CPU machine: benchmarks/results-storage-workers.txt.

How
---
Each worker is this script in `--worker` mode, a subprocess. It imports only what it needs (optuna, hpo.storage,
hpo.search.runner; no torch), says "ready" and waits; when all N are ready the parent releases them at
once and starts the clock, so the import phase of 64 Python processes on a small machine (reported apart, as
"import s") is not timed. wall s = from the release until the last worker exits. A worker "dies" if it
exits non-zero: it catches any exception, prints it and exits 1; the table gives the first line of each
distinct reason. Meanwhile a thread in the parent polls `pg_stat_activity` every 0.1 s for the peak number of
connections to the benchmark's database (and to the whole server, for context). Afterwards the parent counts
the trials by state and the stored intermediate values in the database:
trials/s = COMPLETE + PRUNED trials / wall s; reported values/s = rows of trial_intermediate_values / wall s.
Ratios are ours / plain and ours / plain-pre. Each figure is one sample: on a busy machine rerun to see the spread.

Usage: python benchmarks/storage_workers.py [--workers 4,16,64] [--budget 300] [--setups ours,plain,plain-pre]
       [--quick] [--json PATH] [--keep-logs]
(--quick: 4 workers, budget 40, a smoke test.) Needs PostgreSQL on 127.0.0.1:5432, user postgres, trust auth.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import warnings
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ADMIN_URL = "postgresql+psycopg2://postgres@127.0.0.1:5432/test"
SERVER_URL = "postgresql+psycopg2://postgres@127.0.0.1:5432/{db}"
SETUPS = ("ours", "plain", "plain-pre")
STEPS = 20
SEED = 0
POLL_S = 0.1


# The worker: one process, one setup.

def objective_body(trial: Any) -> float:
    """No training: 5 suggestions and 20 reported values, as a fine-tune's trial would store them."""
    lr = trial.suggest_float("learning_rate", 1e-5, 1e-2, log=True)
    dropout = trial.suggest_float("dropout", 0.0, 0.5)
    weight_decay = trial.suggest_float("weight_decay", 0.0, 0.1)
    depth = trial.suggest_int("freeze_depth", 0, 6)
    pooling = trial.suggest_categorical("pooling", ["mean", "cls", "max"])
    bonus = {"mean": 0.02, "cls": 0.0, "max": 0.01}[pooling]
    value = 0.0
    for step in range(1, STEPS + 1):
        value = (1 - dropout / 4 - weight_decay) * (1 - 1 / (1 + step * lr * 1e3)) + bonus - depth * 1e-3
        trial.report(value, step)
    return value


class _QuietDisplay:
    """What run_trials needs of the live display: counts, trial_finished, note."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()

    def trial_finished(self, trial: Any) -> None:
        pass

    def note(self, text: str) -> None:
        pass


def worker(setup: str, url: str, study_name: str, budget: int, seed: int) -> int:
    import optuna
    from optuna.study import MaxTrialsCallback
    from optuna.trial import TrialState

    import hpo.search.runner
    import hpo.storage

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)  # as `hpo run` does
    print("ready", flush=True)
    if sys.stdin.readline().strip() != "go":
        return 2
    ran = 0
    try:
        sampler = optuna.samplers.RandomSampler(seed=seed)
        pruner = optuna.pruners.NopPruner()
        if setup == "ours":
            storage = hpo.storage.study_storage(hpo.storage.open_storage(url))
            study = optuna.create_study(study_name=study_name, storage=storage, load_if_exists=True,
                                        direction="maximize", sampler=sampler, pruner=pruner)
            if study.user_attrs.get("n_trials") != budget:
                study.set_user_attr("n_trials", budget)

            def objective(trial: optuna.Trial) -> float:
                nonlocal ran
                ran += 1
                return objective_body(trial)

            hpo.search.runner.run_trials(study, objective, budget=budget, display=_QuietDisplay())
        else:  # plain and plain-pre: the same code; for plain-pre the parent created the study before
            storage = optuna.storages.RDBStorage(url)
            study = optuna.create_study(study_name=study_name, storage=storage, load_if_exists=True,
                                        direction="maximize", sampler=sampler, pruner=pruner)

            def objective(trial: optuna.Trial) -> float:
                nonlocal ran
                ran += 1
                return objective_body(trial)

            study.optimize(objective, n_trials=budget,
                           callbacks=[MaxTrialsCallback(budget, states=(TrialState.COMPLETE, TrialState.PRUNED))])
    except BaseException as exc:  # a death: record why, exit 1
        import traceback

        traceback.print_exc()
        reason = _describe(exc)
        print(f"DIED after {ran} trial(s): {reason[:300]}", file=sys.stderr, flush=True)
        print(json.dumps({"ran": ran, "died": reason[:300]}), flush=True)
        return 1
    print(json.dumps({"ran": ran}), flush=True)
    return 0


def _describe(exc: BaseException) -> str:
    """One line: the exception, and the error at the root of its chain when that differs (Optuna wraps a refused
    connection as StorageInternalError "An exception is raised during the commit...")."""

    def line(error: BaseException) -> str:
        text = " ".join(f"{type(error).__name__}: {error}".split())
        return text.split(" [SQL:")[0].split(" (Background on")[0]

    root, seen = exc, {id(exc)}
    while (root.__cause__ or root.__context__) is not None and id(root.__cause__ or root.__context__) not in seen:
        root = root.__cause__ or root.__context__
        seen.add(id(root))
    message = " ".join(str(root).split())
    return line(exc) if root is exc or message in line(exc) else f"{line(exc)[:120]} <- {line(root)}"


# The parent.

@dataclass
class Result:
    setup: str
    workers: int
    budget: int
    wall_s: float = 0.0
    import_s: float = 0.0
    states: dict[str, int] = field(default_factory=dict)
    reported: int = 0
    peak_connections: int = 0
    peak_server_connections: int = 0
    deaths: int = 0
    killed: int = 0  # still running at --timeout
    reasons: dict[str, int] = field(default_factory=dict)
    storage_retries: int = 0  # "storage unavailable ... retrying" warnings logged by our workers
    started_trials: int = 0  # objective calls, summed over the workers that reported them
    per_worker: list[int] = field(default_factory=list)  # objective calls of each worker (-1: unknown)

    @property
    def done(self) -> int:
        return self.states.get("COMPLETE", 0) + self.states.get("PRUNED", 0)

    @property
    def trials_per_s(self) -> float:
        return self.done / self.wall_s if self.wall_s else 0.0

    @property
    def values_per_s(self) -> float:
        return self.reported / self.wall_s if self.wall_s else 0.0


class ConnectionSampler(threading.Thread):
    """Polls pg_stat_activity every POLL_S seconds; its own connection is to the admin database."""

    def __init__(self, dbname: str) -> None:
        super().__init__(daemon=True)
        self.dbname = dbname
        self.peak = 0
        self.peak_server = 0
        self._stop_event = threading.Event()

    def run(self) -> None:
        import psycopg2

        conn = psycopg2.connect(host="127.0.0.1", port=5432, user="postgres", dbname="test")
        conn.autocommit = True
        try:
            with conn.cursor() as cursor:
                while not self._stop_event.is_set():
                    cursor.execute("SELECT count(*) FILTER (WHERE datname = %s), count(*) FILTER (WHERE "
                                   "backend_type = 'client backend') FROM pg_stat_activity", (self.dbname,))
                    mine, server = cursor.fetchone()
                    self.peak, self.peak_server = max(self.peak, mine), max(self.peak_server, server)
                    self._stop_event.wait(POLL_S)
        finally:
            conn.close()

    def stop(self) -> None:
        self._stop_event.set()
        self.join()


def admin_engine() -> Any:
    from sqlalchemy import create_engine
    from sqlalchemy.pool import NullPool

    return create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT", poolclass=NullPool)


def run_configuration(setup: str, n_workers: int, budget: int, timeout: float, logs: Path) -> Result:
    from sqlalchemy import text

    dbname = f"hpo_bench_{uuid.uuid4().hex[:12]}"
    study_name = f"bench-{setup}-{n_workers}"
    url = SERVER_URL.format(db=dbname)
    result = Result(setup, n_workers, budget)
    admin = admin_engine()
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{dbname}"'))
    try:
        if setup == "plain-pre":  # the usual cure for the schema race: create the study once, then the workers
            import optuna

            storage = optuna.storages.RDBStorage(url)
            optuna.create_study(study_name=study_name, storage=storage, direction="maximize")
            storage.engine.dispose()
        env = {**os.environ, "HPO_STORAGE_RETRY_S": "60"} if setup == "ours" else dict(os.environ)
        seed = SEED + 1000 * n_workers + 100 * SETUPS.index(setup)  # a distinct RandomSampler seed per process
        launched = time.perf_counter()
        procs, errs = [], []
        for i in range(n_workers):
            err = (logs / f"{setup}-{n_workers}-{i}.err").open("w+")
            errs.append(err)
            procs.append(subprocess.Popen(
                [sys.executable, __file__, "--worker", setup, "--url", url, "--study", study_name,
                 "--budget", str(budget), "--seed", str(seed + i)],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err, text=True, env=env,
            ))
        for proc in procs:
            if proc.stdout.readline().strip() != "ready":
                raise RuntimeError(f"a {setup} worker did not start; see {logs}")
        result.import_s = time.perf_counter() - launched
        sampler = ConnectionSampler(dbname)
        sampler.start()
        started = time.perf_counter()
        for proc in procs:
            proc.stdin.write("go\n")
            proc.stdin.flush()
        outputs = []
        for proc in procs:
            try:
                out, _ = proc.communicate(timeout=max(0.0, started + timeout - time.perf_counter()))
            except subprocess.TimeoutExpired:
                proc.kill()
                out, _ = proc.communicate()
                result.killed += 1
            outputs.append(out)
        result.wall_s = time.perf_counter() - started
        sampler.stop()
        result.peak_connections, result.peak_server_connections = sampler.peak, sampler.peak_server

        reasons: Counter[str] = Counter()
        for proc, out, err in zip(procs, outputs, errs, strict=True):
            err.seek(0)
            log = err.read()
            err.close()
            result.storage_retries += log.count("storage unavailable")
            last = next((json.loads(line) for line in reversed(out.splitlines()) if line.startswith("{")), {})
            result.started_trials += last.get("ran", 0)
            result.per_worker.append(last.get("ran", -1))
            if proc.returncode != 0:
                result.deaths += 1
                reasons[last.get("died") or f"exit code {proc.returncode}"] += 1
        result.reasons = dict(reasons)
        result.states, result.reported = count_stored(url)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)'))
        admin.dispose()
    return result


def count_stored(url: str) -> tuple[dict[str, int], int]:
    from sqlalchemy import create_engine, inspect, text
    from sqlalchemy.pool import NullPool

    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as connection:
            if not inspect(connection).has_table("trials"):
                return {}, 0
            states = {str(state).split(".")[-1]: n for state, n in
                      connection.execute(text("SELECT state, count(*) FROM trials GROUP BY state"))}
            reported = connection.execute(text("SELECT count(*) FROM trial_intermediate_values")).scalar()
        return states, int(reported or 0)
    finally:
        engine.dispose()


def print_table(results: list[Result]) -> None:
    print(f"{'setup':<9} {'workers':>7} {'import s':>8} {'wall s':>8} {'trials/s':>9} {'values/s':>9} "
          f"{'peak conn':>9} {'(server)':>8} {'deaths':>6} {'done/budget':>12} {'FAIL':>5} {'RUNNING':>7} "
          f"{'retries':>7}")
    for r in results:
        print(f"{r.setup:<9} {r.workers:>7} {r.import_s:>8.1f} {r.wall_s:>8.2f} {r.trials_per_s:>9.2f} "
              f"{r.values_per_s:>9.1f} {r.peak_connections:>9} {r.peak_server_connections:>8} "
              f"{r.deaths + r.killed:>6} {f'{r.done}/{r.budget}':>12} {r.states.get('FAIL', 0):>5} "
              f"{r.states.get('RUNNING', 0):>7} {r.storage_retries:>7}")
    for r in results:
        if r.killed:
            print(f"  {r.setup} x{r.workers}: {r.killed} worker(s) killed at --timeout")
        for reason, n in r.reasons.items():
            print(f"  {r.setup} x{r.workers}: {n} died: {reason}")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--workers", default="4,16,64", help="comma-separated worker counts (default 4,16,64)")
    parser.add_argument("--budget", type=int, default=300, help="global COMPLETE + PRUNED trials (default 300)")
    parser.add_argument("--timeout", type=float, default=900.0,
                        help="seconds per configuration before the remaining workers are killed (default 900)")
    parser.add_argument("--setups", default=",".join(SETUPS), help=f"which to run (default {','.join(SETUPS)})")
    parser.add_argument("--quick", action="store_true", help="4 workers, budget 40: a smoke test")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the figures to this JSON file")
    parser.add_argument("--keep-logs", action="store_true", help="keep the workers' stderr files and say where")
    # worker mode (internal)
    parser.add_argument("--worker", choices=SETUPS, help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--study", help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, default=SEED, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.quick:
        args.workers, args.budget = "4", 40
    args.worker_counts = [int(n) for n in args.workers.split(",") if n.strip()]
    args.setup_names = [name for name in SETUPS if name in args.setups.split(",")]
    return args


def main() -> None:
    args = parse_args()
    if args.worker:
        sys.exit(worker(args.worker, args.url, args.study, args.budget, args.seed))

    import optuna
    import psycopg2
    import sqlalchemy
    from sqlalchemy import text

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with admin_engine().connect() as connection:
        server = connection.execute(text("SHOW server_version")).scalar()
        max_connections = connection.execute(text("SHOW max_connections")).scalar()
        at_start = connection.execute(text("SELECT count(*) FROM pg_stat_activity WHERE backend_type = "
                                           "'client backend'")).scalar()
    print(f"PostgreSQL {server} on 127.0.0.1:5432, max_connections {max_connections} "
          f"({at_start} client connections open at the start, this one included)")
    print(f"optuna {optuna.__version__}, sqlalchemy {sqlalchemy.__version__}, "
          f"psycopg2 {psycopg2.__version__.split()[0]}, python {platform.python_version()}, {os.cpu_count()} CPUs")
    print(f"budget {args.budget} trials (COMPLETE + PRUNED), {STEPS} reported values and 5 params per trial, "
          f"workers {args.worker_counts}")
    if args.quick:
        print("--quick: a smoke test; the figures mean little")

    results: list[Result] = []
    logs = Path(tempfile.mkdtemp(prefix="storage-workers-"))
    for n in args.worker_counts:
        for setup in args.setup_names:
            print(f"running {setup} x{n}…", file=sys.stderr, flush=True)
            results.append(run_configuration(setup, n, args.budget, args.timeout, logs))
    if args.keep_logs:
        print(f"worker logs: {logs}")
    else:
        for path in logs.iterdir():
            path.unlink()
        logs.rmdir()

    print()
    print("ours: hpo.storage.open_storage + hpo.search.runner.run_trials (budget admission); plain: RDBStorage(url),")
    print("default pool, MaxTrialsCallback, every worker starting on the empty database; plain-pre: the same, but the")
    print("parent created the study (and so the schema) before starting the workers.")
    print("wall s: release of the (already imported) workers -> last exit; import s: launch -> all ready, untimed.")
    print("trials/s = COMPLETE + PRUNED / wall; values/s = stored intermediate values / wall; peak conn: to the")
    print("benchmark's database ((server): all client connections); deaths: workers exiting non-zero;")
    print("FAIL / RUNNING: trials left in those states; retries: our storage's logged retries of a refused call.")
    print_table(results)

    by_key = {(r.setup, r.workers): r for r in results}
    ratios: dict[str, dict[str, float]] = {}
    print()
    print("ours / plain per worker count: reported values/s (trials/s); overshoot = done - budget")
    others = [name for name in args.setup_names if name != "ours"]
    header = f"{'workers':>7} " + " ".join(f"{'vs ' + name:>22}" for name in others)
    print(header + " " + " ".join(f"{'overshoot ' + name:>19}" for name in args.setup_names))
    for n in args.worker_counts:
        ours = by_key.get(("ours", n))
        cells = []
        for name in others:
            plain = by_key[(name, n)]
            values = ours.values_per_s / plain.values_per_s if ours and plain.values_per_s else float("nan")
            trials = ours.trials_per_s / plain.trials_per_s if ours and plain.trials_per_s else float("nan")
            ratios.setdefault(str(n), {})[f"vs_{name}"] = values
            ratios[str(n)][f"vs_{name}_trials"] = trials
            cells.append(f"{f'{values:.2f}x ({trials:.2f}x)':>22}")
        overshoot = [f"{by_key[(name, n)].done - by_key[(name, n)].budget:>+19}" for name in args.setup_names]
        print(f"{n:>7} " + " ".join(cells) + " " + " ".join(overshoot))

    if args.json is not None:
        figures = {
            "settings": {"workers": args.worker_counts, "setups": args.setup_names, "budget": args.budget,
                         "steps": STEPS, "params": 5, "quick": args.quick, "timeout_s": args.timeout},
            "environment": {"postgresql": server, "max_connections": int(max_connections),
                            "client_connections_at_start": int(at_start), "optuna": optuna.__version__,
                            "sqlalchemy": sqlalchemy.__version__, "python": platform.python_version(),
                            "cpus": os.cpu_count()},
            "definition": "wall_s: release of the imported workers -> last exit; trials_per_s = COMPLETE + PRUNED "
                          "/ wall_s; values_per_s = stored intermediate values / wall_s",
            "runs": [{**asdict(r), "done": r.done, "trials_per_s": r.trials_per_s, "values_per_s": r.values_per_s}
                     for r in results],
            "ratios_ours_over_plain": ratios,  # reported values/s; *_trials: trials/s
        }
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
        print(f"\nwrote {args.json}")


if __name__ == "__main__":
    main()
