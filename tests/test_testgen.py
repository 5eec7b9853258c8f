"""testgen: a deterministic, readable test file that passes right code and fails wrong code."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import symbn
from symbn.cli import build_parser, main
from symbn.commands import testgen as testgen_command
from symbn.errors import OptionError
from symbn.testgen import generate_tests, signature

USER_MODULE = '''\
import numpy as np


def right(dy, x, gamma, *, eps, axis):
    axes = tuple(k for k in range(x.ndim) if k != axis % x.ndim)
    shape = [1] * x.ndim
    shape[axis] = x.shape[axis]
    x64, dy64 = x.astype(np.float64), dy.astype(np.float64)
    m = x.size // x.shape[axis]
    mu = x64.mean(axes, keepdims=True)
    r = 1 / np.sqrt(((x64 - mu) ** 2).mean(axes, keepdims=True) + eps)
    xhat = (x64 - mu) * r
    s1 = dy64.sum(axes, keepdims=True)
    s2 = (dy64 * xhat).sum(axes, keepdims=True)
    dx = gamma.reshape(shape) * r / m * (m * dy64 - s1 - xhat * s2)
    return dx.astype(x.dtype), s2.reshape(-1).astype(x.dtype), s1.reshape(-1).astype(x.dtype)


def wrong(dy, x, gamma, *, eps, axis):
    dx, dgamma, dbeta = right(dy, x, gamma, eps=eps, axis=axis)
    return dx * (1 + 1e-9), dgamma, dbeta
'''


def test_output_is_deterministic_and_valid_python() -> None:
    """Same arguments, same bytes; the source parses and names the target and variant."""
    spec = symbn.LayerSpec(eps_placement="std")
    a = generate_tests(spec, "mypkg.layers:bn_backward")
    assert a == generate_tests(spec, "mypkg.layers:bn_backward")
    ast.parse(a)
    assert "from mypkg.layers import bn_backward as backward_under_test" in a
    assert "eps_placement=std" in a and "derandomize=True" in a


def test_every_line_is_short_and_every_test_documented() -> None:
    """Readable: lines <= 100 characters and a docstring on every test function."""
    source = generate_tests(symbn.LayerSpec(), "mypkg.layers:bn_backward")
    assert max(len(line) for line in source.splitlines()) <= 100
    tree = ast.parse(source)
    tests = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name.startswith("test")]
    assert len(tests) >= 4 and all(ast.get_docstring(t) for t in tests)


def test_eval_and_no_affine_variants_change_the_signature() -> None:
    """The documented signature follows the variant; eval mode has no dy=const test."""
    spec = symbn.LayerSpec(mode="eval", affine=False)
    source = generate_tests(spec, "pkg.mod:bw")
    assert signature(spec) in source and "test_constant_upstream_gradient" not in source


def test_bad_targets_are_refused() -> None:
    """A target without ':' or with a non-identifier is an OptionError naming it."""
    for bad in ("mypkg.layers", "mypkg.layers:not-a-name", "my pkg:fn"):
        with pytest.raises(OptionError, match=r"^target="):
            generate_tests(symbn.LayerSpec(), bad)


@pytest.mark.parametrize(("call", "text"), [
    (lambda: generate_tests(None, "m:f"), "spec=None is not allowed"),  # type: ignore[arg-type]
    (lambda: generate_tests(symbn.LayerSpec(), 3), "target=3 is not allowed"),  # type: ignore
    (lambda: generate_tests(symbn.LayerSpec(), "m:f", examples="5"),  # type: ignore[arg-type]
     "examples='5' is not allowed"),
    (lambda: generate_tests(symbn.LayerSpec(), "m:f", examples=2.5),  # type: ignore[arg-type]
     "examples=2.5 is not allowed"),
    (lambda: generate_tests(symbn.LayerSpec(), "m:f", examples=True),
     "examples=True is not allowed"),
    (lambda: generate_tests(symbn.LayerSpec(), "m:f", dtype="float16"),
     r"^dtype='float16' is not allowed"),
])
def test_bad_arguments_from_python_are_named(call, text: str) -> None:
    """From Python, generate_tests named its options as the command line does (--dtype), gave
    an AttributeError for spec=None and a TypeError for examples='5', and wrote
    max_examples=2.5 or True into the file (a review)."""
    with pytest.raises(OptionError, match=text):
        call()


def test_a_numpy_dtype_is_taken() -> None:
    """dtype=np.float32 was refused, where check_backward takes it (a review)."""
    assert 'DTYPE = "float32"' in generate_tests(symbn.LayerSpec(), "m:f", dtype=np.float32)


def _run_generated(tmp_path: Path, function: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "userbn.py").write_text(USER_MODULE)
    test_file = tmp_path / f"test_{function}.py"
    test_file.write_text(generate_tests(symbn.LayerSpec(), f"userbn:{function}", examples=15))
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", str(test_file)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300, check=False)


def test_generated_file_passes_right_code(tmp_path: Path) -> None:
    """Run with pytest, the generated file passes a right backward."""
    result = _run_generated(tmp_path, "right")
    assert result.returncode == 0, result.stdout + result.stderr


def test_generated_file_fails_wrong_code_naming_input_and_values(tmp_path: Path) -> None:
    """A backward off by 1e-9 fails; the message names the input and both values."""
    result = _run_generated(tmp_path, "wrong")
    assert result.returncode == 1
    assert "analytic" in result.stdout and "reference" in result.stdout
    assert "x(" in result.stdout and "FAIL" in result.stdout


def test_command_writes_the_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`symbn testgen batchnorm --target m:f -o FILE` writes what generate_tests returns."""
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    if testgen_command.NAME not in sub.choices:     # before the lead wires the command in
        testgen_command.add_parser(sub)
    out = tmp_path / "test_bn.py"
    (tmp_path / "userbn.py").write_text(USER_MODULE)
    target = f"{tmp_path / 'userbn.py'}:right"
    args = parser.parse_args(["testgen", "batchnorm", "--target", target, "--variance",
                              "unbiased", "-o", str(out)])
    assert testgen_command.run(args) == 0
    assert out.read_text() == generate_tests(symbn.LayerSpec(variance="unbiased"), target,
                                             test_file=str(out))
    assert "wrote" in capsys.readouterr().out


