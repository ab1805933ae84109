"""The docs: the two READMEs, the pages under docs/ with their Chinese twins under docs/zh/, and
the notebooks. Every relative link and anchor resolves; every command they show is one the
program's parser accepts; the numbers, names and lists they quote from the code are the code's;
both languages stay in step (the same commands, numbers and headings); the generated blocks say
where they come from; and the English notebook runs top to bottom (the only training here)."""
import dataclasses
import io
import re
import shlex
import tokenize
import unicodedata
from collections import Counter
from contextlib import redirect_stdout
from pathlib import Path

import pytest
from helpers import ROOT

import ppo_mountaincar as pm
from ppo_toolbox import export, settings
from ppo_toolbox import cli as ppo_cli

PAGES = sorted(p.name for p in (ROOT / "docs").glob("*.md"))
PAIRS = [("README.md", "README_cn.md")] + [(f"docs/{name}", f"docs/zh/{name}") for name in PAGES]
ENGLISH, CHINESE = [en for en, _ in PAIRS], [zh for _, zh in PAIRS]
NOTEBOOKS = ("notebooks/ppo_mountaincar_en.ipynb", "notebooks/ppo_mountaincar_zh.ipynb")
COMMAND = re.compile(r"^\s*(python ppo_mountaincar\.py[^#\n]*)", re.M)
FENCE = re.compile(r"^```.*?^```", re.M | re.S)
# numbers a reader would compare: with a decimal point, a thousands comma or an exponent
NUMBER = re.compile(r"(?<![\w.])-?(?:\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+\.\d+(?:e-?\d+)?|\d+e-?\d+)(?!\d)")


def text(name: str) -> str:
    return (ROOT / name).read_text(encoding="utf-8")


def prose(name: str) -> str:
    """A page without its fenced code blocks (a `# comment` there is no heading)."""
    return FENCE.sub("", text(name))


def commands(name: str) -> set[str]:
    """Every `python ppo_mountaincar.py ...` line of a page's code blocks, comments dropped."""
    return {" ".join(c.split()) for c in COMMAND.findall(text(name))}


def headings(name: str) -> list[tuple[int, str]]:
    return [(len(m.group(1)), m.group(2).strip()) for m in re.finditer(r"^(#{1,6}) (.+)$", prose(name), re.M)]


def slug(heading: str) -> str:
    """The anchor a code host gives a heading: lower case, punctuation dropped, spaces as hyphens."""
    heading = heading.replace("`", "").lower()
    kept = "".join(c for c in heading if c in " -_" or unicodedata.category(c)[0] in "LN")
    return kept.replace(" ", "-")


def anchors(name: str) -> set[str]:
    seen: dict[str, int] = {}
    for _, heading in headings(name):
        s = slug(heading)
        seen[s] = seen.get(s, -1) + 1
        yield s if seen[s] == 0 else f"{s}-{seen[s]}"


def notebook_cells(name: str, kind: str) -> list[str]:
    import nbformat
    return [c.source for c in nbformat.read(ROOT / name, as_version=4).cells if c.cell_type == kind]


# -- the pages exist, are short where they must be, and link correctly ----------------------
def test_every_page_has_its_chinese_twin():
    assert len(PAGES) >= 9
    assert sorted(p.name for p in (ROOT / "docs" / "zh").glob("*.md")) == PAGES


@pytest.mark.parametrize("name", ["README.md", "README_cn.md"])
def test_the_front_page_is_short_and_starts_with_what_a_visitor_needs(name):
    lines = text(name).splitlines()
    assert len(lines) <= 250, len(lines)
    first_screen = "\n".join(lines[:40])
    assert "pip install -r requirements.txt" in first_screen and "3.10" in first_screen
    assert "how-ppo-works.md" in "\n".join(lines[:20])  # one click away
    other = "README.md" if name == "README_cn.md" else "README_cn.md"
    assert f"({other})" in text(name).split("\n\n")[1]
    for picture in ("replay.gif", "training_curve.png", "policy_value.png"):
        assert f"](docs/img/{picture})" in text(name) or f'src="docs/img/{picture}"' in text(name), picture


@pytest.mark.parametrize("name", ["README.md", "README_cn.md", *[f"docs/{p}" for p in PAGES],
                                  *[f"docs/zh/{p}" for p in PAGES], *NOTEBOOKS])
