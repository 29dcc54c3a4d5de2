"""Study files: a bad input fails fast naming the file, the field path and the fault; good ones round-trip."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from hpo.errors import SpecError
from hpo.spec import BUILTIN_DATASETS, Choice, Range, StudySpec, load_spec
from hpo.train.config import TrainConfig
from hpo.workbench import check_study_file
from tests.builders import REPO

ROOT = REPO  # the repository root
QUICKSTART = Path("studies") / "quickstart.yaml"

BASE: dict[str, Any] = {
    "source": {"builtin": "20newsgroups"},
    "target": {"builtin": "reuters-r8"},
    "n_trials": 4,
}


def write(tmp_path: Path, data: dict[str, Any] | str, file: str = "study.yaml") -> Path:
    path = tmp_path / file
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data, sort_keys=False))
    return path


def study(tmp_path: Path, file: str = "study.yaml", **fields: Any) -> Path:
    return write(tmp_path, {**BASE, **fields}, file)


def spec_error(path: Path) -> SpecError:
    """load_spec must refuse the file; the message starts with the file's path."""
    with pytest.raises(SpecError) as caught:
        load_spec(path)
    text = str(caught.value)
    assert text.startswith(f"{path}: "), text
    return caught.value


def problem_line(error: SpecError, field_path: str) -> str:
    """The one `[a -> b] message` line for a field path; fails if the path is not reported."""
    lines = [line.strip() for line in str(error).splitlines()[1:]]
    matching = [line for line in lines if line.startswith(f"[{field_path}] ")]
    assert len(matching) == 1, f"no single problem for [{field_path}] in:\n{error}"
    return matching[0]


# -- unknown keys ------------------------------------------------------------------------------------------


def test_unknown_top_level_key_lists_valid_fields(tmp_path: Path) -> None:
    error = spec_error(study(tmp_path, n_trails=3))
    line = problem_line(error, "n_trails")
    assert "unknown field" in line
    assert "valid fields: " in line
    for field in StudySpec.model_fields:
        assert field in line


@pytest.mark.parametrize(
    ("fields", "field_path", "valid"),
    [
        ({"training": {"learnin_rate": 0.1}}, "training -> learnin_rate", list(TrainConfig.model_fields)),
        ({"sampler": {"name": "tpe", "seeed": 1}}, "sampler -> seeed", ["name", "n_startup_trials"]),
        (
            {"source": {"builtin": "reuters-r8", "text_col": "x"}},
            "source -> text_col",
            ["builtin", "path", "text_column", "label_column", "max_samples"],
        ),
    ],
)
def test_unknown_nested_key_lists_valid_fields(
    tmp_path: Path, fields: dict[str, Any], field_path: str, valid: list[str]
) -> None:
    line = problem_line(spec_error(study(tmp_path, **fields)), field_path)
    assert "unknown field; valid fields: " in line
    for field in valid:
        assert field in line


def test_unknown_builtin_dataset_lists_the_builtins(tmp_path: Path) -> None:
    line = problem_line(spec_error(study(tmp_path, source={"builtin": "imdb"})), "source -> builtin")
    assert "'imdb'" in line
    for name in BUILTIN_DATASETS:
        assert name in line


# -- values outside what a field allows ---------------------------------------------------------------------


@pytest.mark.parametrize(("value", "bound"), [(0, "greater than 0"), (-0.2, "greater than 0"),
                                              (1.5, "less than or equal to 1")])
def test_target_weight_outside_0_1_is_refused_in_training(tmp_path: Path, value: float, bound: str) -> None:
    line = problem_line(spec_error(study(tmp_path, training={"target_weight": value})),
                        "training -> target_weight")
    assert bound in line
    assert f"(got {value})" in line


