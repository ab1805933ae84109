"""The settings (ppo_toolbox/settings.py): each field of the script's `Args` carries its roles
(short name, output only, resumable, searchable), every use reads them from there, and a new
field of one line works everywhere a setting shows."""
import dataclasses
from pathlib import Path

import pytest
from visualdl import LogReader

import ppo_mountaincar as pm
from ppo_toolbox import checkpoint, folders, search_space, settings
from ppo_toolbox import cli as ppo_cli
from ppo_toolbox.errors import UsageError

# The four hand-kept sets the roles replaced, as they stood: each role must say the same.
OLD_SHORT_NAMES = {
    "env_id": "env", "total_timesteps": "steps", "episodes": "eps", "max_episode_steps": "maxlen",
    "fast_env": "fastenv", "num_envs": "envs", "num_steps": "nsteps", "update_on_episode_end": "epupd",
    "gae_lambda": "lam", "update_epochs": "epochs", "batch_size": "bs", "actor_lr": "alr", "critic_lr": "clr",
    "anneal_lr": "annlr", "max_grad_norm": "gclip", "ent_coef": "ent", "anneal_ent": "annent",
    "norm_adv": "normadv", "target_kl": "kl", "hidden_sizes": "h", "activation": "act", "norm_obs": "normobs",
    "explore_bonus": "bonus", "explore_bins": "bins", "explore_decay_steps": "bdecay", "eval_every": "evalint",
    "eval_episodes": "evaleps", "target_return": "target"}
OLD_OUTPUT_SETTINGS = {"logdir", "param_dir", "run_name", "quiet", "plots", "save_every", "keep_snapshots", "device"}
# (and param_dir since a checkpoint outside a run folder continues in a new run folder there)
OLD_RESUMABLE_FLAGS = {"total_timesteps", "episodes", "quiet", "device", "eval_every", "eval_episodes",
                       "target_return", "save_every", "keep_snapshots", "logdir", "param_dir"}
OLD_NOT_SEARCHABLE = {"preset", "env_id", "seed", "device", "logdir", "param_dir", "run_name", "quiet", "plots",
                      "save_every", "keep_snapshots", "eval_every", "eval_episodes", "target_return",
                      "fast_env", "episodes", "total_timesteps"}


def test_every_setting_has_its_roles_beside_it():
    fields = [f.name for f in dataclasses.fields(pm.Args)]
    roles = settings.roles(pm.Args)  # raises on a misspelt role, a long or shared short name
    assert list(roles) == fields
    assert all(f.metadata.get("help") for f in dataclasses.fields(pm.Args))  # every field made by _flag


def test_the_roles_say_what_the_hand_kept_sets_said():
    short, output = settings.short_names(pm.Args), settings.with_role(pm.Args, "output")
    # (an output setting is never shown: its short name, the name cut to 7 characters, is unused)
    assert {k: v for k, v in short.items() if v != k and k not in output} == OLD_SHORT_NAMES
    assert settings.with_role(pm.Args, "output") == OLD_OUTPUT_SETTINGS
    assert settings.with_role(pm.Args, "resumable") == OLD_RESUMABLE_FLAGS
    assert set(short) - settings.with_role(pm.Args, "searchable") == OLD_NOT_SEARCHABLE
    # the HParams table's columns: a few, so that VisualDL's parallel coordinates do not hang
    assert settings.with_role(pm.Args, "column") == {"preset", "env_id", "seed", "total_timesteps", "batch_size",
                                                     "actor_lr", "ent_coef", "hidden_sizes"}


@pytest.mark.parametrize("roles, words", [
    (dict(resumeable=True), "unknown role resumeable"),
    (dict(short="knobknob"), "1 to 7 letters"),
    (dict(short="alr"), "actor_lr's already"),
    (dict(output=True, searchable=True), "never searched"),
])
def test_a_mistake_in_a_settings_roles_is_named(roles, words):
    extended = dataclasses.make_dataclass("Extended", [("demo_knob", float, pm._flag(0.5, "a knob", **roles))],
                                          bases=(pm.Args,))
    with pytest.raises(ValueError, match=words) as e:
        settings.roles(extended)
    assert "Args.demo_knob" in str(e.value)


def test_the_roles_decide_resuming_and_searching():
    config = dataclasses.asdict(pm.Args())
    assert checkpoint.resumed_config(config, {"total_timesteps": 9}, pm.Args)["total_timesteps"] == 9
    with pytest.raises(UsageError, match="--actor-lr cannot change"):
        checkpoint.resumed_config(config, {"actor_lr": 0.1}, pm.Args)
    with pytest.raises(UsageError, match="unknown parameter 'seed'"):
        search_space.check_space({"seed": dict(type="int", low=1, high=5)}, {}, pm.Args())


@dataclasses.dataclass
class WithKnob(pm.Args):
    """Args with one more setting, written as a maintainer would add it: one line, no roles."""
    demo_knob: float = pm._flag(0.5, "a setting added in one line")


def test_a_new_setting_is_one_line(monkeypatch, tmp_path, capsys):
    """The flag, --help, tune's search space and its --show command, the run's name and the
    HParams panel (its columns unchanged): all of them from the field alone."""
    monkeypatch.setattr(pm, "Args", WithKnob)
    # the flag (cli.add_training_flags) and its help
    args = ppo_cli.args_from_cli(ppo_cli.parse_command_line(["--demo-knob", "0.7", "--logdir", str(tmp_path / "exp"),
                                                             "--param-dir", str(tmp_path / "p")]))
    assert isinstance(args, WithKnob) and args.demo_knob == 0.7
    with pytest.raises(SystemExit):
        ppo_cli.parse_command_line(["--help"])
    assert "--demo-knob DEMO_KNOB" in capsys.readouterr().out
    # tune: searchable by default, checked like any other setting
    space = {"demo_knob": dict(type="float", low=0.1, high=0.9)}
    assert search_space.check_space(space, {}, args) == space
    # tune --show: the best trial's command line sets it again
    optuna = pytest.importorskip("optuna")
    from ppo_toolbox.tune import tune_report
    study = optuna.create_study(direction="maximize")
    study.add_trial(optuna.trial.create_trial(params={"demo_knob": 0.3}, value=-120.0, distributions={
        "demo_knob": optuna.distributions.FloatDistribution(0.1, 0.9)}))
    report = tune_report(study, ["--num-envs", "4"], tmp_path / "best.json")
    [command] = [line for line in report.splitlines() if line.startswith("python ppo_mountaincar.py")]
    shown = ppo_cli.args_from_cli(ppo_cli.parse_command_line(command.split()[2:]))
    assert shown.demo_knob == 0.3 and shown.num_envs == 4
    # a run's name shows the change (a short name cut from the field's), the HParams panel a column of it
    assert folders.run_label(args, pm.changed_settings(args)) == "demokno=0.7"
    summary = pm.train(dataclasses.replace(args, total_timesteps=64, num_envs=2, num_steps=32, batch_size=64,
                                           update_epochs=1, eval_every=0, quiet=True, plots=False))
    [record] = (tmp_path / "exp" / summary["run_name"]).glob("vdlrecords.*")
    [hparams] = LogReader(file_path=str(record)).get_data("hyper_parameters", "hparam")
    values = {h.name: getattr(h, h.WhichOneof("type")) for h in hparams.hparam.hparamInfos}
    # the HParams table keeps the columns every run has (a new column would be a NaN cell in
    # every older run): the knob is in the run's name and in its full config, not a column
    assert set(values) == {settings.short_names(pm.Args)[k] for k in settings.with_role(pm.Args, "column")}
    assert Path(summary["actor_path"]).is_file()
