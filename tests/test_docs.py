"""Docs stay true to the CLI: every command has help and is documented; the output
columns in docs match the schema in the code."""

from conftest import ROOT, run_cli

from frs_cli.cli import cli
from frs_cli.results.writers import APPEARANCE_COLUMNS, DETECTION_COLUMNS

README = (ROOT / "README.md").read_text()
DESIGN = (ROOT / "docs" / "design.md").read_text()


def test_every_command_has_help_and_is_documented():
    for name, command in cli.commands.items():
        assert command.help, name
        result = run_cli(name, "--help")
        assert result.exit_code == 0
        assert f"frs {name}" in README or f"frs {name}" in DESIGN, name


def test_every_scan_option_is_in_the_readme():
    for param in cli.commands["scan"].params:
        for opt in param.opts:
            if opt.startswith("--") and opt != "--help":
                assert opt in README, opt


def test_output_columns_in_docs_match_the_code():
    assert ",".join(APPEARANCE_COLUMNS) in README
    assert ",".join(DETECTION_COLUMNS) in README
    for column in APPEARANCE_COLUMNS:
        assert f"`{column}`" in DESIGN, column


def test_doctor_names_the_dlib_build_and_models():
    result = run_cli("doctor")
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert lines[1].startswith("dlib ") and "BLAS" in lines[1] and "CUDA" in lines[1]
    assert any(line.startswith("models: ") and "dlib_resnet_v1:" in line for line in lines)


def test_doctor_fails_when_models_are_missing(monkeypatch, tmp_path):
    from frs_cli.faces import dlib_models

    monkeypatch.setenv("FRS_MODELS_DIR", str(tmp_path))  # empty, and no package to fall back on
    monkeypatch.setattr(dlib_models, "_package_dir", lambda: None)
    dlib_models.encoder_model_id.cache_clear()
    try:
        result = run_cli("doctor")
    finally:
        dlib_models.encoder_model_id.cache_clear()
    assert result.exit_code == 1
    assert (
        "models: MISSING:" in result.stdout
        and "pip install face_recognition_models" in result.stdout
    )