@pytest.mark.parametrize(
    ("entry", "key", "bound"),
    [
        ({"low": 0.0, "high": 1.0}, "low", "greater than 0"),
        ({"low": 0.1, "high": 1.2}, "high", "less than or equal to 1"),
    ],
)
def test_target_weight_outside_0_1_is_refused_as_a_search_bound(
    tmp_path: Path, entry: dict[str, float], key: str, bound: str
) -> None:
    error = spec_error(study(tmp_path, search_space={"target_weight": entry}))
    assert bound in problem_line(error, f"search_space -> target_weight -> {key}")


def test_target_weight_of_exactly_1_is_allowed(tmp_path: Path) -> None:
    spec = load_spec(study(tmp_path, training={"target_weight": 1.0},
                           search_space={"target_weight": {"low": 0.2, "high": 1.0}}))
    assert spec.training.target_weight == 1.0
    assert spec.search_space["target_weight"].high == 1.0


@pytest.mark.parametrize("value", [0, -1e-3])
def test_non_positive_learning_rate_is_refused_in_training(tmp_path: Path, value: float) -> None:
    line = problem_line(spec_error(study(tmp_path, training={"learning_rate": value})),
                        "training -> learning_rate")
    assert "greater than 0" in line


@pytest.mark.parametrize("low", [0, -1e-5])
def test_non_positive_learning_rate_is_refused_as_a_search_low(tmp_path: Path, low: float) -> None:
    error = spec_error(study(tmp_path, search_space={"learning_rate": {"low": low, "high": 1e-3}}))
    assert "greater than 0" in problem_line(error, "search_space -> learning_rate -> low")


def test_low_not_below_high_is_refused(tmp_path: Path) -> None:
    error = spec_error(study(tmp_path, search_space={"epochs": {"low": 3, "high": 3},
                                                      "l2": {"low": 0.1, "high": 0.01}}))
    assert "low (3) must be below high (3)" in problem_line(error, "search_space -> epochs")
    assert "low (0.1) must be below high (0.01)" in problem_line(error, "search_space -> l2")


def test_log_range_with_low_at_zero_is_refused(tmp_path: Path) -> None:
    error = spec_error(study(tmp_path, search_space={"l2": {"low": 0.0, "high": 0.01, "log": True}}))
    assert "log range needs low > 0" in problem_line(error, "search_space -> l2 -> log")


def test_int_field_given_a_fraction_is_refused(tmp_path: Path) -> None:
    error = spec_error(study(tmp_path, training={"batch_size": 0.5},
                             search_space={"freeze_depth": {"low": 0.5, "high": 3},
                                           "epochs": {"choices": [1, 2.5]}}))
    assert "integer" in problem_line(error, "training -> batch_size")
    line = problem_line(error, "search_space -> freeze_depth -> low")
    assert "freeze_depth is an int field; got 0.5" in line
    assert "(got 2.5)" in problem_line(error, "search_space -> epochs -> choices[1]")


@pytest.mark.parametrize(
    ("name", "entry"), [("device", {"choices": ["cpu", "cuda"]}), ("seed", {"low": 0, "high": 9})]
)
def test_run_settings_cannot_be_searched(tmp_path: Path, name: str, entry: dict[str, Any]) -> None:
    line = problem_line(spec_error(study(tmp_path, search_space={name: entry})), f"search_space -> {name}")
    assert "is fixed for a study; set it under training instead" in line


def test_unknown_search_field_lists_the_searchable_ones(tmp_path: Path) -> None:
    error = spec_error(study(tmp_path, search_space={"learning_rat": {"low": 1e-5, "high": 1e-3}}))
    line = problem_line(error, "search_space -> learning_rat")
    assert "searchable fields: learning_rate, target_weight, freeze_depth" in line
    assert "device" not in line


def test_cmaes_refuses_categorical_fields(tmp_path: Path) -> None:
    space = {"l1": {"choices": [0.0, 1e-6]}, "learning_rate": {"low": 1e-5, "high": 1e-3, "log": True}}
    line = problem_line(spec_error(study(tmp_path, sampler="cmaes", search_space=space)), "sampler -> name")
    assert "cmaes cannot search categorical fields (l1)" in line
    # The same space without the categorical field is fine for cmaes.
    del space["l1"]
    assert load_spec(study(tmp_path, sampler="cmaes", search_space=space)).sampler.name == "cmaes"


