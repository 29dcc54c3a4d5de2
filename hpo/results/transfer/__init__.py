"""`hpo transfer-effect NAME`: what the source task bought, measured on the target's held-out test split.

Four rows, each over the same seeds (paired by seed):

- zero-shot: no training. An encoder: each test text gets the label whose (lightly normalised) name embeds closest,
  by cosine, in the mean-pooled pretrained encoder. A decoder-only model: the label name with the highest summed
  log-likelihood after a fixed prompt, by its LM head (likelihood.py). Deterministic, so the same value for every
  seed; `zero_shot_limit` caps the texts it scores (a seeded draw), for a decoder's cost.
- linear probe: the encoder frozen whole (freeze_depth = every layer), λ = 1; only the target head learns, with
  the target-only config's other fields (learning rate, epochs…).
- target only: the best config at λ = 1 found with the study's search budget (choose.py).
- transfer: the study's best config with λ < 1.

Each trained row, for each seed s: the study's base training config with the trial's parameters and `seed = s`,
fitted with `Workbench.fit` (as the search did), the weights of its best validation step kept, then evaluated once
on the test split (F1 with the study's `f1_average`, and accuracy). The test split is read here only, never in a
search. The seeds are the study's training seed, +1, +2…, so the first seed repeats the search trial's own run
(its validation F1 is the trial's value on the same device and precision).

Statistics (stats.py): the mean over seeds and a 95% confidence interval with Student's t (n - 1 degrees of
freedom); the transfer gain is transfer - target only, paired by seed, with its own t interval; NEGATIVE TRANSFER
is flagged when the gain's interval lies wholly below 0 (upper bound < 0). With one seed the intervals are
undefined (NaN) and nothing is flagged.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hpo.errors import HpoError
from hpo.results.transfer.choose import Picked, TargetOnlySearch, target_only_choice, transfer_choices
from hpo.results.transfer.measure import Row, ZeroShot, fit_and_test, normalise_label, zero_shot, zero_shot_texts
from hpo.results.transfer.page import gain_line, source_lines, text_table, write_outputs, zero_shot_line
from hpo.results.transfer.stats import (
    CI_METHOD,
    CONFIDENCE,
    is_negative_transfer,
    json_number,
    json_numbers,
    mean_ci,
    paired_gain,
    verdict,
)
from hpo.search.space import SOURCE
from hpo.spec import StudySpec, stored_spec
from hpo.spec.sources import NO_SOURCE
from hpo.train.config import LAMBDA, current_names

if TYPE_CHECKING:
    import optuna
    from rich.console import Console
    from rich.progress import Progress

    from hpo.train.data import Corpus
    from hpo.workbench import Workbench

__all__ = ["CONFIDENCE", "ROWS", "is_negative_transfer", "mean_ci", "normalise_label",
           "paired_gain", "transfer_effect", "verdict", "write_outputs"]

ROWS = ("zero-shot", "linear probe", "target only", "transfer")
# row -> (the trial it comes from, its params, a note, the source it trains with: None for the study's only one)
Trained = dict[str, tuple[Picked, dict[str, Any], str, str | None]]


def transfer_effect(
    study: optuna.Study, *, seeds: int = 5, output: Path, storage: str, console: Console | None = None,
    zero_shot_limit: int | None = None,
) -> dict[str, Any]:
    """Measure the four rows over `seeds` seeds on the target's test split (the zero-shot row on at most
    `zero_shot_limit` of its texts); print the table and the gain; write `output` (HTML, plotly.js inside) and the
    same stem with .json. Returns what the JSON holds."""
    from rich.console import Console

    from hpo.train.data import load_test
    from hpo.workbench import open_workbench

    if seeds < 1:
        raise HpoError(f"--seeds must be at least 1 (got {seeds})")
    if zero_shot_limit is not None and zero_shot_limit < 1:
        raise HpoError(f"--zero-shot-limit must be at least 1 (got {zero_shot_limit})")
    console = console or Console()
    started = time.monotonic()
    spec, _ = stored_spec(study)
    transfer = transfer_choices(study, spec)  # fails fast, before anything is trained
    with console.status("checking the model and loading data…"):
        bench = open_workbench(spec, f"study {study.study_name!r}")
        test = load_test(spec.target, bench.data.target_train.label_names)
    target_only, how = target_only_choice(study, spec, storage, console)
    with console.status("loading the model…"):
        trained = _trained_rows(bench, spec, transfer, target_only)
    seed_list = [spec.base_config().seed + i for i in range(seeds)]
    rows, zero = _measure(bench, spec, test, trained, seed_list, console, zero_shot_limit)
    result = _result(study, spec, test, rows, seed_list, how, time.monotonic() - started)
    result["zero_shot"] = _zero_shot_record(zero, len(test), zero_shot_limit)
    result["sources"] = _by_source(spec, trained, rows)
    console.print(text_table(result))
    console.print(gain_line(result), highlight=False)
    console.print(zero_shot_line(result), highlight=False)
    for line in source_lines(result):
        console.print(line, highlight=False)
    console.print(f"[dim]{CI_METHOD}[/]", highlight=False)
    write_outputs(result, Path(output))
    console.print(f"wrote {output} and {Path(output).with_suffix('.json')}", highlight=False)
    return result


def _trained_rows(bench: Workbench, spec: StudySpec, transfer: list[Picked], target_only: Picked) -> Trained:
    """The trained rows: linear probe and target only (no source), the best transfer config (its own source), and,
    where the study searched its source, the best transfer config of each other source it drew."""
    from hpo.train.model import encoder_layers

    depth = len(encoder_layers(bench.bundle.encoder))
    target_only_params = {k: v for k, v in current_names(target_only.trial.params).items() if k != SOURCE}
    target_only_params[LAMBDA] = 1.0
    # the source the target-only trials were built with (their source head's size shapes the random stream): the
    # study's only one, or none where the study searched its source (its target-only search draws none)
    alone = NO_SOURCE if spec.searches_source else None
    rows: Trained = {
        "linear probe": (target_only, {**target_only_params, "freeze_depth": depth},
                         f"encoder frozen (freeze_depth = {depth}, every layer), λ = 1; the other fields from the "
                         f"target-only config (trial {target_only.trial.number} of {target_only.study!r})", alone),
        "target only": (target_only, target_only_params, target_only.note, alone),
    }
    for number, pick in enumerate(transfer):
        key = spec.trial_source(pick.trial.params)
        name = "transfer" if number == 0 else f"transfer · {key}"
        rows[name] = (pick, current_names(pick.trial.params), pick.note, key if spec.searches_source else None)
    return rows


def _by_source(spec: StudySpec, trained: Trained, rows: dict[str, Row]) -> list[dict[str, Any]]:
    """Each source's transfer row and its gain over target only, paired by seed (a study that searched its source;
    empty otherwise)."""
    if not spec.searches_source:
        return []
    found = []
    for name, (_pick, _params, _note, key) in trained.items():
        if name.startswith("transfer"):
            mean, low, high = paired_gain(rows[name].f1, rows["target only"].f1)
            found.append({"source": key, "row": name, "gain": {"mean": json_number(mean),
                                                               "ci": [json_number(low), json_number(high)]},
                          "verdict": verdict(low, high)})
    return found


def _zero_shot_record(zero: ZeroShot, documents: int, limit: int | None) -> dict[str, Any]:
    """What the JSON says of the zero-shot row: which method, on how many of the test texts, under which limit."""
    return {"method": zero.method, "texts": zero.texts, "of": documents, "limit": limit,
            "prompt_style": zero.config.get("prompt_style"), "prompt": zero.config.get("prompt")}


def _measure(bench: Workbench, spec: StudySpec, test: Corpus, trained: Trained, seeds: list[int],
             console: Console, zero_shot_limit: int | None) -> tuple[dict[str, Row], ZeroShot]:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    rows = {name: Row(name) for name in (*ROWS, *trained)}
    for name, (choice, params, note, _source) in trained.items():
        rows[name].choice, rows[name].note = choice, note
        rows[name].config = spec.trial_config(params).model_dump(mode="json", exclude={"seed"})
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True) as progress:
        overall = progress.add_task("zero-shot", total=1 + len(trained) * len(seeds))
        steps = progress.add_task("  texts", total=None)
        zero = _zero_shot_row(rows["zero-shot"], bench, spec, test, zero_shot_limit, len(seeds), progress, steps)
        progress.advance(overall)
        for name, (_choice, params, _note, source) in trained.items():
            for index, seed in enumerate(seeds, start=1):
                progress.update(overall, description=f"{name} · seed {seed} ({index}/{len(seeds)})")
                progress.reset(steps, total=None, description="  steps")
                _fit_row(rows[name], bench, spec.trial_config(params, seed=seed), test, progress, steps, source)
                progress.advance(overall)
    return rows, zero


def _zero_shot_row(row: Row, bench: Workbench, spec: StudySpec, test: Corpus, limit: int | None, seeds: int,
                   progress: Progress, steps: Any) -> ZeroShot:
    """The zero-shot row on the test split, or on the draw of `limit` texts from it (seeded by the study's seed)."""
    config = spec.trial_config({})
    tick = time.monotonic()
    texts = zero_shot_texts(test, limit, config.seed)
    zero = zero_shot(bench, texts, config,
                     on_text=lambda done, total: progress.update(steps, completed=done, total=total))
    row.f1, row.accuracy = [zero.f1] * seeds, [zero.accuracy] * seeds
    row.note, row.config = zero.note, {**zero.config, "texts": zero.texts}
    progress.console.print(f"zero-shot      test F1 {zero.f1:.4f}  accuracy {zero.accuracy:.4f}  ({zero.method}, "
                           f"on {zero.texts} of {len(test)} test texts, {time.monotonic() - tick:.0f} s)",
                           highlight=False)
    return zero


def _fit_row(row: Row, bench: Workbench, config: Any, test: Corpus, progress: Progress, steps: Any,
             source: str | None) -> None:
    tick = time.monotonic()
    try:
        f1, accuracy, value = fit_and_test(
            bench, config, test, on_step=lambda step, total: progress.update(steps, completed=step, total=total),
            source=source)
    except HpoError as exc:
        raise HpoError(f"{row.name}: {exc}") from None
    row.f1.append(f1)
    row.accuracy.append(accuracy)
    row.value.append(value)
    progress.console.print(f"{row.name:<14} seed {config.seed:<3} test F1 {f1:.4f}  accuracy {accuracy:.4f}  "
                           f"({bench.objective.label} {value:.4f}, {time.monotonic() - tick:.0f} s)", highlight=False)


def _result(study: optuna.Study, spec: StudySpec, test: Corpus, rows: dict[str, Row], seeds: list[int],
            target_only: TargetOnlySearch, wall_seconds: float) -> dict[str, Any]:
    """What the JSON holds (and the page and the terminal show)."""
    average = spec.base_config().f1_average
    gain = paired_gain(rows["transfer"].f1, rows["target only"].f1)
    per_seed = [a - b for a, b in zip(rows["transfer"].f1, rows["target only"].f1, strict=True)]
    return {
        "study": study.study_name,
        "metric": f"test {average} F1",
        "f1_average": average,
        "test": {"dataset": spec.target.test_label, "documents": len(test), "classes": len(test.label_names)},
        "seeds": seeds,
        "confidence": CONFIDENCE,
        "ci_method": CI_METHOD,
        "rows": {name: row.summary() for name, row in rows.items()},
        "gain": {"definition": "transfer - target only, test F1, paired by seed", "per_seed": json_numbers(per_seed),
                 "mean": json_number(gain[0]), "ci": [json_number(gain[1]), json_number(gain[2])]},
        "verdict": verdict(gain[1], gain[2]),
        "verdict_rule": "positive when the gain's 95% CI lies above 0, NEGATIVE TRANSFER when it lies below 0, "
                        "inconclusive when it holds 0 (or is undefined)",
        "negative_transfer": is_negative_transfer(gain[2]),
        "target_only": target_only.record(),
        "wall_seconds": round(wall_seconds, 1),
    }
