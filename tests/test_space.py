from __future__ import annotations

from pathlib import Path

import optuna
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from autocompress.errors import InputError
from autocompress.recipe import QUANTIZATION_MODES, Recipe
from autocompress.space import SPACES_DIR, SearchSpace
from autocompress.study.fidelity import Fidelity


@pytest.mark.parametrize("name", ["default", "smoke", "techniques", "tflite"])
def test_shipped_spaces_parse_and_sample(name: str) -> None:
    space = SearchSpace.from_yaml(SPACES_DIR / f"{name}.yaml")
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(20):
        recipe = space.sample(study.ask())
        assert isinstance(recipe, Recipe)
        assert 0 < recipe.student_width <= 1
        assert 0 <= recipe.sparsity < 1
        assert recipe.quantization in QUANTIZATION_MODES


def test_stepped_range_samples_only_steps() -> None:
    space = SearchSpace.from_dict({"sparsity": {"low": 0.0, "high": 0.8, "step": 0.2}})
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    values = {space.sample(study.ask()).sparsity for _ in range(60)}
    assert values <= {0.0, 0.2, 0.4, 0.6, 0.8}
    assert len(values) >= 4


def test_stepped_values_equal_the_written_ones() -> None:
    # 0.0 + 3 * 0.1 is 0.30000000000000004 in binary floating point; a sampled 0.3 must equal
    # the 0.3 of a warm-start recipe, or the two never share a cached stage output.
    space = SearchSpace.from_dict({"sparsity": {"low": 0.0, "high": 0.9, "step": 0.1}})
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    values = {space.sample(study.ask()).sparsity for _ in range(200)}
    assert values == {0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9}


def test_fixed_value_is_not_searched() -> None:
    space = SearchSpace.from_dict({"quantization": "int8", "clusters": [16]})
    trial = optuna.create_study().ask()
    recipe = space.sample(trial)
    assert recipe.quantization == "int8" and recipe.clusters == 16
    assert "quantization" not in trial.params and "clusters" not in trial.params


@pytest.mark.parametrize(
    ("doc", "fragment"),
    [
        ({"sparsity_range": [0.1]}, "unknown key 'sparsity_range'"),
        ({"clusters": []}, "empty"),
        ({"sparsity": 1.0}, "[0, 1)"),
        ({"sparsity": {"low": 0.0, "high": 1.0}}, "[0, 1)"),
        ({"clusters": [-4]}, "clusters"),
        ({"clusters": ["16"]}, "expected int"),
        ({"quantization": ["int4"]}, "must be one of"),
        ({"student_width": [0.0]}, "(0, 1]"),
        ({"sparsity": {"low": 0.5, "high": 0.2}}, "below high"),
        ({"sparsity": {"low": 0.0, "high": 0.5, "step": 0.3}}, "multiple of step"),
        ({"sparsity": {"low": 0.0}}, "missing required key 'high'"),
        ({"finetune_epochs": 0}, "between 1"),
        ({"clusters": [8, 8]}, "duplicates"),
    ],
)
def test_bad_space_gives_clear_error(doc: dict, fragment: str) -> None:
    with pytest.raises(InputError) as info:
        SearchSpace.from_dict(doc, source="space.yaml")
    assert str(info.value).startswith("space.yaml: ")
    assert fragment in str(info.value)
    assert "\n" not in str(info.value)


def test_malformed_yaml_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("sparsity: [0.1, 0.2\nclusters: 4\n")
    with pytest.raises(InputError) as info:
        SearchSpace.from_yaml(path)
    assert str(path) in str(info.value) and "line" in str(info.value)


def test_top_level_must_be_mapping(tmp_path: Path) -> None:
    path = tmp_path / "list.yaml"
    path.write_text("- 1\n- 2\n")
    with pytest.raises(InputError, match="mapping"):
        SearchSpace.from_yaml(path)


scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-5, 300), st.floats(allow_nan=True), st.text(max_size=5)
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(
            st.sampled_from(["low", "high", "step", "levels", "eta", "x"]), inner, max_size=4
        ),
    ),
    max_leaves=8,
)
keys = st.sampled_from(
    ["student_width", "sparsity", "clusters", "quantization", "finetune_epochs", "fidelity", "typo"]
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(keys, values, max_size=4))
def test_random_documents_give_space_or_clean_error(tmp_path_factory, doc: dict) -> None:
    path = tmp_path_factory.mktemp("h") / "space.yaml"
    path.write_text(yaml.safe_dump(doc))
    try:
        space = SearchSpace.from_yaml(path)
    except InputError as exc:
        assert str(exc).startswith(str(path)) and "\n" not in str(exc)
        return
    recipe = space.sample(optuna.create_study(sampler=optuna.samplers.RandomSampler(0)).ask())
    space.validate_recipe(recipe, "sampled")


def test_user_recipes_must_fit_the_space(tmp_path: Path) -> None:
    from autocompress.space import load_recipes

    space = SearchSpace.from_yaml(SPACES_DIR / "smoke.yaml")
    path = tmp_path / "mine.yaml"
    path.write_text("- {quantization: int8, sparsity: 0.3}\n")
    [params] = load_recipes(path, space)
    assert params["quantization"] == "int8" and params["sparsity"] == 0.3
    for text, fragment in [
        ("- {sparsity: 0.5}\n", "sparsity=0.5 is outside the search space"),
        ("- {clusterz: 4}\n", "unknown key 'clusterz'"),
        ("quantization: int8\n", "non-empty list"),
        ("- [int8]\n", "must be a mapping"),
    ]:
        path.write_text(text)
        with pytest.raises(InputError) as info:
            load_recipes(path, space)
        assert fragment in str(info.value) and str(path) in str(info.value)


recipe_docs = st.one_of(
    values,
    st.lists(st.dictionaries(keys, values, max_size=3), max_size=3),
    st.lists(values, max_size=2),
)


def test_left_out_techniques_are_off_where_the_space_holds_off(tmp_path: Path) -> None:
    """ "50 % sparsity and int8" means no clustering, no student, ...; a parameter whose off
    value the space lacks is still sampled, and so are training lengths."""
    from autocompress.space import load_recipes

    path = tmp_path / "mine.yaml"
    path.write_text("- {sparsity: 0.5, quantization: int8}\n")
    space = SearchSpace.from_yaml(SPACES_DIR / "default.yaml")
    [params] = load_recipes(path, space)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(0))
    study.enqueue_trial(params)
    recipe = space.sample(study.ask())
    off = Recipe()
    assert (recipe.sparsity, recipe.quantization) == (0.5, "int8")
    for name in ("clusters", "student_width", "rank_energy", "channel_fraction", "exclude"):
        if space.offers(name, getattr(off, name)) or name in params:
            assert getattr(recipe, name) == getattr(off, name), name
    no_off = SearchSpace.from_dict(
        {"sparsity": [0.5], "quantization": ["int8"], "clusters": [8, 16]}
    )
    [params] = load_recipes(path, no_off)
    assert "clusters" not in params  # no off value: sampled


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(recipe_docs)
def test_random_recipe_files_give_recipes_in_space_or_clean_error(tmp_path_factory, doc) -> None:
    from autocompress.space import load_recipes

    space = SearchSpace.from_yaml(SPACES_DIR / "default.yaml")
    path = tmp_path_factory.mktemp("r") / "mine.yaml"
    path.write_text(yaml.safe_dump(doc))
    try:
        recipes = load_recipes(path, space)
    except InputError as exc:
        assert str(exc).startswith(str(path)) and "\n" not in str(exc)
        return
    for params in recipes:  # every accepted recipe can be enqueued and sampled as given
        study = optuna.create_study(sampler=optuna.samplers.RandomSampler(0))
        study.enqueue_trial(params)
        recipe = space.sample(study.ask())
        for key, value in params.items():
            assert getattr(recipe, key) == value