def test_every_relative_link_and_anchor_resolves(name):
    page = ROOT / name
    body = "\n".join(notebook_cells(name, "markdown")) if name.endswith(".ipynb") else FENCE.sub("", text(name))
    links = re.findall(r"\]\(([^)\s]+)\)", body) + re.findall(r'<img src="([^"]+)"', body)
    assert links, name
    for link in links:
        if re.match(r"[a-z]+:", link):
            continue  # a web address
        path, _, anchor = link.partition("#")
        target = (page.parent / path).resolve() if path else page
        assert target.exists() and ROOT in target.parents, (name, link)
        if anchor:
            assert anchor in set(anchors(str(target.relative_to(ROOT)))), (name, link)


def test_chinese_readers_start_visualdl_in_chinese():
    for name in [*CHINESE, NOTEBOOKS[1]]:
        body = text(name)
        assert "--language en" not in body, name
    assert "--language zh" in text("README_cn.md") and "--language en" in text("README.md")


# -- commands ---------------------------------------------------------------------------------
ALL_COMMANDS = sorted(set().union(*(commands(n) for n in ENGLISH)))


@pytest.mark.parametrize("command", ALL_COMMANDS)
def test_every_documented_command_parses(command):
    argv = shlex.split(command)[2:]
    if "--help" in argv:
        out = io.StringIO()
        with redirect_stdout(out), pytest.raises(SystemExit) as stop:
            ppo_cli.parse_command_line(argv)
        assert stop.value.code == 0 and "--total-timesteps" in out.getvalue()
        return
    ns = ppo_cli.parse_command_line(argv)
    if ns.command == "train":
        settings.validate(ppo_cli.args_from_cli(ns))  # and its settings are accepted


def test_the_docs_show_every_command_of_the_program():
    shown = {shlex.split(c)[2] for c in ALL_COMMANDS if len(shlex.split(c)) > 2}
    assert {"eval", "replay", "plot", "export", "tune", "train"} <= shown


def test_every_flag_the_docs_name_is_one_the_program_has():
    parser = ppo_cli.build_parser()
    flags = set()
    for action in parser._actions:  # noqa: SLF001 - argparse keeps its subparsers there
        for sub in getattr(action, "choices", None) or {}:
            flags |= {o for a in action.choices[sub]._actions for o in a.option_strings}  # noqa: SLF001
    others = {"--optimize", "--language", "--disable-telemetry"}  # RL Zoo's and VisualDL's
    for name in ENGLISH + CHINESE:
        named = set(re.findall(r"`(--[a-z][a-z-]*)", prose(name)))
        assert named - flags - others == set(), name


# -- both languages in step -------------------------------------------------------------------
@pytest.mark.parametrize("english,chinese", PAIRS)
def test_both_languages_show_the_same_commands(english, chinese):
    assert commands(english) == commands(chinese), (commands(english) ^ commands(chinese))


@pytest.mark.parametrize("english,chinese", PAIRS)
def test_both_languages_quote_the_same_numbers(english, chinese):
    en, zh = Counter(NUMBER.findall(text(english))), Counter(NUMBER.findall(text(chinese)))
    assert en == zh, f"more in {english}: {dict(en - zh)}; more in {chinese}: {dict(zh - en)}"


@pytest.mark.parametrize("english,chinese", PAIRS)
def test_both_languages_have_the_same_headings_structure(english, chinese):
    assert [level for level, _ in headings(english)] == [level for level, _ in headings(chinese)]


@pytest.mark.parametrize("name", ENGLISH + CHINESE)
def test_no_sentence_is_tied_to_when_it_was_written(name):
    dated = re.compile(r"this round|last round|previous (?:main|round|version)|previously|this version|"
                       r"本轮|上一轮|上一版|本版|之前的版本", re.I)
    assert not dated.findall(text(name)), (name, dated.findall(text(name)))


# -- what the docs quote from the code --------------------------------------------------------
def lr(value: float) -> str:
    return f"{value:.0e}".replace("e-0", "e-")


PRESET_FACTS = {  # what each preset's row on the front page says, from PRESETS
    "default": lambda a: [f"{a.num_envs} ", f"{a.num_steps} ", f"GAE({a.gae_lambda})", f"{a.update_epochs} ",
                          f"{a.batch_size:,}", lr(a.actor_lr), f"{a.ent_coef}", f"{a.hidden_sizes[0]} "],
    "best": lambda a: [f"{a.num_envs} ", f"{a.batch_size:,}", f"{a.total_timesteps:,}"],
    "thorough": lambda a: [f"{a.hidden_sizes[0]} ", f"{a.batch_size:,}", lr(a.actor_lr)],
    "tutorial": lambda a: [f"{a.hidden_sizes[0]} ", f"{a.episodes:,}"],
}


