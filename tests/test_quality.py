"""The project's own code passes its linters: ruff (style) and mypy (the typed public API)."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(shutil.which("ruff") is None, reason="ruff is not installed")
def test_ruff_passes_on_the_package_tests_and_benches():
    done = subprocess.run(["ruff", "check", "--no-cache", "symbn", "tests", "bench"], cwd=ROOT,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_mypy_passes_on_the_package():
    pytest.importorskip("mypy", reason="mypy is not installed")
    done = subprocess.run([sys.executable, "-m", "mypy", "--no-incremental"], cwd=ROOT,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_mypy_catches_a_wrong_variant_or_backend_in_user_code(tmp_path):
    """The typed API as a user's checker meets it: a bogus mode or backend is a type error
    (backend was a plain str), the right calls are not."""
    pytest.importorskip("mypy", reason="mypy is not installed")
    script = tmp_path / "user.py"
    script.write_text(
        "import symbn\nfrom symbn.codegen import generate_module, load\n\n"
        "load(symbn.LayerSpec(eps_placement='std'), 'numba')\n"
        "generate_module(symbn.LayerSpec(mode='eval'), 'numexpr')\n"
        "load(symbn.LayerSpec(), 'numbaa')\n"
        "symbn.LayerSpec(mode='bogus')\n", encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-m", "mypy", "--no-incremental", "--cache-dir", str(tmp_path / "c"),
         "--config-file", str(ROOT / "pyproject.toml"), str(script)],
        cwd=tmp_path, capture_output=True, text=True, env={**os.environ, "MYPYPATH": str(ROOT)})
    errors = [line for line in done.stdout.splitlines() if ": error:" in line]
    assert [line.split(":")[1] for line in errors] == ["6", "7"], done.stdout + done.stderr
    assert "numbaa" in errors[0] and "bogus" in errors[1]