def test_without_choice_drops_one_value() -> None:
    space = SearchSpace.from_yaml(SPACES_DIR / "techniques.yaml")
    assert space.offers("prune_mode", "xnnpack")
    smaller = space.without_choice("prune_mode", "xnnpack")
    assert not smaller.offers("prune_mode", "xnnpack") and smaller.offers("prune_mode", "2:4")
    assert space.offers("prune_mode", "xnnpack")  # the original is unchanged


def test_rows_without_a_record_show_values_on_the_grid() -> None:
    # A failed trial has only Optuna's raw parameters; trials.csv shows them as the recipe had them.
    from autocompress.run.tables import trial_row

    space = SearchSpace.from_dict({"sparsity": {"low": 0.0, "high": 0.9, "step": 0.1}})
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    shown = set()
    for _ in range(60):
        trial = study.ask()
        recipe = space.sample(trial)
        study.tell(trial, state=optuna.trial.TrialState.FAIL)
        row = trial_row(study.trials[-1])
        assert row["sparsity"] == recipe.sparsity
        shown.add(row["sparsity"])
    assert {0.3, 0.6, 0.7} <= shown


def test_fidelity_entry_is_read_and_checked(tmp_path: Path) -> None:
    space = SearchSpace.from_dict(
        {"sparsity": [0.0, 0.5], "fidelity": {"levels": [0, 0.5, 1], "eta": 4}}, "s.yaml"
    )
    assert space.fidelity == Fidelity(levels=(0.0, 0.5, 1.0), eta=4)
    assert SearchSpace.from_dict({"sparsity": [0.0, 0.5]}).fidelity is None
    bad = tmp_path / "bad.yaml"
    bad.write_text("sparsity: [0.0, 0.5]\nfidelity: {levels: [0.0, 0.5]}\n")
    with pytest.raises(InputError, match=r"bad.yaml: fidelity.*1.0"):
        SearchSpace.from_yaml(bad)


def test_every_dimension_is_declared_once_and_consistently() -> None:
    """Each recipe field's declaration names a real stage, its off value passes its own check
    and switches no stage on, and the space's parameters are the recipe's fields."""
    from autocompress.recipe import DIMENSIONS, OFF, QUANT_MODES, RECIPE_FIELDS
    from autocompress.space import _PARAMS
    from autocompress.stages.build import default_stages

    stages = {s.name for s in default_stages()} | {"convert", "fine-tune"}
    assert tuple(_PARAMS) == RECIPE_FIELDS
    for name, d in DIMENSIONS.items():
        assert d.stage in stages, name
        assert d.check(OFF[name]) is None, name
    assert not [s.name for s in default_stages() if s.applies(Recipe())]
    assert len({m.name for m in QUANT_MODES}) == len(QUANT_MODES)
    assert SearchSpace.from_dict({"student_init": ["teacher", "scratch"]}).choices_of(
        "student_init"
    ) == ("teacher", "scratch")
    with pytest.raises(InputError, match="student_init.*teacher, scratch"):
        SearchSpace.from_dict({"student_init": ["random"]})


def test_a_training_choice_no_stage_reads_is_at_its_off_value() -> None:
    """A search builds one model once: student_init without a student and finetune_loss
    without fine-tuning are set to their off values (issue 39)."""
    from autocompress.stages.build import effective

    lone = Recipe(student_init="scratch", finetune_loss="distill", quantization="int8")
    assert effective(lone) == Recipe(quantization="int8")
    student = Recipe(student_width=0.5, student_init="scratch", finetune_loss="distill")
    assert effective(student) == Recipe(student_width=0.5, student_init="scratch")
    pruned = Recipe(sparsity=0.5, student_init="scratch", finetune_loss="distill")
    assert effective(pruned) == Recipe(sparsity=0.5, finetune_loss="distill")
    for sparsity in (0.3, 0.9):  # 2:4 is 50 % whatever the sampled sparsity
        assert effective(Recipe(sparsity=sparsity, prune_mode="2:4")) == Recipe(
            sparsity=0.5, prune_mode="2:4"
        )