@pytest.mark.parametrize("name", ["README.md", "README_cn.md"])
def test_the_front_pages_presets_and_defaults_are_the_codes(name):
    rows = {m.group(1): m.group(0) for m in re.finditer(r"^\| `(\w+)` \|.*$", text(name), re.M)}
    assert set(rows) == set(pm.PRESETS)
    for preset, facts in PRESET_FACTS.items():
        for fact in facts(pm.preset_args(preset)):
            assert fact in rows[preset], (preset, fact)
    defaults = pm.Args()
    assert f"{defaults.total_timesteps:,}" in text(name) and f"{defaults.eval_every:,}" in text(name)


def gradient_steps(args) -> int:
    """Minibatch steps of a whole run: rollouts x epochs x minibatches per rollout (no early stop)."""
    per_rollout = args.num_envs * args.num_steps
    return -(-args.total_timesteps // per_rollout) * args.update_epochs * -(-per_rollout // args.batch_size)


@pytest.mark.parametrize("name", ["docs/usage.md", "docs/zh/usage.md"])
def test_the_preset_commands_set_what_the_presets_set(name):
    lines = re.findall(r"^(python ppo_mountaincar\.py [^\n]*?)\s+# (\w+)$", text(name), re.M)
    shown = {preset: command for command, preset in lines if preset in pm.PRESETS}
    assert set(shown) == set(pm.PRESETS) - {"default"}
    for preset, command in shown.items():
        args = ppo_cli.args_from_cli(ppo_cli.parse_command_line(shlex.split(command)[2:]))
        assert dataclasses.replace(args, preset=preset) == pm.preset_args(preset), preset
    for preset in ("default", "best"):
        assert f"{gradient_steps(pm.preset_args(preset)):,}" in text(name), preset


@pytest.mark.parametrize("name", ["docs/how-ppo-works.md", "docs/zh/how-ppo-works.md"])
def test_the_walk_through_names_what_the_code_has(name):
    lines = len((ROOT / "ppo_mountaincar.py").read_text().splitlines())
    stated = re.search(r"`ppo_mountaincar\.py`\s*[(（]\D*(\d+)", text(name))
    assert abs(int(stated.group(1)) - lines) <= 25, (stated.group(1), lines)
    a = pm.Args()
    for fact in (f"eps = {a.clip}", f"{a.explore_bins} x {a.explore_bins}", f"from {a.explore_bonus:g} to 0",
                 f"{a.explore_decay_steps:,}", f"{a.max_grad_norm}", lr(a.actor_lr), f"{a.gae_lambda}"):
        assert fact.replace("from ", "从 ").replace(" to 0", " 衰减到 0") in text(name) or fact in text(name), fact
    for ident in set(re.findall(r"`([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)?)`", text(name))):
        if ident.endswith((".param", ".py")):
            continue  # a file
        if "_" in ident or "." in ident or ident[0].isupper():  # a function, class or method of the code
            head, _, attr = ident.partition(".")
            assert hasattr(pm, head) and (not attr or hasattr(getattr(pm, head), attr)), ident


def resumable_flags() -> set[str]:
    """The settings that may change on resume: those whose `_flag` says so."""
    return {f.replace("_", "-") for f in settings.with_role(pm.Args, "resumable")}


@pytest.mark.parametrize("name", ["docs/files-and-resume.md", "docs/zh/files-and-resume.md"])
def test_the_flags_that_may_change_on_resume_are_the_codes(name):
    listed = re.search(r"(?:Only|只能修改)((?:\s*`--[a-z-]+`[,、]?(?: and| 和)?)+)", text(name))
    assert set(re.findall(r"`--([a-z-]+)`", listed.group(1))) == resumable_flags()


@pytest.mark.parametrize("name", ["docs/deploy.md", "docs/zh/deploy.md"])
def test_the_export_check_is_the_codes(name):
    assert f"{export.PARITY_STATES:,} " in text(name) and f"{export.TOLERANCE:.0e}".replace("e-0", "e-") in text(name)


@pytest.mark.parametrize("name", ["docs/toolbox.md", "docs/zh/toolbox.md"])
def test_the_module_map_lists_every_toolbox_module(name):
    mapped = set(re.findall(r"^\| `(\w+)` \|", text(name), re.M))
    modules = {p.stem for p in (ROOT / "ppo_toolbox").glob("*.py")} - {"__init__"}
    assert mapped == modules, f"missing from the map: {modules - mapped}; no such module: {mapped - modules}"


@pytest.mark.parametrize("name", ["docs/tests.md", "docs/zh/tests.md"])
def test_the_list_of_test_files_is_the_folders(name):
    listed = set(re.findall(r"^\| `(test_\w+\.py)` \|", text(name), re.M))
    files = {p.name for p in (ROOT / "tests").glob("test_*.py")}
    assert listed == files, f"not listed: {files - listed}; no such file: {listed - files}"


# A maintainer finds a toolbox module's tests in tests/test_<module>.py. These modules have none to
# test (names only); those below keep their tests, for now, in the file named beside them.
NO_BEHAVIOUR = {"__init__", "errors"}
TESTS_ELSEWHERE = {"run": "test_run_bookkeeping.py", "folders": "test_run_bookkeeping.py", "studies": "test_tune.py"}


def test_every_toolbox_module_with_behaviour_has_a_test_file_named_after_it():
    modules = {p.stem for p in (ROOT / "ppo_toolbox").glob("*.py")} - NO_BEHAVIOUR
    files = {p.name for p in (ROOT / "tests").glob("test_*.py")}
    missing = sorted(f"test_{m}.py" for m in modules - TESTS_ELSEWHERE.keys() if f"test_{m}.py" not in files)
    assert not missing, f"no test file for its module: {missing}"
    stale = sorted(m for m, where in TESTS_ELSEWHERE.items() if m not in modules or where not in files)
    assert not stale, f"TESTS_ELSEWHERE names a module or a test file that is gone: {stale}"


def test_every_file_the_docs_name_exists():
    for name in ENGLISH + CHINESE:
        for path in re.findall(r"`((?:ppo_toolbox|tests|benchmarks|docs|\.ci)/[\w./-]+|requirements[\w-]*\.txt|"
                               r"constraints[\w-]*\.txt)", text(name)):
            assert (ROOT / path).exists(), (name, path)


def test_the_lower_bounds_are_the_floors_ci_installs():
    """Every lower bound in the requirement files is a pin of constraints-floors.txt (the
    versions .ci/floors installs and runs), and both tests pages name the same versions."""
    def pins(name):
        return dict(re.findall(r"^([A-Za-z0-9_.-]+)==(\S+)$", text(name), re.M))
    floors = pins("constraints-floors.txt")
    bounds = {}
    for name in ("requirements.txt", "requirements-no-paddle.txt"):
        bounds.update(re.findall(r"^([A-Za-z0-9_.-]+)(?:\[[^\]]*\])?>=([0-9][^,;\s]*)", text(name), re.M))
    assert {k.lower(): v for k, v in bounds.items()} == {k.lower(): v for k, v in floors.items()}
    for page in ("docs/tests.md", "docs/zh/tests.md"):
        for version in floors.values():
            assert version in text(page), (page, version)
    assert ".ci/floors" in text(".ci/run") and "constraints-floors.txt" in text(".ci/floors")


@pytest.mark.parametrize("name", ["docs/usage.md", "docs/zh/usage.md", "README.md", "README_cn.md"])
def test_the_python_blocks_compile_and_import_what_exists(name):
    for block in re.findall(r"```python\n(.*?)```", text(name), re.S):
        compile(block, name, "exec")
        for imported in re.findall(r"from ppo_mountaincar import ([\w, ]+)", block):
            for symbol in imported.split(","):
                assert hasattr(pm, symbol.strip()), symbol


# -- generated blocks and pictures ------------------------------------------------------------
@pytest.mark.parametrize("name", ["docs/results.md", "docs/zh/results.md"])
@pytest.mark.parametrize("marker", ["solve.py", "make_figures.py"])
def test_the_generated_blocks_say_where_they_come_from(name, marker):
    block = re.search(rf"<!-- {re.escape(marker)}:begin -->\n(.+?)\n<!-- {re.escape(marker)}:end -->", text(name), re.S)
    assert block, (name, marker)
    said = block.group(1)
    assert re.search(r"\b[0-9a-f]{7}\b", said) and re.search(r"\d{4}-\d{2}-\d{2}", said), said
    assert "Paddle 3." in said and "python " in said and "-dirty" not in said


def test_the_pictures_are_small_and_used():
    pictures = sorted((ROOT / "docs" / "img").iterdir())
    assert {p.name for p in pictures} == {"replay.gif", "training_curve.png", "policy_value.png", "clipped_objective.png"}
    everything = "".join(text(n) for n in ENGLISH + CHINESE)
    for p in pictures:
        assert p.stat().st_size < (1_000_000 if p.suffix == ".gif" else 200_000), p.name
        assert f"img/{p.name}" in everything


# -- the notebooks ----------------------------------------------------------------------------
def code_only(source: str) -> list[tuple[int, str]]:
    """A cell's tokens without comments: what the two languages' cells must share."""
    skip = {tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT}
    return [(t.type, t.string) for t in tokenize.generate_tokens(io.StringIO(source).readline) if t.type not in skip]


def test_the_two_notebooks_hold_the_same_code_and_no_outputs():
    import nbformat
    english, chinese = (notebook_cells(n, "code") for n in NOTEBOOKS)
    assert len(english) >= 7 and [code_only(c) for c in english] == [code_only(c) for c in chinese]
    assert len(notebook_cells(NOTEBOOKS[0], "markdown")) == len(notebook_cells(NOTEBOOKS[1], "markdown"))
    for name in NOTEBOOKS:
        for cell in nbformat.read(ROOT / name, as_version=4).cells:
            assert not cell.get("outputs") and not cell.get("execution_count"), name  # stored without outputs


def test_the_english_notebook_runs_top_to_bottom(tmp_path):
    """In a fresh kernel of this interpreter, from a notebooks/ folder of a copy of the repo
    (links to its code, a folder of its own for what runs write): no error, no warning on
    stderr, the clipped objective, the curve, the map and the car shown inline, the exported
    model scoring what the .param scores, and the files written in the folder it ran from."""
    nbformat = pytest.importorskip("nbformat")
    from nbclient import NotebookClient
    for name in ("ppo_mountaincar.py", "ppo_toolbox", "requirements.txt", "requirements-no-paddle.txt"):
        (tmp_path / name).symlink_to(ROOT / name)
    (tmp_path / "notebooks").mkdir()
    notebook = nbformat.read(ROOT / NOTEBOOKS[0], as_version=4)
    NotebookClient(notebook, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(tmp_path / "notebooks")}}).execute()
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    stderr = "".join(o.text for o in outputs if o.output_type == "stream" and o.name == "stderr")
    assert "Warning" not in stderr, stderr
    shown = [o for o in outputs if o.output_type == "display_data"]
    assert sum("image/png" in o.data for o in shown) == 3 and sum("image/gif" in o.data for o in shown) == 1
    stdout = "".join(o.text for o in outputs if o.output_type == "stream" and o.name == "stdout")
    held_out = re.search(r"(-\d+\.\d+) == (-\d+\.\d+)", stdout)
    assert held_out and held_out.group(1) == held_out.group(2), stdout
    assert (tmp_path / "param" / "img" / "replay.gif").is_file() and (tmp_path / "param" / "export" / "policy.json").is_file()
    assert any((tmp_path / "exp").iterdir())


@pytest.mark.parametrize("name", ["docs/tune.md", "docs/zh/tune.md"])
def test_the_search_space_is_the_codes(name):
    from ppo_toolbox.search_space import SEARCH_SPACE
    for param, spec in SEARCH_SPACE.items():
        assert f"`{param}`" in text(name), param
        if spec["type"] in ("float", "int"):  # its range, written soon after its name
            window = text(name)[text(name).index(f"`{param}`"):][:120]
            assert any(f"{low}..{high}" in window for low in spellings(spec["low"]) for high in spellings(spec["high"])), param


def spellings(value: float) -> set[str]:
    """How the docs may write a bound: 0.999, 1e-4, 20k."""
    return {f"{value:g}", lr(value), f"{value / 1000:g}k" if value >= 1000 else f"{value:g}"}


@pytest.mark.parametrize("name", ["docs/tutorial-errors.md", "docs/zh/tutorial-errors.md"])
def test_the_buffer_sizes_are_the_presets(name):
    tutorial, default = pm.preset_args("tutorial"), pm.preset_args()
    assert f"{tutorial.num_envs} x {tutorial.num_steps:,}" in text(name)
    assert f"{default.num_envs} x {default.num_steps}" in text(name)