@pytest.mark.parametrize("target", ["{tmp}/missing.py:f", "nosuchmodule_symbn:f",
                                    "{tmp}/userbn.py:nosuch"])
def test_a_target_that_does_not_load_is_refused(tmp_path: Path, target: str,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    """testgen loads the target first, as symbn check does: one line, exit 2, no file (it
    wrote the file, and the error came when pytest collected it)."""
    (tmp_path / "userbn.py").write_text(USER_MODULE)
    out = tmp_path / "test_bn.py"
    code = main(["testgen", "batchnorm", "--target", target.format(tmp=tmp_path), "-o", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("symbn: error: target=") and err.count("\n") == 1
    assert not out.exists()


def test_a_file_target_is_found_from_the_test_file(tmp_path: Path) -> None:
    """``--target layers.py:f -o tests/test_bn.py``: the file reads layers.py relative to
    itself, so pytest passes run from any folder (from tests/ it failed to collect)."""
    (tmp_path / "tests").mkdir()
    (tmp_path / "layers.py").write_text(USER_MODULE)
    here = os.getcwd()
    try:
        os.chdir(tmp_path)
        assert main(["testgen", "batchnorm", "--target", "layers.py:right", "-o",
                     "tests/test_bn.py", "--examples", "3"]) == 0
    finally:
        os.chdir(here)
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", "test_bn.py"],
        cwd=tmp_path / "tests", capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_target_the_variant_cannot_call_is_refused(tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    """A training-mode backward as an eval-mode target: one line, exit 2, no file, as symbn
    check refuses it (a review: testgen wrote a file whose every test failed)."""
    (tmp_path / "userbn.py").write_text(USER_MODULE)
    out = tmp_path / "test_bn.py"
    code = main(["testgen", "batchnorm", "--target", f"{tmp_path / 'userbn.py'}:right",
                 "--mode", "eval", "-o", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and "cannot be called as" in err and err.count("\n") == 1
    assert not out.exists()


@pytest.mark.skipif(sys.platform == "win32", reason="a file name of bytes that are not UTF-8")
def test_a_path_that_is_not_utf8_makes_a_file_pytest_runs(tmp_path: Path) -> None:
    """``bad\\xfe.py:right`` (a name of bytes that are not UTF-8; '\\udcfe' in Python): a review
    found a traceback and an empty file with ``-o``, and without it a file that pytest could
    not collect. The docstring shows the name escaped; the path reads it back."""
    name = os.fsdecode(b"bad\xfe.py")
    (tmp_path / name).write_text(USER_MODULE)
    (tmp_path / "tests").mkdir()
    here = os.getcwd()
    try:
        os.chdir(tmp_path)
        assert main(["testgen", "batchnorm", "--target", f"{name}:right", "-o",
                     "tests/test_bn.py", "--examples", "3"]) == 0
        source = generate_tests(symbn.LayerSpec(), f"{name}:right")  # for standard output
    finally:
        os.chdir(here)
    ast.parse(source.encode("utf-8"))
    written = (tmp_path / "tests" / "test_bn.py").read_bytes()
    assert b"bad\\\\udcfe.py" in written  # shown escaped in the docstring
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", "test_bn.py"],
        cwd=tmp_path / "tests", capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_whole_number_options_say_what_they_take(capsys: pytest.CaptureFixture[str]) -> None:
    """``--examples 1.5`` (and ``--dps abc``, ``--seed abc``) said only "invalid int value"."""
    for argv in (["testgen", "batchnorm", "--target", "m:f", "--examples", "1.5"],
                 ["verify", "batchnorm", "--dps", "abc"],
                 ["verify", "batchnorm", "--dps=+-5"],  # "invalid whole_number value"
                 ["check", "m:f", "--seed", "abc"]):
        with pytest.raises(SystemExit) as stop:
            main(argv)
        err = capsys.readouterr().err
        assert stop.value.code == 2 and "expected a whole number" in err, err
        assert err.count("\n") == 1


@pytest.mark.skipif(sys.platform == "win32", reason="a file name of bytes that are not UTF-8")
def test_a_name_that_is_not_utf8_prints_escaped(tmp_path: Path) -> None:
    """Where standard output is strict UTF-8 (a UTF-8 locale), ``-o`` of bytes that are not
    UTF-8 made "wrote ..." raise after the file was written (a review): testgen exited 1 with
    a traceback, and render's --dir said the text was not UTF-8. The name prints escaped."""
    (tmp_path / "bn.py").write_text(USER_MODULE)
    env = {**os.environ, "PYTHONIOENCODING": "utf-8"}
    out = os.fsdecode(b"test_\xfe.py")
    for argv in (["testgen", "batchnorm", "--target", "bn.py:right", "-o", out],
                 ["codegen", "batchnorm", "-o", os.fsdecode(b"bn_\xfe.py")]):
        result = subprocess.run([sys.executable, "-m", "symbn", *argv], cwd=tmp_path, env=env,
                                capture_output=True, text=True, timeout=120, check=False)
        assert result.returncode == 0, result.stderr
        assert result.stdout.startswith("wrote ") and "\\udcfe" in result.stdout
    assert (tmp_path / out).exists()
