"""Search spaces: ``search_spaces/*.yaml`` -> a typed spec that samples :class:`Recipe` objects.

Sampling only; no computation. Each parameter is written in one of three forms:

* a scalar: fixed value, not searched (``finetune_epochs: 2``);
* a list: categorical choice (``clusters: [0, 16, 32]``);
* a mapping ``{low, high, step}``: a numeric range; ``step`` discretises it so trials share work.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from autocompress._shipped import shipped_dir
from autocompress._yaml import check_keys, load_mapping, load_yaml
from autocompress.errors import InputError
from autocompress.recipe import DIMENSIONS, EPOCH_FIELDS, OFF, TYPES, Recipe

if TYPE_CHECKING:
    import optuna

    from autocompress.study.fidelity import Fidelity

SPACES_DIR = shipped_dir("search_spaces")


@dataclass(frozen=True)
class Param:
    """One searchable parameter: fixed, categorical or a (stepped) range."""

    name: str
    choices: tuple[Any, ...] | None = None
    low: float | None = None
    high: float | None = None
    step: float | None = None
    is_int: bool = False

    def suggest(self, trial: optuna.Trial) -> Any:
        if self.choices is not None:
            if len(self.choices) == 1:
                return self.choices[0]
            return trial.suggest_categorical(self.name, list(self.choices))
        assert self.low is not None and self.high is not None
        if self.is_int:
            return trial.suggest_int(
                self.name, int(self.low), int(self.high), step=int(self.step or 1)
            )
        value = trial.suggest_float(self.name, self.low, self.high, step=self.step)
        return value if self.step is None else on_grid(value)


def on_grid(value: Any) -> Any:
    """A stepped float as written: Optuna returns low + k * step in binary floating point
    (0.30000000000000004), which would neither equal the 0.3 of a warm-start recipe nor share its
    cached stage outputs. Other values pass through."""
    return round(value, 10) if isinstance(value, float) else value


# name -> (type, check(value) -> problem or None): from the recipe's declarations.
_PARAMS: dict[str, tuple[type, Any]] = {
    name: (TYPES[name], d.check) for name, d in DIMENSIONS.items()
}


@dataclass(frozen=True)
class SearchSpace:
    """The parameters of a search; :meth:`sample` turns an Optuna trial into a :class:`Recipe`."""

    params: tuple[Param, ...]
    source: str = "<dict>"
    # The space's multi-fidelity levels (``fidelity: {levels: [...], eta: 3}``); None: the
    # space has none, and every candidate is built once with its full training.
    fidelity: Fidelity | None = None

    def sample(self, trial: optuna.Trial) -> Recipe:
        return Recipe(**{p.name: p.suggest(trial) for p in self.params})

    def contains(self, recipe: Recipe, ignore: tuple[str, ...] = ()) -> bool:
        """Whether sampling could produce ``recipe`` (choices, ranges and their steps)."""
        values = recipe.to_dict()
        for p in self.params:
            if p.name in ignore:
                continue
            v = values[p.name]
            if p.choices is not None:
                if v not in p.choices:
                    return False
                continue
            assert p.low is not None and p.high is not None
            if not p.low - 1e-9 <= v <= p.high + 1e-9:
                return False
            if p.step is not None:
                n = (v - p.low) / p.step
                if abs(n - round(n)) > 1e-6:
                    return False
        return True

    def params_of(self, recipe: Recipe, ignore: tuple[str, ...] = ()) -> dict[str, Any]:
        """The searched parameters of ``recipe``, as Optuna's ``enqueue_trial`` wants them."""
        values = recipe.to_dict()
        return {
            p.name: values[p.name]
            for p in self.params
            if p.name not in ignore and (p.choices is None or len(p.choices) > 1)
        }

    def offers(self, name: str, value: Any) -> bool:
        """Whether parameter ``name`` can take ``value`` (as a choice)."""
        return any(p.name == name and p.choices and value in p.choices for p in self.params)

    def without_choice(self, name: str, value: Any) -> SearchSpace:
        """This space with ``value`` removed from the choices of ``name`` (kept if it is the
        only choice)."""
        params = tuple(
            dataclasses.replace(p, choices=tuple(c for c in p.choices if c != value))
            if p.name == name and p.choices and len(p.choices) > 1
            else p
            for p in self.params
        )
        return dataclasses.replace(self, params=params)

    def choices_of(self, name: str) -> tuple[Any, ...]:
        """Every value parameter ``name`` can take as a choice (empty for ranges)."""
        return next((p.choices or () for p in self.params if p.name == name), ())

    def validate_recipe(self, recipe: Recipe, source: str) -> None:
        """Check a hand-written recipe (e.g. an enqueued one) against the per-parameter rules."""
        for name, value in recipe.to_dict().items():
            _check_value(source, name, value)

    @classmethod
    def from_yaml(cls, path: str | Path) -> SearchSpace:
        return cls.from_dict(load_mapping(path), source=str(path))

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "<dict>") -> SearchSpace:
        from autocompress.study.fidelity import Fidelity  # (the study package imports this one)

        check_keys(source, data, {*_PARAMS, "fidelity"}, set())
        defaults = Recipe()
        params = []
        for name in _PARAMS:
            value = data.get(name, getattr(defaults, name))
            params.append(_parse_param(source, name, value))
        fidelity = Fidelity.from_dict(source, data["fidelity"]) if "fidelity" in data else None
        return cls(params=tuple(params), source=source, fidelity=fidelity)


