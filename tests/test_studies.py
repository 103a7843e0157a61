"""One declaration of each notebook's parameters (`prmlab.studies`): the notebook's parameters cell says
the same, the library configs are built from it, and their own defaults are its (the tiny profile's)."""

import json
from dataclasses import fields

import pytest

from prmlab import notebooks, studies
from prmlab.paths import notebooks_dir
from prmlab.profiles import OVERLAYS, PROFILES


@pytest.mark.parametrize("notebook", sorted(studies.STUDIES))
def test_the_parameters_cell_says_what_the_declaration_says(notebook):
    assert studies.STUDIES[notebook].cell_disagreements(notebooks_dir() / f"{notebook}.ipynb") == []


def test_every_notebook_has_a_study():
    assert {nb.stem for nb in notebooks.available_notebooks()} == set(studies.STUDIES)


def _with_cell(tmp_path, source: str):
    nb = json.loads((notebooks_dir() / "02_pure_min_form.ipynb").read_text())
    cell = next(c for c in nb["cells"] if "parameters" in c["metadata"].get("tags", []))
    cell["source"] = source.splitlines(keepends=True)
    path = tmp_path / "02_pure_min_form.ipynb"
    path.write_text(json.dumps(nb))
    return path


def test_a_cell_that_drifts_is_found(tmp_path):
    study = studies.PURE_MIN_FORM
    source = "".join(f"{p.name} = {p.default!r}  # {p.help}\n" for p in study.params)
    assert study.cell_disagreements(_with_cell(tmp_path, source)) == []
    drifted = (source.replace("rl_steps = 40", "rl_steps = 30").replace("lr = 0.0001", "lr = 1")
               .replace("# PPO clip range", "# clip"))
    assert study.cell_disagreements(_with_cell(tmp_path, drifted)) == [
        "rl_steps: default 30 in the cell, 40 declared",
        "lr: default 1 in the cell, 0.0001 declared",  # an int where a float is declared: another type
        "clip_eps: comment 'clip' in the cell, help 'PPO clip range' declared"]
    missing = "\n".join(line for line in source.splitlines() if not line.startswith("k = "))
    assert study.cell_disagreements(_with_cell(tmp_path, missing))[0].startswith("names: the cell assigns")


def test_every_config_field_a_parameter_sets_exists_and_defaults_to_its_profiles_value():
    """A library config's own defaults are those of one profile, and its docstring says which: the
    tiny profile's (the parameters' defaults) or the paper profile's (the defaults with the paper
    overlay: the published recipe)."""
    checked = set()
    for study in studies.STUDIES.values():
        for p in study.params:
            for target in p.fields:
                owner, field = target.split(".")
                cls, profile = studies.config_class(owner), studies.CONFIGS[owner][1]
                assert field in {f.name for f in fields(cls)}, (study.notebook, target)
                assert f"{profile} profile" in cls.__doc__, owner
                expected = {"tiny": p.default, "paper": OVERLAYS[study.notebook]["paper"].get(p.name, p.default)}[profile]
                default = getattr(cls(), field)
                assert (type(default), default) == (type(expected), expected), (study.notebook, p.name, target)
                checked.add(owner)
    assert checked == set(studies.CONFIGS)


def test_a_config_is_built_from_the_parameters_it_names():
    from prmlab.rl.loop import RLConfig
    from prmlab.rl.prime_arms import PrimeSettings

    values = {**studies.PRIME_IMPLICIT.defaults, "rl_steps": 3, "filter_low": 0.0, "prm_lr": 0.5, "lr": 0.25}
    cfg = studies.PRIME_IMPLICIT.config(RLConfig, values, accuracy_filter=True, seed=7)
    assert (cfg.steps, cfg.filter_low, cfg.lr, cfg.accuracy_filter, cfg.seed) == (3, 0.0, 0.25, True, 7)
    assert cfg.ppo_epochs == RLConfig().ppo_epochs  # 03 does not expose it
    assert studies.PRIME_IMPLICIT.config(PrimeSettings, values).prm_lr == 0.5  # not the policy's lr
    with pytest.raises(TypeError, match=r"RLConfig has no fields \['nope'\]"):
        studies.PRIME_IMPLICIT.config(RLConfig, values, nope=1)
    with pytest.raises(KeyError, match=r"no value for parameter 'rl_steps' \(for RLConfig.steps\)"):
        studies.PRIME_IMPLICIT.config(RLConfig, {}, seed=0)  # a field given in ``fixed`` needs no value


@pytest.mark.parametrize("profile", PROFILES)
def test_every_profile_sets_declared_parameters_to_allowed_values(profile):
    for notebook, overlays in OVERLAYS.items():
        declared = studies.STUDIES[notebook].declared
        for name, value in overlays.get(profile, {}).items():
            assert name in declared, (notebook, profile, name)
            assert type(value) is type(declared[name].default), (notebook, profile, name)
            declared[name].check(value)


def test_a_notebook_without_a_study_is_read_from_its_cell(tmp_path):
    path = _with_cell(tmp_path, 'a = 1  # one\nb = "x"  # a b | c\n').rename(tmp_path / "99_mine.ipynb")
    declared = studies.declared(path)
    assert [(p.name, p.default, p.help, p.allowed) for p in declared.values()] == [("a", 1, "one", None),
                                                                                 ("b", "x", "a b | c", None)]
