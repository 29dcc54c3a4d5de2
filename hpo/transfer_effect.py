"""`hpo transfer-effect NAME`: what the source task bought, measured on the target's held-out test split.

Four rows, each over the same seeds (paired by seed):

- zero-shot: no training; each test text gets the label whose (lightly normalised) name embeds closest, by
  cosine, in the mean-pooled pretrained encoder. Deterministic, so the same value for every seed.
- linear probe: the encoder frozen whole (freeze_depth = every layer), λ = 1; only the target head learns, with
  the target-only config's other fields (learning rate, epochs…).
- target only: the best config at λ = 1 found with the study's search budget: from the study's own target-only
  trials when it has at least `MIN_TARGET_ONLY_TRIALS` complete ones, else from a search of its own (study
  `NAME-target-only` in the same storage, the study's file with λ fixed to 1 and the study's budget). A config
  tuned together with λ < 1 would favour transfer.
- transfer: the study's best config with λ < 1.

Each trained row, for each seed s: the study's base training config with the trial's parameters and `seed = s`,
fitted with `Workbench.fit` (as the search did), the weights of its best validation step kept, then evaluated once
on the test split (F1 with the study's `f1_average`, and accuracy). The test split is read here only, never in a
search. The seeds are the study's training seed, +1, +2…, so the first seed repeats the search trial's own run
(its validation F1 is the trial's value on the same device and precision).

Statistics: the mean over seeds and a 95% confidence interval with Student's t (n - 1 degrees of freedom); the
transfer gain is transfer - target only, paired by seed, with its own t interval; NEGATIVE TRANSFER is flagged when
the gain's interval lies wholly below 0 (upper bound < 0). With one seed the intervals are undefined (NaN) and
nothing is flagged.
"""

from __future__ import annotations

import html
import json
import math
import re
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hpo.errors import HpoError

if TYPE_CHECKING:
    import optuna
    from rich.console import Console

    from hpo.resources import Workbench
    from hpo.spec import StudySpec
    from hpo.train.config import TrainConfig
    from hpo.train.data import Corpus

__all__ = [
    "CONFIDENCE",
    "MIN_TARGET_ONLY_TRIALS",
    "ROWS",
    "is_negative_transfer",
    "mean_ci",
    "normalise_label",
    "paired_gain",
    "transfer_effect",
]

# The study's own target-only trials stand for "the best target-only config" only when there are at least this
# many complete ones; otherwise a search of its own, with the study's budget, finds it.
MIN_TARGET_ONLY_TRIALS = 3
CONFIDENCE = 0.95
ROWS = ("zero-shot", "linear probe", "target only", "transfer")
CI_METHOD = (
    "95% confidence interval over seeds with Student's t: mean ± t(0.975, n-1) · s / √n, s the sample standard "
    "deviation of the n per-seed values (scipy.stats.t). The gain is transfer - target only paired by seed: the "
    "same interval over the n per-seed differences. Zero-shot involves no training or seed, so its n values are "
    "identical and its interval has width 0. With n = 1 the intervals are undefined."
)


# -- statistics --------------------------------------------------------------------------------------------------


def mean_ci(values: Sequence[float], confidence: float = CONFIDENCE) -> tuple[float, float, float]:
    """(mean, low, high): the mean and its two-sided Student's t interval (n - 1 degrees of freedom).
    One value: (value, nan, nan), the interval is undefined. Identical values: an interval of width 0."""
    if not len(values):
        raise ValueError("mean_ci needs at least one value")
    n = len(values)
    mean = math.fsum(values) / n
    if n < 2:
        return mean, math.nan, math.nan
    from scipy.stats import t

    sd = math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (n - 1))
    half = float(t.ppf(0.5 + confidence / 2, n - 1)) * sd / math.sqrt(n)
    return mean, mean - half, mean + half


def paired_gain(a: Sequence[float], b: Sequence[float], confidence: float = CONFIDENCE) -> tuple[float, float, float]:
    """(mean, low, high) of a - b paired element by element (by seed): the t interval of the differences."""
    if len(a) != len(b):
        raise ValueError(f"paired values need the same length (got {len(a)} and {len(b)})")
    return mean_ci([x - y for x, y in zip(a, b, strict=True)], confidence)


def is_negative_transfer(ci_high: float) -> bool:
    """The source task hurt: the gain's whole interval is below 0. An undefined interval (NaN) flags nothing."""
    return not math.isnan(ci_high) and ci_high < 0


