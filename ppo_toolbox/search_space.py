"""The search space of `tune`: the default one (`SEARCH_SPACE`), reading one from a JSON file
without trusting it (`read_space`), checking it against the settings it will make
(`check_space`), and drawing a trial's values from it (`suggest`). Works on any `Args`
instance; imports `errors` and `settings`."""
from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path
from typing import Any

from .errors import UsageError
from .settings import field_types, parse_sizes, validate, with_role


# The default search space: ranges a PPO practitioner would accept. A JSON file of the same
# form (--space) replaces it; flags given on the command line are fixed for every trial.
SEARCH_SPACE: dict[str, dict[str, Any]] = {
    "actor_lr": dict(type="float", low=1e-4, high=1e-2, log=True),
    "critic_lr": dict(type="float", low=1e-4, high=1e-2, log=True),
    "anneal_lr": dict(type="categorical", choices=[True, False]),
    "ent_coef": dict(type="float", low=1e-4, high=0.2, log=True),
    "anneal_ent": dict(type="categorical", choices=[True, False]),
    "update_epochs": dict(type="int", low=2, high=15),
    "batch_size": dict(type="categorical", choices=[128, 256, 512, 1024]),
    "hidden_sizes": dict(type="categorical", choices=["64", "64,64", "128,128", "256,256"]),
    "gae_lambda": dict(type="float", low=0.8, high=1.0),
    "gamma": dict(type="float", low=0.95, high=0.999),
    "clip": dict(type="float", low=0.1, high=0.3),
    "explore_bonus": dict(type="float", low=0.0, high=10.0),
    "explore_decay_steps": dict(type="int", low=20_000, high=300_000, log=True),
}
MAX_BOUND = 1e15  # no setting goes near it (the largest: 10^10 steps); past it a bound is a typo
# What a parameter's entry may hold, by its type
RANGE = {"type", "low", "high", "log"}
KEYS = {"categorical": {"type", "choices"}, "float": RANGE, "int": RANGE}


def read_space(path: str) -> Any:
    """A --space file: a regular JSON file of at most 64 KB, nested no deeper than a space is."""
    p = Path(path)
    if not p.is_file():
        raise UsageError(f"the search space {path} is not a regular file; pass a JSON file")
    try:
        with open(p, "rb") as f:
            text = f.read(2**16 + 1)
        if len(text) > 2**16:
            raise ValueError("larger than 64 KB")
        depth = max(_nesting(text), 0)
        if depth > 4:
            raise ValueError(f"nested {depth} deep")
        return json.loads(text)
    except (OSError, ValueError) as e:
        raise UsageError(f"cannot read the search space {path} ({str(e)[:120]}); pass a JSON file") from None


def _nesting(text: bytes) -> int:
    """How deep brackets nest in a JSON text (strings aside), without parsing it."""
    depth = deepest = 0
    in_string = escaped = False
    for c in text.decode("utf-8", "replace"):
        if in_string:
            escaped, in_string = (not escaped and c == "\\"), in_string and (escaped or c != '"')
        elif c == '"':
            in_string = True
        elif c in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif c in "]}":
            depth -= 1
    return deepest


def check_space(space: Any, fixed: dict[str, Any], base: Any) -> dict[str, dict[str, Any]]:
    """A search space checked and without the fixed settings (and without the bonus's decay
    when the bonus is fixed at 0); every problem is a UsageError naming the parameter. Every
    choice and both ends of every range must make, with the other settings of `base`,
    settings that `validate` accepts."""
    if not isinstance(space, dict) or not space:
        raise UsageError("the search space must be a JSON object of parameters, e.g. "
                         '{"actor_lr": {"type": "float", "low": 1e-4, "high": 1e-2, "log": true}}')
    searchable = with_role(base, "searchable")  # each field of Args says whether tune may search it
    types = field_types(type(base))
    for name, spec in space.items():
        if name not in searchable:
            raise UsageError(f"unknown parameter '{name}' in the search space; searchable: "
                             + ", ".join(sorted(searchable)))
        kind = spec.get("type") if isinstance(spec, dict) else None
        extra = set(spec) - KEYS[kind] if kind in KEYS else set()
        if extra:
            raise UsageError(f"'{name}' in the search space has {', '.join(sorted(map(str, extra)))[:60]}, which "
                             f"a {kind} parameter does not take; it takes {', '.join(sorted(KEYS[kind]))}")
        takes = types[name]  # what Optuna's suggestion becomes: an int range for a float setting is fine
        if kind in ("float", "int") and takes not in (int, float, tuple) or kind == "float" and takes is not float:
            layers = " (one layer of that size) or \"categorical\" with choices like [\"64\", \"64,64\"]"
            raise UsageError(f"'{name}' in the search space is {'an int' if kind == 'int' else 'a float'} range, but "
                             f"--{name.replace('_', '-')} takes " + (
                                 "whole numbers: use \"type\": \"int\"" + (layers if takes is tuple else "")
                                 if takes in (int, tuple) else "one of its values: use \"type\": \"categorical\""))
        if kind == "categorical":
            choices = spec.get("choices")
            if not isinstance(choices, list) or not 0 < len(choices) <= 100 or not all(
                    type(c) in (str, int, float, bool) for c in choices):
                raise UsageError(f"'{name}' in the search space needs a list of up to 100 plain choices")
        elif kind in ("float", "int"):
            low, high = spec.get("low"), spec.get("high")
            if not all(isinstance(x, (int, float)) and not isinstance(x, bool) and -MAX_BOUND <= x <= MAX_BOUND
                       and (kind == "float" or x == int(x)) for x in (low, high)) or not low < high \
                    or spec.get("log") not in (None, True, False) or (spec.get("log") and low <= 0):
                raise UsageError(f"'{name}' in the search space needs low < high, {'whole ' if kind == 'int' else ''}"
                                 "numbers within +/-10^15 (low > 0 with \"log\": true), e.g. "
                                 + json.dumps(SEARCH_SPACE.get(name, dict(low=1, high=10))))
        else:
            raise UsageError(f"'{name}' in the search space needs \"type\": \"float\", \"int\" or \"categorical\"")
    dropped = set(fixed) | ({"explore_decay_steps"} if fixed.get("explore_bonus") == 0 else set())
    left = {k: v for k, v in space.items() if k not in dropped}
    for name, spec in left.items():
        for value in spec["choices"] if spec["type"] == "categorical" else (spec["low"], spec["high"]):
            try:
                value = parse_sizes(str(value)) if name == "hidden_sizes" else \
                    int(value) if spec["type"] == "int" else float(value) if spec["type"] == "float" else value
                validate(dataclasses.replace(base, **{name: value}))
            except (UsageError, ValueError, OverflowError, argparse.ArgumentTypeError) as e:
                raise UsageError(f"'{name}' in the search space reaches {str(value)[:30]}, which cannot work "
                                 f"({str(e)[:100]})") from None
    if not left:
        raise UsageError("every parameter of the search space is fixed on the command line; leave some out")
    return left


def suggest(trial: Any, name: str, spec: dict[str, Any]) -> Any:
    """The trial's value of one parameter, converted to the Args field's type."""
    if spec["type"] == "categorical":
        value = trial.suggest_categorical(name, spec["choices"])
    elif spec["type"] == "int":
        value = trial.suggest_int(name, int(spec["low"]), int(spec["high"]), log=bool(spec.get("log")))
    else:
        value = trial.suggest_float(name, float(spec["low"]), float(spec["high"]), log=bool(spec.get("log")))
    return parse_sizes(str(value)) if name == "hidden_sizes" else value