def load_recipes(path: str | Path, space: SearchSpace) -> list[dict[str, Any]]:
    """A YAML list of (partial) recipes to try first: ``- {sparsity: 0.5, quantization: int8}``.

    Each value must be one the space can sample. A technique left out is off where the space
    holds its off value (the recipe above is 50 % sparsity and int8, nothing else), else
    sampled; training lengths left out are sampled as usual.
    """
    p = Path(path)
    items = load_yaml(p)
    if not isinstance(items, list) or not items:
        raise InputError(str(p), "expected a non-empty list of recipes")
    recipes = []
    for i, item in enumerate(items):
        where = f"{p} (recipe {i + 1})"
        if not isinstance(item, dict):
            raise InputError(where, "a recipe must be a mapping such as {quantization: int8}")
        check_keys(where, item, set(_PARAMS), set())
        values = {k: _check_value(where, k, v) for k, v in item.items()}
        off = OFF
        for q in space.params:
            if q.name not in values and q.name not in EPOCH_FIELDS and _holds(space, q, off):
                values[q.name] = off[q.name]
        full = Recipe(**{p.name: values.get(p.name, _any_value(p)) for p in space.params})
        if not space.contains(full):
            bad = next(
                k
                for k in values
                if not space.contains(
                    Recipe(**{**{q.name: _any_value(q) for q in space.params}, k: values[k]})
                )
            )
            raise InputError(where, f"{bad}={values[bad]!r} is outside the search space")
        recipes.append(space.params_of(full, ignore=tuple(k for k in _PARAMS if k not in values)))
    return recipes


def _holds(space: SearchSpace, p: Param, values: dict[str, Any]) -> bool:
    """Whether parameter ``p`` of ``space`` can take its value in ``values``."""
    probe = {q.name: _any_value(q) for q in space.params}
    return space.contains(Recipe(**{**probe, p.name: values[p.name]}))


def _any_value(p: Param) -> Any:
    """A value the parameter can take (its first choice or its lower bound)."""
    return p.choices[0] if p.choices is not None else (int(p.low) if p.is_int else p.low)


def resolve_space(name_or_path: str | Path) -> Path:
    """A path as given, or a bare name looked up in the shipped ``search_spaces/``."""
    p = Path(name_or_path)
    if p.exists() or p.suffix in (".yaml", ".yml"):
        return p
    return SPACES_DIR / f"{name_or_path}.yaml"


def _check_value(source: str, name: str, value: Any) -> Any:
    kind, validate = _PARAMS[name]
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if isinstance(value, bool) or not isinstance(value, kind):
        raise InputError(source, f"{name}: expected {kind.__name__}, got {value!r}")
    if kind is float and not math.isfinite(value):
        raise InputError(source, f"{name}: {value!r} is not a finite number")
    problem = validate(value)
    if problem:
        raise InputError(source, f"{name}: {value!r} {problem}")
    return value


def _parse_param(source: str, name: str, spec: Any) -> Param:
    kind, _ = _PARAMS[name]
    if isinstance(spec, list):
        if not spec:
            raise InputError(source, f"{name}: the list of choices is empty")
        values = tuple(_check_value(source, name, v) for v in spec)
        if len(set(values)) != len(values):
            raise InputError(source, f"{name}: the list of choices has duplicates")
        return Param(name=name, choices=values)
    if isinstance(spec, dict):
        if kind is str:
            raise InputError(source, f"{name}: expected a value or a list of choices")
        check_keys(f"{source}: {name}", spec, {"low", "high", "step"}, {"low", "high"})
        low = _check_value(source, name, spec["low"])
        high = _check_value(source, name, spec["high"])
        if low >= high:
            raise InputError(source, f"{name}: low ({low}) must be below high ({high})")
        step = spec.get("step")
        if step is not None:
            if isinstance(step, bool) or not isinstance(step, int | float) or step <= 0:
                raise InputError(source, f"{name}: step must be a positive number, got {step!r}")
            if kind is int and not isinstance(step, int):
                raise InputError(source, f"{name}: step must be an integer, got {step!r}")
            n = (high - low) / step
            if abs(n - round(n)) > 1e-9:
                raise InputError(source, f"{name}: high - low must be a multiple of step")
        return Param(name=name, low=low, high=high, step=step, is_int=kind is int)
    return Param(name=name, choices=(_check_value(source, name, spec),))