# -- which configs ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Picked:
    """A trial whose parameters a trained row uses, and where it came from."""

    trial: optuna.trial.FrozenTrial
    study: str
    note: str

    def record(self) -> dict[str, Any]:
        return {"study": self.study, "trial": self.trial.number, "val_f1": self.trial.value,
                "params": dict(self.trial.params), "note": self.note}


def _stored_spec(study: optuna.Study) -> tuple[StudySpec, str]:
    import yaml

    from hpo.spec import parse_spec

    provenance = study.user_attrs.get("provenance")
    if not provenance or "spec_text" not in provenance:
        raise HpoError(f"study {study.study_name!r} was not created by `hpo run` (no study file stored with it)")
    raw = yaml.safe_load(provenance["spec_text"]) or {}
    raw.setdefault("name", study.study_name)
    spec = parse_spec(raw, source=f"study {study.study_name!r} (its stored study file)", base_dir=Path.cwd())
    return spec, provenance["spec_text"]


def _complete(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    from optuna.trial import TrialState

    return sorted(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)), key=lambda t: (-t.value, t.number))


def _transfer_choice(study: optuna.Study, spec: StudySpec) -> Picked:
    from hpo.space import is_target_only

    base_weight = spec.base_config().source_weight
    transfer = [t for t in _complete(study)
                if not is_target_only(t) and t.params.get("source_weight", base_weight) < 1.0]
    if not transfer:
        raise HpoError(f"study {study.study_name!r} has no completed trial with λ < 1 (source_weight below 1): "
                       "there is no transfer to measure")
    best = _complete(study)[0]
    note = "the study's best trial" if best.number == transfer[0].number else \
        f"the best trial with λ < 1 (the study's best, trial {best.number}, is target only)"
    return Picked(transfer[0], study.study_name, note)


def _target_only_choice(study: optuna.Study, spec_text: str, storage_url: str, console: Console) -> Picked:
    from hpo.space import is_target_only

    own = [t for t in _complete(study) if is_target_only(t)]
    if len(own) >= MIN_TARGET_ONLY_TRIALS:
        return Picked(own[0], study.study_name,
                      f"the best of the study's {len(own)} complete target-only trials")
    searched = target_only_search(study, spec_text, storage_url, console)
    complete = _complete(searched)
    if not complete:
        raise HpoError(f"the target-only search {searched.study_name!r} has no completed trial")
    why = f"the study has {len(own)} complete target-only trial(s), fewer than {MIN_TARGET_ONLY_TRIALS}"
    return Picked(complete[0], searched.study_name, f"the best of a target-only search with the study's budget ({why})")


def target_only_search(study: optuna.Study, spec_text: str, storage_url: str, console: Console) -> optuna.Study:
    """Run (or continue, up to its budget) the study `NAME-target-only` in the same storage: the study's own study
    file with λ fixed to 1 and the study's trial budget. Returns that study."""
    import yaml

    from hpo.runner import run

    raw = yaml.safe_load(spec_text) or {}
    name = f"{study.study_name}-target-only"
    raw["name"] = name
    raw["search_space"] = {**(raw.get("search_space") or {}), "source_weight": 1.0}
    budget = study.user_attrs.get("n_trials") or raw.get("n_trials")
    if budget:
        raw["n_trials"] = int(budget)
    for key in ("storage", "exported_from"):
        raw.pop(key, None)
    console.print(f"[bold]target-only search[/]: study {name!r}, λ fixed to 1, {budget or 'no'} trial budget "
                  f"(as {study.study_name!r})", highlight=False)
    with tempfile.TemporaryDirectory(prefix="hpo-target-only-") as folder:
        path = Path(folder) / f"{name}.yaml"
        path.write_text(f"# {name}: study {study.study_name!r} with λ fixed to 1, written by hpo transfer-effect\n"
                        + yaml.safe_dump(raw, sort_keys=False, allow_unicode=True))
        result = run(path, storage=storage_url, console=console)
    if result.message:
        console.print(result.message, highlight=False)
    else:
        from hpo.progress import summary_table

        console.print(summary_table(result.study, storage=result.storage, wall_seconds=result.wall_seconds,
                                    budget=result.budget))
    result.study.set_user_attr("target_only_of", study.study_name)
    return result.study