def test_a_study_needs_n_trials_or_timeout(tmp_path: Path) -> None:
    data = {key: value for key, value in BASE.items() if key != "n_trials"}
    text = str(spec_error(write(tmp_path, data)))
    assert "give n_trials, timeout or both" in text
    assert load_spec(write(tmp_path, {**data, "timeout": 60})).timeout == 60


def test_invalid_yaml_names_the_line(tmp_path: Path) -> None:
    text = "source: {builtin: reuters-r8}\ntarget: {builtin: reuters-r8}\nsearch_space: [a, b\nn_trials: 3\n"
    path = write(tmp_path, text)
    text = str(spec_error(path))
    assert "not valid YAML" in text
    assert "line 4" in text


def test_a_study_file_must_be_a_mapping(tmp_path: Path) -> None:
    assert "YAML mapping" in str(spec_error(write(tmp_path, "- a\n- b\n")))


def test_a_password_in_storage_is_refused_without_echoing_it(tmp_path: Path) -> None:
    secret = "hunter2-s3cret"
    error = spec_error(study(tmp_path, storage=f"postgresql+psycopg2://bob:{secret}@db.example.com/hpo"))
    assert "must not hold a password" in problem_line(error, "storage")
    assert secret not in str(error)
    assert secret not in repr(error.problems)
    # Without the password the same URL is accepted.
    spec = load_spec(study(tmp_path, storage="postgresql+psycopg2://bob@db.example.com/hpo"))
    assert spec.storage == "postgresql+psycopg2://bob@db.example.com/hpo"


def test_all_problems_are_reported_at_once(tmp_path: Path) -> None:
    error = spec_error(study(tmp_path, bogus=1, training={"target_weight": 2},
                             search_space={"epochs": {"low": 5, "high": 2}}))
    assert str(error).splitlines()[0].endswith("3 problems")
    assert len(error.problems) == 3
    assert "unknown field" in problem_line(error, "bogus")
    assert "less than or equal to 1" in problem_line(error, "training -> target_weight")
    assert "low (5) must be below high (2)" in problem_line(error, "search_space -> epochs")


# -- LoRA, layer-wise decay and the other fields of "Today's transfer" ---------------------------------------


@pytest.mark.parametrize(("fields", "field_path", "adapter_path"), [
    ({"training": {"lora_r": 16}}, "training -> lora_r", "training -> adapter"),
    ({"training": {"adapter": "full"}, "search_space": {"lora_alpha": {"low": 8, "high": 64}}},
     "search_space -> lora_alpha", "training -> adapter"),
    ({"training": {"lora_target_modules": "query,value"}, "search_space": {"adapter": {"choices": ["full"]}}},
     "training -> lora_target_modules", "search_space -> adapter"),
    ({"search_space": {"adapter": "full", "lora_dropout": 0.1}}, "search_space -> lora_dropout",
     "search_space -> adapter"),
])
def test_a_lora_field_where_adapter_can_only_be_full_is_refused_naming_both(
    tmp_path: Path, fields: dict[str, Any], field_path: str, adapter_path: str
) -> None:
    line = problem_line(spec_error(study(tmp_path, **fields)), field_path)
    assert f"is a LoRA setting, but {adapter_path}" in line
    assert "set adapter: lora" in line


@pytest.mark.parametrize("fields", [
    {"training": {"adapter": "lora", "lora_r": 16}, "search_space": {"lora_alpha": {"low": 8.0, "high": 64.0}}},
    {"search_space": {"adapter": {"choices": ["full", "lora"]}, "lora_r": {"low": 4, "high": 32, "log": True},
                      "lora_dropout": 0.1}},
])
def test_lora_fields_are_accepted_where_some_trial_runs_lora(tmp_path: Path, fields: dict[str, Any]) -> None:
    spec = load_spec(study(tmp_path, **fields))
    assert set(fields.get("search_space", {})) <= set(spec.search_space)


