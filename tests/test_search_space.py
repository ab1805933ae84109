"""tune's search space (ppo_toolbox/search_space.py): a --space file is refused at read time, in
one line naming the parameter, unless every value it can give makes settings that work."""
import json

import pytest

import ppo_mountaincar as pm
from helpers import cli, one_line_error
from ppo_toolbox import search_space
from ppo_toolbox.errors import UsageError

BASE = pm.preset_args("default")


@pytest.mark.parametrize("spec, words", [
    ({"hidden_sizes": {"type": "float", "low": 32, "high": 128}}, "'hidden_sizes' in the search space is a float range, "
     "but --hidden-sizes takes whole numbers: use \"type\": \"int\""),
    ({"update_epochs": {"type": "float", "low": 2, "high": 5}}, "--update-epochs takes whole numbers"),
    ({"update_epochs": {"type": "int", "low": 2.5, "high": 5}}, "needs low < high, whole numbers"),
    ({"activation": {"type": "int", "low": 0, "high": 1}}, "use \"type\": \"categorical\""),
    ({"actor_lr": {"type": "float", "low": 1e-4, "high": 10**400}}, "within +/-10^15"),
    ({"update_epochs": {"type": "int", "low": -10**400, "high": 5}}, "within +/-10^15"),
    ({"actor_lr": {"type": "float", "low": float("nan"), "high": 1e-2}}, "within +/-10^15"),
    ({"actor_lr": {"type": "float", "low": 1e-4, "high": 1e-2, "lg": True}}, "has lg, which a float parameter does not take"),
    ({"actor_lr": {"type": "float", "low": 1e-4, "high": 1e-2, "log": "yes"}}, "'actor_lr' in the search space needs"),
])
def test_a_space_that_cannot_work_is_refused_at_read_time(spec, words):
    with pytest.raises(UsageError, match="^'") as refused:
        search_space.check_space(spec, {}, BASE)
    assert words in str(refused.value) and "\n" not in str(refused.value)


def test_a_range_of_whole_numbers_makes_settings_of_the_fields_type():
    class Trial:  # Optuna's suggestions at the low end of each range
        def suggest_int(self, name, low, high, log):
            return low

        def suggest_float(self, name, low, high, log):
            return low
    space = search_space.check_space({"hidden_sizes": {"type": "int", "low": 32, "high": 128},
                                      "explore_bonus": {"type": "int", "low": 0, "high": 10},
                                      "update_epochs": {"type": "int", "low": 2.0, "high": 5}}, {}, BASE)
    values = {name: search_space.suggest(Trial(), name, spec) for name, spec in space.items()}
    assert values == {"hidden_sizes": (32,), "explore_bonus": 0, "update_epochs": 2}
    assert all(type(v) is int for v in values.values() if not isinstance(v, tuple))


def test_the_real_command_refuses_a_float_range_of_sizes_before_any_trial(tmp_path):
    (tmp_path / "space.json").write_text(json.dumps({"hidden_sizes": {"type": "float", "low": 32, "high": 128}}))
    line = one_line_error(cli("tune", "--space", str(tmp_path / "space.json"), "--logdir", str(tmp_path / "exp"),
                              cwd=tmp_path))
    assert "'hidden_sizes' in the search space is a float range" in line
    assert not (tmp_path / "exp").exists()  # no study was made