def _config(spec: StudySpec, params: dict[str, Any], **update: Any) -> TrainConfig:
    from hpo.train.config import TrainConfig

    # The per-trial time limit guards a search against runaway trials; a measurement must finish every fit.
    return TrainConfig.model_validate({**spec.base_config().model_dump(), **params, "time_limit_s": None, **update})


# -- measuring -------------------------------------------------------------------------------------------------


@dataclass
class Row:
    name: str
    f1: list[float] = field(default_factory=list)
    accuracy: list[float] = field(default_factory=list)
    val_f1: list[float] = field(default_factory=list)  # the best validation F1 of each fit (the weights kept)
    choice: Picked | None = None
    config: dict[str, Any] | None = None
    note: str = ""

    def summary(self) -> dict[str, Any]:
        mean, low, high = mean_ci(self.f1)
        acc, acc_low, acc_high = mean_ci(self.accuracy)
        return {
            "f1": _clean(self.f1), "accuracy": _clean(self.accuracy),
            "f1_mean": _num(mean), "f1_ci": [_num(low), _num(high)],
            "accuracy_mean": _num(acc), "accuracy_ci": [_num(acc_low), _num(acc_high)],
            "val_f1": _clean(self.val_f1) or None,
            "trial": self.choice.record() if self.choice else None,
            "config": self.config, "note": self.note,
        }


def _num(value: float) -> float | None:
    """JSON has no NaN: an undefined value is null."""
    return None if value is None or math.isnan(value) else round(float(value), 6)


def _clean(values: list[float]) -> list[float | None]:
    return [_num(v) for v in values]


def normalise_label(name: str) -> str:
    """A label name as words: "money-fx" -> "money fx", "comp.sys.mac.hardware" -> "comp sys mac hardware"."""
    return re.sub(r"[\s._\-/:]+", " ", name).strip() or name


def _device_setup(config: TrainConfig) -> tuple[Any, Any]:
    from hpo.train.loop import resolve_device, resolve_precision

    device = resolve_device(config.device)
    return device, resolve_precision(config.precision, device)


def _embed(model: Any, data: Any, pad_id: int, device: Any, autocast: Any, batch_size: int) -> Any:
    """Unit-length mean-pooled embeddings of every row of `data`, in row order."""
    import numpy as np
    import torch
    import torch.nn.functional as F

    from hpo.train.loop import collate

    order = np.argsort(data.lengths, kind="stable")
    out = torch.empty(len(data), model.encoder.config.hidden_size)
    with torch.inference_mode(), torch.autocast(device.type, dtype=autocast or torch.float32,
                                                 enabled=autocast is not None):
        for start in range(0, len(order), batch_size):
            rows = order[start : start + batch_size]
            ids, mask, _ = collate(data, rows, pad_id, device)
            out[torch.from_numpy(rows)] = F.normalize(model.pool(ids, mask).float(), dim=-1).cpu()
    return out


def zero_shot(bench: Workbench, test: Corpus, config: TrainConfig) -> tuple[float, float, list[str]]:
    """Test F1 and accuracy of labelling each text by the nearest label-name embedding (cosine); and the label
    texts used. No training, no randomness."""
    import numpy as np

    from hpo.train.data import Corpus
    from hpo.train.metrics import accuracy, f1
    from hpo.train.model import TransferModel

    device, autocast = _device_setup(config)
    names = [normalise_label(name) for name in test.label_names]
    labels = Corpus(tuple(names), np.arange(len(names), dtype=np.int64), tuple(names))
    model = TransferModel(bench.bundle.fresh_encoder(), len(names), 1, "mean").to(device).eval()
    batch = config.batch_size * 4
    label_vectors = _embed(model, bench.encoded(labels, config.max_length), bench.pad_id, device, autocast, batch)
    text_vectors = _embed(model, bench.encoded(test, config.max_length), bench.pad_id, device, autocast, batch)
    predictions = (text_vectors @ label_vectors.T).argmax(-1).numpy()
    del model
    _release(device)
    return f1(test.labels, predictions, config.f1_average), accuracy(test.labels, predictions), names