def test_a_stored_full_study_loads_again_with_every_lora_default_written(tmp_path: Path) -> None:
    from hpo.spec import dump_spec, spec_from_text

    spec = load_spec(study(tmp_path))
    text = dump_spec(spec)
    assert "adapter: full" in text and "lora_r: 8" in text
    assert spec_from_text(text, source="stored").training == spec.training


def test_lora_target_modules_are_searched_as_text(tmp_path: Path) -> None:
    space = {"lora_target_modules": {"choices": ["all-linear", ["query", "value"]]}}
    error = spec_error(study(tmp_path, training={"adapter": "lora"}, search_space=space))
    line = problem_line(error, "search_space -> lora_target_modules -> choices[1]")
    assert "comma-separated string" in line
    space = {"lora_target_modules": {"choices": ["all-linear", "query,value"]}}
    spec = load_spec(study(tmp_path, training={"adapter": "lora"}, search_space=space))
    assert spec.search_space["lora_target_modules"].choices == ["all-linear", "query,value"]


@pytest.mark.parametrize(("name", "value", "bound"), [
    ("layer_lr_decay", 0, "greater than 0"), ("layer_lr_decay", 1.5, "less than or equal to 1"),
    ("lora_r", 0, "greater than or equal to 1"), ("lora_alpha", 0, "greater than 0"),
    ("lora_dropout", 1.0, "less than 1"), ("lora_target_modules", "query,,value", "no empty names"),
    ("pooling", "max", "'mean', 'cls' or 'last'"),
])
def test_new_training_fields_refuse_values_outside_their_range(tmp_path: Path, name: str, value: Any,
                                                               bound: str) -> None:
    line = problem_line(spec_error(study(tmp_path, training={"adapter": "lora", name: value})), f"training -> {name}")
    assert bound in line


def test_layer_decay_and_pooling_are_searched_and_checkpointing_is_fixed(tmp_path: Path) -> None:
    space = {"layer_lr_decay": {"low": 0.6, "high": 1.0}, "pooling": {"choices": ["mean", "cls"]}}
    assert set(load_spec(study(tmp_path, search_space=space)).searched()) == set(space)
    error = spec_error(study(tmp_path, search_space={"gradient_checkpointing": {"choices": [True, False]}}))
    assert "is fixed for a study" in problem_line(error, "search_space -> gradient_checkpointing")


# -- freeze depth against the model --------------------------------------------------------------------------


def test_freeze_depth_beyond_the_model_is_refused(tmp_path: Path) -> None:
    path = study(tmp_path, search_space={"freeze_depth": {"low": 0, "high": 7}})
    with pytest.raises(SpecError) as caught:
        check_study_file(path, data=False)
    text = str(caught.value)
    assert text.startswith(str(path))
    line = problem_line(caught.value, "search_space -> freeze_depth")
    assert "7 exceeds the 6 layers of bundled:all-MiniLM-L6-v2" in line

    too_deep = study(tmp_path, "fixed.yaml", training={"freeze_depth": 7})
    with pytest.raises(SpecError) as caught:
        check_study_file(too_deep, data=False)
    assert "6 layers" in problem_line(caught.value, "training -> freeze_depth")

    # Every one of the 6 layers may be frozen.
    ok = study(tmp_path, "ok.yaml", search_space={"freeze_depth": {"low": 0, "high": 6}})
    assert check_study_file(ok, data=False).spec.search_space["freeze_depth"].high == 6


# -- a valid file -------------------------------------------------------------------------------------------


