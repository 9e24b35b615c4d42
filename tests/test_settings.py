"""The project file apprentice.toml: written by `init`, read back, and refused with a precise reason."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from pydantic import BaseModel
from typer.testing import CliRunner

from apprentice.cli import app
from apprentice.errors import ApprenticeError, InputError
from apprentice.settings import GenerationSection, Settings, load_settings, override, render_settings

runner = CliRunner()


def project_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "apprentice.toml"
    path.write_text(text, encoding="utf-8")
    return path


def load_error(path: Path) -> InputError:
    with pytest.raises(InputError) as caught:
        load_settings(path)
    assert caught.value.path == path
    assert str(path) in str(caught.value)
    return caught.value


def section_models() -> list[tuple[str, type[BaseModel]]]:
    sections = []
    for name, field in Settings.model_fields.items():
        annotation = field.annotation
        assert isinstance(annotation, type) and issubclass(annotation, BaseModel), name
        sections.append((name, annotation))
    return sections


def test_init_writes_a_file_that_reads_back_as_the_defaults(tmp_path: Path) -> None:
    folder = tmp_path / "proj"
    result = runner.invoke(app, ["init", str(folder)])
    assert result.exit_code == 0, result.output
    assert (folder / "apprentice.db").exists()
    assert load_settings(folder / "apprentice.toml") == Settings()


def test_every_setting_has_a_description_written_above_it() -> None:
    text = render_settings(Settings())
    lines = text.splitlines()
    count = 0
    for section_name, model in section_models():
        header = lines.index(f"[{section_name}]")
        for key, field in model.model_fields.items():
            assert field.description and field.description.strip(), f"{section_name}.{key} has no description"
            setting_line = next(
                index for index, line in enumerate(lines) if index > header and line.startswith(f"{key} = ")
            )
            assert lines[setting_line - 1] == f"# {field.description}"
            count += 1
    assert count >= 15  # the sections shipped with the foundation hold 15 settings


def test_rendered_settings_round_trip_with_changed_values(tmp_path: Path) -> None:
    settings = Settings()
    settings.project.name = 'Quotes "and" back\\slashes, ünïcode'
    settings.model.policy = "C:\\models\\policy"
    settings.generation.candidates = 4
    settings.generation.temperature = 0.0
    settings.generation.top_p = 1.0
    settings.comparisons.kind = "ranking"
    path = project_file(tmp_path, render_settings(settings))
    assert load_settings(path) == settings
    assert tomllib.loads(path.read_text(encoding="utf-8"))["generation"]["candidates"] == 4


def test_a_partial_file_fills_in_defaults(tmp_path: Path) -> None:
    path = project_file(tmp_path, "[generation]\ncandidates = 3\n")
    settings = load_settings(path)
    assert settings.generation.candidates == 3
    assert settings.generation.temperature == GenerationSection().temperature
    assert settings.comparisons == Settings().comparisons


def test_unknown_key_names_the_key_and_its_line(tmp_path: Path) -> None:
    path = project_file(tmp_path, "[project]\nname = 'x'\n\n[generation]\ncandidates = 2\ntemprature = 0.2\n")
    error = load_error(path)
    assert error.line == 6
    assert "unknown key 'generation.temprature'" in str(error)
    assert "line 6" in str(error)
    assert "temperature" in error.reason  # the known keys are listed, so the typo is easy to spot


def test_unknown_key_is_found_in_its_own_section(tmp_path: Path) -> None:
    # `candidates` is a real key of [generation], but not of [comparisons].
    path = project_file(tmp_path, "[generation]\ncandidates = 2\n\n[comparisons]\ncandidates = 3\n")
    error = load_error(path)
    assert (error.line, "comparisons.candidates" in error.reason) == (5, True)


def test_unknown_section(tmp_path: Path) -> None:
    path = project_file(tmp_path, "[generation]\nseed = 1\n\n[generaton]\nseed = 2\n")
    error = load_error(path)
    assert error.line == 4
    assert "unknown section [generaton]" in error.reason
    assert "generation" in error.reason


def test_wrong_type_names_the_field_and_line(tmp_path: Path) -> None:
    path = project_file(tmp_path, '[generation]\nseed = 1\ncandidates = "two"\n')
    error = load_error(path)
    assert (error.field, error.line) == ("generation.candidates", 3)
    assert "generation.candidates" in str(error) and "line 3" in str(error)
    assert "integer" in error.reason and "'two'" in error.reason


def test_out_of_range_candidates(tmp_path: Path) -> None:
    path = project_file(tmp_path, "[generation]\ncandidates = 9\n")
    error = load_error(path)
    assert (error.field, error.line) == ("generation.candidates", 2)
    assert "less than or equal to 8" in error.reason


def test_unknown_comparison_kind(tmp_path: Path) -> None:
    path = project_file(tmp_path, '[comparisons]\nkind = "pairs"\n')
    error = load_error(path)
    assert (error.field, error.line) == ("comparisons.kind", 2)
    assert "'pair'" in error.reason and "'pairs'" in error.reason


def test_a_section_that_is_not_a_table(tmp_path: Path) -> None:
    path = project_file(tmp_path, "generation = 3\n")
    error = load_error(path)
    assert (error.field, error.line) == ("generation", 1)


@pytest.mark.parametrize("kind", ["pair", "ranking"])
def test_pairs_and_rankings_need_two_candidates(tmp_path: Path, kind: str) -> None:
    path = project_file(tmp_path, f'[generation]\ncandidates = 1\n\n[comparisons]\nkind = "{kind}"\n')
    error = load_error(path)
    assert f"comparisons.kind '{kind}' needs generation.candidates >= 2 (it is 1)" in error.reason
    assert "raise candidates or use kind 'rating'" in error.reason


def test_ratings_work_with_one_candidate(tmp_path: Path) -> None:
    path = project_file(tmp_path, '[generation]\ncandidates = 1\n\n[comparisons]\nkind = "rating"\n')
    settings = load_settings(path)
    assert (settings.generation.candidates, settings.comparisons.kind) == (1, "rating")


def test_invalid_toml_and_missing_file(tmp_path: Path) -> None:
    assert "not valid TOML" in load_error(project_file(tmp_path, "[generation\ncandidates = 2\n")).reason
    missing = tmp_path / "elsewhere" / "apprentice.toml"
    assert "apprentice init" in load_error(missing).reason


def test_override_checks_cli_values_like_the_file() -> None:
    base = GenerationSection()
    changed = override(base, candidates=4, temperature=None)
    assert (changed.candidates, changed.temperature) == (4, base.temperature)
    with pytest.raises(ApprenticeError, match=r"--candidates: .*less than or equal to 8"):
        override(base, candidates=9)
    with pytest.raises(ApprenticeError, match="--top-p"):
        override(base, top_p=0.0)


def test_init_refuses_an_existing_project(tmp_path: Path) -> None:
    folder = tmp_path / "proj"
    assert runner.invoke(app, ["init", str(folder)]).exit_code == 0
    (folder / "apprentice.toml").write_text("[generation]\ncandidates = 3\n", encoding="utf-8")
    result = runner.invoke(app, ["init", str(folder)])
    assert result.exit_code == 1
    assert "already exists" in result.stderr and "apprentice.toml" in result.stderr
    assert (folder / "apprentice.toml").read_text(encoding="utf-8") == "[generation]\ncandidates = 3\n"


def test_init_refuses_a_path_that_is_a_file(tmp_path: Path) -> None:
    path = tmp_path / "afile"
    path.write_text("x", encoding="utf-8")
    result = runner.invoke(app, ["init", str(path)])
    assert result.exit_code == 1
    assert "not a folder" in result.stderr


def test_commands_report_a_bad_project_file_in_one_sentence(tmp_path: Path) -> None:
    folder = tmp_path / "proj"
    assert runner.invoke(app, ["init", str(folder)]).exit_code == 0
    text = (folder / "apprentice.toml").read_text(encoding="utf-8")
    text = text.replace("temperature = 0.7", "temprature = 0.2")
    line = text.splitlines().index("temprature = 0.2") + 1
    (folder / "apprentice.toml").write_text(text, encoding="utf-8")
    result = runner.invoke(app, ["status", "--project", str(folder)])
    assert result.exit_code == 1
    message = " ".join(result.stderr.split())
    assert message.startswith("error:")
    assert f"apprentice.toml, line {line}: unknown key 'generation.temprature'" in message
    assert "Traceback" not in result.output


def test_a_folder_without_a_project_file(tmp_path: Path) -> None:
    result = runner.invoke(app, ["status", "--project", str(tmp_path)])
    assert result.exit_code == 1
    assert "apprentice init" in result.stderr


def test_settings_import_nothing_from_the_reward_package() -> None:
    """The settings sit below every package that reads them; importing them must not load `reward/`."""
    import subprocess
    import sys

    code = "import sys, apprentice.settings; print(sorted(m for m in sys.modules if m.startswith('apprentice.reward')))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_an_odd_ppo_batch_is_refused_when_the_file_is_read_not_after_the_round_collected_labels(
    tmp_path: Path,
) -> None:
    path = project_file(tmp_path, '[loop]\nalgorithm = "ppo"\npolicy_prompts_per_step = 3\n')
    error = load_error(path)
    assert "policy_prompts_per_step (3) must be a multiple of 2" in str(error)
    even = project_file(tmp_path, '[loop]\nalgorithm = "ppo"\npolicy_prompts_per_step = 4\n')
    assert load_settings(even).loop.policy_prompts_per_step == 4