def fit_and_test(
    bench: Workbench, config: TrainConfig, test: Corpus, *, on_step: Callable[[int, int], None] | None = None,
) -> tuple[float, float, float]:
    """Fit `config` as a search trial would, keep the best validation step's weights, and return its test F1
    (the config's f1_average), test accuracy and the validation F1 of the step kept."""
    from hpo.train.loop import NonFiniteLoss, TimeLimitExceeded, evaluate
    from hpo.train.metrics import accuracy, f1

    device, autocast = _device_setup(config)
    model = bench.new_model(config)
    best: dict[str, Any] = {}

    def keep_best(evaluation: Any) -> None:
        if "f1" not in best or evaluation.f1 > best["f1"]:
            best.update(f1=evaluation.f1, state={k: v.detach().clone() for k, v in model.state_dict().items()})

    try:
        model, _ = bench.fit(config, keep_best, model=model, on_step=on_step)
    except (NonFiniteLoss, TimeLimitExceeded) as exc:
        raise HpoError(f"seed {config.seed}: {exc}") from None
    model.load_state_dict(best.pop("state"))  # the weights of the best validation step
    predictions = evaluate(model, bench.encoded(test, config.max_length), bench.pad_id, device, autocast,
                           config.batch_size * 4)
    model = None  # free it before releasing memory
    _release(device)
    return f1(test.labels, predictions, config.f1_average), accuracy(test.labels, predictions), best["f1"]


def _release(device: Any) -> None:
    import gc

    gc.collect()
    if device.type == "cuda":
        import torch

        torch.cuda.empty_cache()


def transfer_effect(
    study: optuna.Study, *, seeds: int = 5, output: Path, storage_url: str, console: Console | None = None,
) -> dict[str, Any]:
    """Measure the four rows over `seeds` seeds on the target's test split; print the table and the gain; write
    `output` (HTML, plotly.js inside) and the same stem with .json. Returns what the JSON holds."""
    from rich.console import Console

    from hpo.runner import check_model, load_data
    from hpo.train.data import load_test

    if seeds < 1:
        raise HpoError(f"--seeds must be at least 1 (got {seeds})")
    console = console or Console()
    started = time.monotonic()
    spec, spec_text = _stored_spec(study)
    transfer = _transfer_choice(study, spec)  # fails fast, before anything is trained
    source = f"study {study.study_name!r}"
    with console.status("checking the model and loading data…"):
        check_model(spec, source)
        data = load_data(spec, source)
        test = load_test(spec.target, data.target_train.label_names)
    target_only = _target_only_choice(study, spec_text, storage_url, console)

    with console.status("loading the model…"):
        from hpo.resources import Workbench
        from hpo.train.model import encoder_layers, load_encoder

        bench = Workbench(load_encoder(spec.model), data)
    depth = len(encoder_layers(bench.bundle.encoder))
    base = spec.base_config()
    seed_list = [base.seed + i for i in range(seeds)]
    trained = {
        "linear probe": (target_only, {**target_only.trial.params, "source_weight": 1.0, "freeze_depth": depth},
                         f"encoder frozen (freeze_depth = {depth}, every layer), λ = 1; the other fields from the "
                         f"target-only config (trial {target_only.trial.number} of {target_only.study!r})"),
        "target only": (target_only, {**target_only.trial.params, "source_weight": 1.0}, target_only.note),
        "transfer": (transfer, dict(transfer.trial.params), transfer.note),
    }
    rows = {name: Row(name) for name in ROWS}
    for name, (choice, params, note) in trained.items():
        rows[name].choice, rows[name].note = choice, note
        rows[name].config = _config(spec, params).model_dump(mode="json", exclude={"seed"})

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True) as progress:
        overall = progress.add_task("zero-shot", total=1 + len(trained) * seeds)
        zs_config = _config(spec, {})
        tick = time.monotonic()
        zs_f1, zs_acc, label_texts = zero_shot(bench, test, zs_config)
        rows["zero-shot"].f1 = [zs_f1] * seeds
        rows["zero-shot"].accuracy = [zs_acc] * seeds
        rows["zero-shot"].note = ("no training: nearest label-name embedding (cosine, mean-pooled pretrained "
                                  "encoder); deterministic, the same value for every seed")
        rows["zero-shot"].config = {"label_texts": label_texts, "max_length": zs_config.max_length, "pooling": "mean"}
        progress.console.print(f"zero-shot      test F1 {zs_f1:.4f}  accuracy {zs_acc:.4f}  "
                               f"({time.monotonic() - tick:.0f} s)", highlight=False)
        progress.advance(overall)
        steps = progress.add_task("", total=None)
        for name, (_choice, params, _note) in trained.items():
            for index, seed in enumerate(seed_list, start=1):
                label = f"{name} · seed {seed} ({index}/{seeds})"
                progress.update(overall, description=label)
                progress.reset(steps, total=None, description="  steps")

                def on_step(step: int, total: int) -> None:
                    progress.update(steps, completed=step, total=total)

                tick = time.monotonic()
                try:
                    row_f1, row_acc, val_f1 = fit_and_test(bench, _config(spec, params, seed=seed), test,
                                                           on_step=on_step)
                except HpoError as exc:
                    raise HpoError(f"{name}: {exc}") from None
                rows[name].f1.append(row_f1)
                rows[name].accuracy.append(row_acc)
                rows[name].val_f1.append(val_f1)
                progress.console.print(f"{name:<14} seed {seed:<3} test F1 {row_f1:.4f}  accuracy {row_acc:.4f}  "
                                       f"(val F1 {val_f1:.4f}, {time.monotonic() - tick:.0f} s)", highlight=False)
                progress.advance(overall)

    gain = paired_gain(rows["transfer"].f1, rows["target only"].f1)
    negative = is_negative_transfer(gain[2])
    result = {
        "study": study.study_name,
        "metric": f"test {base.f1_average} F1",
        "f1_average": base.f1_average,
        "test": {"dataset": spec.target.test_label, "documents": len(test), "classes": len(test.label_names)},
        "seeds": seed_list,
        "confidence": CONFIDENCE,
        "ci_method": CI_METHOD,
        "rows": {name: row.summary() for name, row in rows.items()},
        "gain": {"definition": "transfer - target only, test F1, paired by seed",
                 "per_seed": _clean([a - b for a, b in zip(rows["transfer"].f1, rows["target only"].f1,
                                                            strict=True)]),
                 "mean": _num(gain[0]), "ci": [_num(gain[1]), _num(gain[2])]},
        "negative_transfer": negative,
        "negative_transfer_rule": "flagged when the gain's 95% CI upper bound is below 0",
        "target_only": {"study": target_only.study, "min_own_trials": MIN_TARGET_ONLY_TRIALS,
                        "searched": target_only.study != study.study_name},
        "wall_seconds": round(time.monotonic() - started, 1),
    }
    console.print(_table(result))
    console.print(_gain_line(result), highlight=False)
    console.print(f"[dim]{CI_METHOD}[/]", highlight=False)
    write_outputs(result, Path(output))
    console.print(f"wrote {output} and {Path(output).with_suffix('.json')}", highlight=False)
    return result