def test_a_valid_file_round_trips(tmp_path: Path) -> None:
    path = write(tmp_path, {
        **BASE,
        "validation_size": 100,
        "training": {"epochs": 2, "evaluations_per_epoch": 3, "batch_size": 8},
        "search_space": {
            "freeze_depth": {"low": 0, "high": 6.0},
            "learning_rate": {"low": 1e-5, "high": 1e-3, "log": True},
            "l1": {"choices": [0, 1e-6]},
            "batch_size": 32,
            "penalty_reference": "pretrained",
        },
    }, file="my-study.yaml")
    spec = load_spec(path)
    assert spec.name == "my-study"
    assert spec.validation_size == 100
    assert type(spec.validation_size) is int

    depth = spec.search_space["freeze_depth"]
    assert isinstance(depth, Range)
    assert (depth.low, depth.high, depth.step) == (0, 6, 1)
    assert all(type(value) is int for value in (depth.low, depth.high, depth.step))
    rate = spec.search_space["learning_rate"]
    assert isinstance(rate, Range)
    assert type(rate.low) is float
    assert rate.log
    assert rate.step is None
    l1 = spec.search_space["l1"]
    assert isinstance(l1, Choice)
    assert l1.choices == [0.0, 1e-6]
    assert all(type(value) is float for value in l1.choices)
    assert set(spec.searched()) == {"freeze_depth", "learning_rate", "l1"}

    base = spec.base_config()
    assert base.batch_size == 32  # the fixed search-space value wins over training
    assert base.penalty_reference == "pretrained"
    assert base.epochs == 2
    assert spec.training.batch_size == 8  # the training section itself is unchanged
    assert spec.max_evaluations() == 2 * 3


def test_an_explicit_name_wins_over_the_file_stem(tmp_path: Path) -> None:
    assert load_spec(study(tmp_path, "file.yaml", name="explicit")).name == "explicit"


@pytest.mark.parametrize(
    ("epochs", "expected"),
    [(None, 5 * 2), (4, 4 * 2), ({"low": 1, "high": 4}, 4 * 2), ({"choices": [2, 7, 3]}, 7 * 2)],
)
def test_max_evaluations_uses_the_longest_epochs(tmp_path: Path, epochs: Any, expected: int) -> None:
    space = {} if epochs is None else {"epochs": epochs}
    spec = load_spec(study(tmp_path, training={"epochs": 5, "evaluations_per_epoch": 2}, search_space=space))
    assert spec.max_evaluations() == expected


def test_the_quickstart_study_loads() -> None:
    spec = load_spec(ROOT / QUICKSTART)
    assert spec.name == "quickstart"
    assert spec.max_evaluations() == spec.training.epochs * spec.training.evaluations_per_epoch
    assert check_study_file(ROOT / QUICKSTART, data=False).spec == spec


# -- the command line ---------------------------------------------------------------------------------------


def hpo(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "hpo", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=120, check=False)


def test_cli_validate_reports_a_bad_file_without_a_traceback(tmp_path: Path) -> None:
    path = study(tmp_path, training={"target_weight": 2}, search_space={"epochs": {"low": 5, "high": 2}})
    done = hpo("validate", "--no-data", str(path))
    assert done.returncode == 1, done
    assert str(path) in done.stderr
    assert "[training -> target_weight]" in done.stderr
    assert "[search_space -> epochs]" in done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    assert "is valid" not in done.stdout


def test_cli_validate_accepts_the_quickstart() -> None:
    done = hpo("validate", "--no-data", str(QUICKSTART))
    assert done.returncode == 0, done.stderr
    assert f"{QUICKSTART} is valid" in done.stdout
    assert "Traceback" not in done.stdout + done.stderr


def test_cli_help_lists_the_commands() -> None:
    done = hpo("--help")
    assert done.returncode == 0, done.stderr
    for command in ("run", "validate", "studies"):  # a row of the commands table: name, then its help
        assert re.search(rf"^\W*{command} {{2,}}\w", done.stdout, re.MULTILINE), done.stdout


@pytest.mark.parametrize("path", sorted((REPO / "studies").glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_study_file_is_valid_and_named_after_its_file(path: Path) -> None:
    spec = load_spec(path)  # the same validation `hpo validate` starts with; data are checked by the runs that use it
    assert spec.name == path.stem
