"""The command line: help with examples, cheap start-up, the `python -m` entry point, the TensorBoard command."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys

import pytest


@pytest.mark.parametrize("command", ["sound2image", "image2sound", "train", "predict", "evaluate", "chorales", "demo"])
def test_help_has_examples(run_cli, command):
    result = run_cli(command, "--help")
    assert result.exit_code == 0
    assert "Examples:" in result.output and f"vocals2song {command}" in result.output


@pytest.mark.slow
def test_help_does_not_import_heavy_libraries():
    code = ("import sys; from vocals2song.cli import main\n"
            "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            "print(sorted(m for m in ('tensorflow', 'librosa', 'musdb', 'stempeg') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().endswith("[]")


@pytest.mark.slow
def test_python_m_entry_point():
    result = subprocess.run([sys.executable, "-m", "vocals2song", "--version"], capture_output=True, text=True)
    assert result.returncode == 0 and "vocals2song" in result.stdout


@pytest.mark.slow
def test_tensorboard_command_names_a_program_that_exists(tmp_path):
    from vocals2song.cli import tensorboard_command

    words = shlex.split(tensorboard_command(tmp_path / "my logs"))
    assert os.path.isabs(words[0]) and os.access(words[0], os.X_OK)  # not a bare `tensorboard` off PATH
    assert words[-2:] == ["--logdir", str(tmp_path / "my logs")]
    if len(words) == 3:  # the venv's own script: its #! line names the venv's Python, so no activation is needed
        shebang = open(words[0], "rb").readline().decode().removeprefix("#!").split()
        assert os.path.isabs(shebang[0]) and os.access(shebang[0], os.X_OK)
        found = subprocess.run([shebang[0], "-c", "import tensorboard"], capture_output=True, env={"PATH": "/bin"})
        assert found.returncode == 0
    else:
        assert words[1:3] == ["-m", "tensorboard.main"]