# -- output ----------------------------------------------------------------------------------------------------


def _fmt(value: float | None, signed: bool = False) -> str:
    if value is None:
        return "n/a"
    return f"{value:+.4f}" if signed else f"{value:.4f}"


def _ci_text(ci: list[float | None], signed: bool = False) -> str:
    low, high = ci
    if low is None or high is None:
        return "undefined (n = 1)"
    return f"[{_fmt(low, signed)}, {_fmt(high, signed)}]"


def _config_text(summary: dict[str, Any]) -> str:
    trial = summary["trial"]
    return f"trial {trial['trial']} of {trial['study']}" if trial else "none (no training)"


def _table(result: dict[str, Any]) -> Any:
    from rich.table import Table

    table = Table(title=f"transfer effect · study {result['study']} · {result['metric']} on the test split "
                        f"({result['test']['dataset']}, {result['test']['documents']} documents) · "
                        f"{len(result['seeds'])} seeds", title_justify="left")
    for column, justify in (("row", "left"), ("mean F1", "right"), ("95% CI", "right"), ("accuracy", "right"),
                            ("per seed (F1)", "left"), ("config", "left")):
        table.add_column(column, justify=justify, no_wrap=column in ("row", "95% CI"))
    for name, row in result["rows"].items():
        table.add_row(name, _fmt(row["f1_mean"]), _ci_text(row["f1_ci"]), _fmt(row["accuracy_mean"]),
                      " ".join(_fmt(v) for v in row["f1"]), _config_text(row))
    return table


def _gain_line(result: dict[str, Any]) -> str:
    gain = result["gain"]
    line = (f"transfer gain (transfer - target only, paired by seed): [bold]{_fmt(gain['mean'], True)}[/] "
            f"95% CI {_ci_text(gain['ci'], True)}")
    if result["negative_transfer"]:
        return line + "  [bold red]NEGATIVE TRANSFER[/] (the whole interval is below 0)"
    return line


def write_outputs(result: dict[str, Any], output: Path) -> None:
    """The HTML page (bar chart with error bars, the table, plotly.js inside) and the JSON beside it."""
    from hpo.files import write_output

    write_output(output, _page(result))
    write_output(output.with_suffix(".json"), json.dumps(result, indent=2, ensure_ascii=False) + "\n")


def _figure(result: dict[str, Any]) -> Any:
    import plotly.graph_objects as go

    names = list(result["rows"])
    rows = [result["rows"][n] for n in names]
    means = [r["f1_mean"] for r in rows]
    plus = [None if r["f1_ci"][1] is None else r["f1_ci"][1] - r["f1_mean"] for r in rows]
    minus = [None if r["f1_ci"][0] is None else r["f1_mean"] - r["f1_ci"][0] for r in rows]
    colors = ["#7f7f7f", "#9467bd", "#2ca02c", "#1f77b4"]
    figure = go.Figure(go.Bar(
        x=names, y=means, name="mean over seeds", marker_color=colors[: len(names)],
        error_y={"type": "data", "symmetric": False, "array": plus, "arrayminus": minus, "visible": True},
        hovertemplate="%{x}: %{y:.4f}<extra></extra>",
    ))
    xs = [n for n, r in zip(names, rows, strict=True) for _ in r["f1"]]
    ys = [v for r in rows for v in r["f1"]]
    seeds = [s for r in rows for s in result["seeds"][: len(r["f1"])]]
    figure.add_trace(go.Scatter(x=xs, y=ys, mode="markers", name="per seed", customdata=seeds,
                                marker={"color": "black", "size": 6, "opacity": 0.6},
                                hovertemplate="%{x}, seed %{customdata}: %{y:.4f}<extra></extra>"))
    figure.update_layout(template="plotly_white", height=450, margin_t=40,
                         yaxis_title=result["metric"], yaxis_rangemode="tozero",
                         title=f"{result['metric']}: mean and 95% CI (Student's t) over {len(result['seeds'])} seeds")
    return figure


def _page(result: dict[str, Any]) -> str:
    graph = _figure(result).to_html(full_html=False, include_plotlyjs=True, div_id="fig-transfer-effect",
                                    config={"displaylogo": False, "responsive": True})
    esc = html.escape
    body = []
    for name, row in result["rows"].items():
        body.append(
            f'<tr data-row="{esc(name)}"><td>{esc(name)}</td><td class="num">{_fmt(row["f1_mean"])}</td>'
            f'<td class="num">{esc(_ci_text(row["f1_ci"]))}</td><td class="num">{_fmt(row["accuracy_mean"])}</td>'
            f'<td>{esc(" ".join(_fmt(v) for v in row["f1"]))}</td><td>{esc(_config_text(row))}</td>'
            f'<td class="note">{esc(row["note"])}</td></tr>'
        )
    gain = result["gain"]
    flag = ('<strong class="negative" id="negative-transfer">NEGATIVE TRANSFER</strong> (the whole interval is '
            "below 0)") if result["negative_transfer"] else '<span id="negative-transfer">no negative transfer</span>'
    title = f"transfer effect: study {esc(result['study'])}"
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{title}</title>
<style>
body {{ font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 24px auto; max-width: 1300px;
       padding: 0 16px; color: #222; }}
table {{ border-collapse: collapse; margin: 12px 0; }}
th, td {{ border-bottom: 1px solid #ddd; padding: 4px 10px; text-align: left; vertical-align: top; }}
td.num {{ text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }}
td.note, .method {{ color: #555; font-size: 90%; }}
.negative {{ color: #c00; }}
</style>
</head>
<body>
<h1>{title}</h1>
<p>{esc(result['metric'])} on the held-out test split of {esc(result['test']['dataset'])}
({result['test']['documents']} documents, {result['test']['classes']} classes), seeds
{esc(", ".join(map(str, result['seeds'])))}.</p>
{graph}
<table id="transfer-table">
<thead><tr><th>row</th><th>mean F1</th><th>95% CI</th><th>accuracy</th><th>per seed (F1)</th><th>config</th>
<th>what</th></tr></thead>
<tbody>
{chr(10).join(body)}
</tbody>
</table>
<p id="gain">transfer gain ({esc(gain['definition'])}): <b>{_fmt(gain['mean'], True)}</b>, 95% CI
{esc(_ci_text(gain['ci'], True))}; per seed {esc(" ".join(_fmt(v, True) for v in gain['per_seed']))}. {flag}</p>
<p class="method">{esc(result['ci_method'])} Negative transfer is {esc(result['negative_transfer_rule'])}.</p>
</body>
</html>
"""
