"""The command line: output, exit statuses, one-line errors, help."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import types
from pathlib import Path

import pytest
import sympy as sp

import symbn
from symbn.cli import main
from symbn.commands import render
from symbn.proof import Proof


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_derive_prove_prints_steps_closed_form_and_proof(capsys: pytest.CaptureFixture[str]
                                                         ) -> None:
    """`symbn derive batchnorm --prove` prints the steps, the closed forms and the proofs."""
    code, out, _ = run(capsys, "derive", "batchnorm", "--prove")
    assert code == 0
    for text in ("dL/dxhat(i)", "dL/dvar", "dL/dmu", "dL/dx(i)", "dL/dgamma", "dL/dbeta",
                 "Closed forms", "r = 1/sqrt(eps + var)", "[proved]", "where a sum vanishes"):
        assert text in out, text
    assert "FAILED" not in out


def test_json_round_trips_through_sympify(capsys: pytest.CaptureFixture[str]) -> None:
    """JSON gradients parse back with sympy.sympify(srepr) to the derived expressions."""
    code, out, _ = run(capsys, "derive", "batchnorm", "--format", "json", "--eps-placement",
                       "std")
    assert code == 0
    data = json.loads(out)
    d = symbn.derive(symbn.LayerSpec(eps_placement="std"))
    assert data["options"]["eps_placement"] == "std"
    assert sp.sympify(data["gradients"]["x"]["closed"]["srepr"]) == d.closed["x"]
    assert sp.sympify(data["gradients"]["x"]["raw"]["srepr"]) == d.raw["x"]
    assert data["conditions"][0]["statement"] == "sigma > 0"
    assert "r" in data["symbols"] and "mu" in data["symbols"]


@pytest.mark.parametrize("m", [[], ["--m", "2"]])
def test_json_symbols_table_explains_every_name(capsys: pytest.CaptureFixture[str],
                                                m: list[str]) -> None:
    """Every symbol and function the JSON's expressions use is in its ``symbols`` table (an
    element x_0 under x, an adjoint dL_dxhat under dL_d<q>); a review found the adjoints
    unexplained."""
    code, out, _ = run(capsys, "derive", "batchnorm", "--format", "json", *m)
    assert code == 0
    data = json.loads(out)
    names: set[str] = set()

    def collect(node: object) -> None:
        if isinstance(node, dict):
            if "srepr" in node:
                expr = sp.sympify(node["srepr"])
                names.update(str(s) for s in expr.free_symbols)
                names.update(f.func.__name__ for f in expr.atoms(sp.core.function.AppliedUndef))
            for value in node.values():
                collect(value)
        elif isinstance(node, list):
            for value in node:
                collect(value)

    collect(data)
    assert "dL_dvar" in names
    for name in names:
        key = "dL_d<q>" if name.startswith("dL_d") else re.sub(r"_[0-9]+$", "", name)
        assert key in data["symbols"], name


def test_concrete_m_json_has_one_entry_per_element(capsys: pytest.CaptureFixture[str]) -> None:
    """With --m 3 the input gradient is given for each of the three elements."""
    code, out, _ = run(capsys, "derive", "batchnorm", "--m", "3", "--format", "json", "--prove")
    data = json.loads(out)
    assert code == 0 and data["m"] == 3 and data["proof"]["holds"]
    assert len(data["gradients"]["x"]["closed"]) == 3


def test_concrete_m_json_gives_the_limit_in_its_elements(capsys: pytest.CaptureFixture[str]
                                                         ) -> None:
    """With --m 2 the σ = 0 limit was given in symbolic-m form (g(i), a Sum to m) beside
    gradients in g_0 and g_1; now one expression per element, in the same symbols."""
    code, out, _ = run(capsys, "derive", "batchnorm", "--m", "2", "--eps-placement", "std",
                       "--format", "json")
    (condition,) = json.loads(out)["conditions"]
    limits = [sp.sympify(item["srepr"]) for item in condition["limit"]["x"]]
    assert code == 0 and len(limits) == 2
    values = {sp.Symbol("g_0", real=True): 1, sp.Symbol("g_1", real=True): 3,
              sp.Symbol("gamma", real=True): 2, sp.Symbol("eps", positive=True): sp.Rational(1, 10)}
    # gamma (m g_k - Σ g) / (eps m): 2 (2 - 4) / 0.2 and 2 (6 - 4) / 0.2
    assert [lim.xreplace(values) for lim in limits] == [-20, 20]


def test_latex_format(capsys: pytest.CaptureFixture[str]) -> None:
    """--format latex prints align* blocks without SymPy's machine names."""
    code, out, _ = run(capsys, "derive", "batchnorm", "--format", "latex", "--no-affine")
    assert code == 0 and r"\begin{align*}" in out and r"\hat{x}_{i}" in out
    assert "Sum(" not in out and "dL_d" not in out


@pytest.mark.parametrize(("argv", "needle"), [
    (["derive", "batchnorm", "--m", "0"], "m=0"),
    (["derive", "batchnorm", "--m", "2.5"], "m='2.5'"),
    (["derive", "batchnorm", "--m", "3_0"], "m='3_0'"),  # int() reads 30 (a review)
    (["derive", "batchnorm", "--m", "\uff13"], "m='\uff13'"),  # a full-width 3
    (["derive", "batchnorm", "--m=+-3"], "m='+-3'"),  # a traceback, in a first version
    (["derive", "batchnorm", "--m", "1", "--variance", "unbiased"], "m=1"),
    (["derive", "layernorm"], "layer='layernorm'"),
    (["derive", "batchnorm", "--eps-placement", "outside"], "eps_placement='outside'"),
    (["derive", "batchnorm", "--mode", "test"], "mode='test'"),
    (["derive", "batchnorm", "--format", "html"], "--format='html'"),
])
def test_bad_input_is_one_line_exit_2(capsys: pytest.CaptureFixture[str], argv: list[str],
                                      needle: str) -> None:
    """Bad input: exit 2, one line on stderr naming the value and the choices, no traceback."""
    code, out, err = run(capsys, *argv)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and needle in err and "Traceback" not in err


def test_unknown_flag_is_a_usage_error() -> None:
    """argparse usage errors also exit 2 with one line (checked through the console script)."""
    proc = subprocess.run([sys.executable, "-m", "symbn.cli", "derive", "batchnorm", "--bogus"],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 2 and "--bogus" in proc.stderr
    assert proc.stderr.count("\n") == 1


@pytest.mark.parametrize(("argv", "needle"), [
    (["codegen", "batchnorm", "--eps", "1e-3"], "unrecognized arguments: --eps 1e-3"),
    (["codegen", "batchnorm", "--back", "numba"], "unrecognized arguments: --back numba"),
    (["codegen", "batchnorm", "batchnorm"], "unrecognized arguments: batchnorm"),
])
def test_a_subcommand_s_unknown_argument_names_its_help(capsys: pytest.CaptureFixture[str],
                                                        argv: list[str], needle: str) -> None:
    """No abbreviations (``--eps`` was taken for ``--eps-placement``, and the error named the
    placement); an argument the subcommand does not take sends to the subcommand's help."""
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and err.count("\n") == 1
    assert needle in err and "(see 'symbn codegen --help')" in err


@pytest.mark.parametrize("redirect", [">/dev/full", ">&-"])
def test_standard_output_that_cannot_be_written_is_one_line_exit_2(redirect: str) -> None:
    """Standard output full or closed: exit 2 and one line on stderr, not a traceback."""
    if not Path("/dev/full").exists():
        pytest.skip("no /dev/full here")
    proc = subprocess.run(f"{sys.executable} -m symbn.cli latex batchnorm {redirect}",
                          shell=True, capture_output=False, stderr=subprocess.PIPE, text=True,
                          check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.startswith("symbn: error: cannot write the output: ")
    assert proc.stderr.count("\n") == 1


def test_help_never_breaks_an_option_at_its_hyphen(capsys: pytest.CaptureFixture[str]) -> None:
    """The help text wraps between words: ``--eps-placement`` stays whole (its example broke
    into ``--eps-`` and ``placement``)."""
    for command in ("codegen", "latex", "derive", "verify"):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        text = capsys.readouterr().out
        assert "--eps-placement" in text
        assert not re.search(r"-\n\s*placement", text), command


def test_failed_proof_exits_1(capsys: pytest.CaptureFixture[str],
                              monkeypatch: pytest.MonkeyPatch) -> None:
    """--prove exits 1 and says FAILED when a claim does not hold."""
    failing = symbn.ProofReport((Proof("dL/dx: closed == raw", False, "x"),))
    monkeypatch.setattr("symbn.commands.derive.prove", lambda d: failing)
    code, out, _ = run(capsys, "derive", "batchnorm", "--prove")
    assert code == 1 and "[FAILED]" in out


def test_help_describes_every_option(capsys: pytest.CaptureFixture[str]) -> None:
    """`symbn --help` lists the commands; `symbn derive --help` describes every option."""
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "derive" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["derive", "--help"])
    text = capsys.readouterr().out
    for option in ("--m", "--eps-placement", "--variance", "--no-affine", "--mode", "--format",
                   "--prove", "sqrt", "std", "biased", "unbiased", "train", "eval"):
        assert option in text, option


@pytest.mark.parametrize(("argv", "needle"), [
    (["latex", "batchnorm", "-o", "{missing}/x.tex"], "cannot write it: No such file"),
    (["latex", "batchnorm", "-o", "{texdir}"], "cannot write it: Is a directory"),
    (["testgen", "batchnorm", "--target", "{bn}:backward", "-o", "{missing}/t.py"],
     "No such file"),
    (["render", "--dir", "{file}"], "it is a file, not a folder"),
    (["render", "--dir", "{file}/sub"], "cannot write it: Not a directory"),
])
def test_unwritable_output_is_one_line_exit_2(capsys: pytest.CaptureFixture[str],
                                              monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                              argv: list[str], needle: str) -> None:
    """An output path that cannot be written: exit 2, one line naming the path and why."""
    monkeypatch.setattr(render, "expected_files", lambda: {"README.md": "# Derivations\n"})
    (tmp_path / "file.txt").write_text("mine", encoding="utf-8")
    (tmp_path / "bn.py").write_text("def backward(dy, x, gamma, *, eps, axis): ...\n")
    (tmp_path / "d.tex").mkdir()
    places = {"missing": tmp_path / "missing", "texdir": tmp_path / "d.tex",
              "file": tmp_path / "file.txt", "bn": tmp_path / "bn.py"}
    argv = [a.format(**places) for a in argv]
    code, out, err = run(capsys, *argv)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and "Traceback" not in err
    assert f"={argv[-1]!r}" in err and needle in err
    assert (tmp_path / "file.txt").read_text(encoding="utf-8") == "mine"


TARGET_MODULE = '''\
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Saved:
    xhat: np.ndarray
    r: np.ndarray
    m: int


def backward(dy, x, gamma, *, eps, axis):
    axes = tuple(k for k in range(x.ndim) if k != axis % x.ndim)
    shape = [1] * x.ndim
    shape[axis] = x.shape[axis]
    m = x.size // x.shape[axis]
    mu = x.mean(axes, keepdims=True)
    r = 1 / np.sqrt(((x - mu) ** 2).mean(axes, keepdims=True) + eps)
    saved = Saved((x - mu) * r, r, m)
    s1 = dy.sum(axes, keepdims=True)
    s2 = (dy * saved.xhat).sum(axes, keepdims=True)
    dx = gamma.reshape(shape) * saved.r / saved.m * (saved.m * dy - s1 - saved.xhat * s2)
    return dx, s2.reshape(-1), s1.reshape(-1)
'''


def test_check_loads_a_file_with_future_annotations_and_a_dataclass(
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """`symbn check file.py:fn` runs ordinary code: the module is in sys.modules as it executes."""
    path = tmp_path / "bn_dataclass.py"
    path.write_text(TARGET_MODULE, encoding="utf-8")
    try:
        code, out, err = run(capsys, "check", f"{path}:backward")
    finally:
        sys.modules.pop("_symbn_target_bn_dataclass", None)
    assert code == 0, out + err


def test_a_file_that_fails_to_import_is_one_line_and_not_left_in_sys_modules(
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """A target file raising on import: exit 2 naming the error; no half-run module is kept."""
    path = tmp_path / "bn_broken.py"
    path.write_text("raise RuntimeError('broken on purpose')\n", encoding="utf-8")
    code, _, err = run(capsys, "check", f"{path}:backward")
    assert code == 2 and "RuntimeError: broken on purpose" in err
    assert "_symbn_target_bn_broken" not in sys.modules
    earlier = sys.modules["_symbn_target_bn_broken"] = types.ModuleType("earlier")
    try:  # a file of the same name loaded before keeps its entry
        code, _, _ = run(capsys, "check", f"{path}:backward")
        assert code == 2 and sys.modules["_symbn_target_bn_broken"] is earlier
    finally:
        sys.modules.pop("_symbn_target_bn_broken", None)


def test_check_imports_a_module_of_the_current_directory(
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
        tmp_path: Path) -> None:
    """`symbn check module:fn` finds module.py in the working directory, as `python -m` does."""
    (tmp_path / "symbn_cwd_target.py").write_text(TARGET_MODULE, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", ".")])
    before = list(sys.path)
    try:
        code, out, err = run(capsys, "check", "symbn_cwd_target:backward")
    finally:
        sys.modules.pop("symbn_cwd_target", None)
    assert code == 0, out + err
    assert sys.path == before


def test_ctrl_c_is_one_line_and_status_130(capsys: pytest.CaptureFixture[str],
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """Ctrl-C printed a traceback ending in KeyboardInterrupt (a review)."""
    from symbn.commands import derive

    def interrupted(args: object) -> int:
        raise KeyboardInterrupt

    monkeypatch.setattr(derive, "run", interrupted)
    code, out, err = run(capsys, "derive", "batchnorm")
    assert code == 130 and out == "" and err == "symbn: interrupted\n"


def test_an_unknown_option_before_the_command_is_named(capsys: pytest.CaptureFixture[str]
                                                       ) -> None:
    """``symbn --bogus`` said "the following arguments are required: COMMAND"."""
    for argv in (["--bogus"], ["--bogus", "derive", "batchnorm"]):
        with pytest.raises(SystemExit) as stop:
            main(argv)
        err = capsys.readouterr().err
        assert stop.value.code == 2 and "unrecognized arguments: --bogus" in err


def test_an_empty_output_name_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """``render --dir ""`` wrote 49 files into the current folder, and ``latex -o ''`` said
    "Is a directory" (a review)."""
    monkeypatch.chdir(tmp_path)
    code, _, err = run(capsys, "render", "--dir", "")
    assert code == 2 and "--dir='' is not allowed; expected a folder name" in err
    code, _, err = run(capsys, "latex", "batchnorm", "-o", "")
    assert code == 2 and "--output='' is not allowed; expected a file name" in err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(("argv", "needle"), [
    (["-o", "bn.pdf"], "ending in .tex, such as bn.tex: symbn writes LaTeX source, which pdflatex"),
    (["-o", "bn.md"], "without --markdown, symbn writes LaTeX; add --markdown"),
    (["--markdown", "-o", "bn.tex"], "ending in .md, such as bn.md: --markdown writes Markdown; "
                                     "leave it out"),
    (["--markdown", "-o", "notes.html"], "ending in .md, such as bn.md: --markdown writes "
                                         "Markdown, not HTML"),
])
def test_latex_refuses_an_output_named_for_another_format(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
        argv: list[str], needle: str) -> None:
    """``latex -o bn.pdf`` wrote LaTeX source into a file named as a PDF, and ``-o bn.md``
    without --markdown LaTeX into a Markdown name, without a word; now exit 2, one line, no
    file, before the derivation's seconds of work."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("symbn.commands.latex.derive", None)  # must not be reached
    code, out, err = run(capsys, "latex", "batchnorm", *argv)
    assert code == 2 and out == "" and err.count("\n") == 1
    assert f"--output={argv[-1]!r} is not allowed" in err and needle in err
    assert list(tmp_path.iterdir()) == []


def test_latex_accepts_the_other_latex_and_markdown_suffixes(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """.ltx, .latex and upper case are LaTeX names, .markdown a Markdown one, and a name of no
    known format is written as given (a review: bn, bn.txt and /dev/stdout were refused);
    '-' is standard output."""
    for argv in (["-o", str(tmp_path / "a.LTX")], ["-o", str(tmp_path / "b.latex")],
                 ["--markdown", "-o", str(tmp_path / "c.markdown")],
                 ["-o", str(tmp_path / "bn")], ["-o", str(tmp_path / "bn.txt")]):
        code, _, err = run(capsys, "latex", "batchnorm", "--mode", "eval", *argv)
        assert code == 0, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.LTX", "b.latex", "bn", "bn.txt",
                                                          "c.markdown"]
    code, out, _ = run(capsys, "latex", "batchnorm", "--mode", "eval", "-o", "-")
    assert code == 0 and out.startswith("\\documentclass")


def test_check_keeps_the_functions_prints_out_of_the_report(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """What a backward prints, called or imported, goes to stderr, not between the report's
    lines (a review), and closing sys.stdout there closes nothing of symbn's; an output of the
    wrong dtype shows "(not compared)" as its error, not inf, and the headline says how many
    inputs passed ("0/11 inputs" read as 0 failed)."""
    (tmp_path / "bn.py").write_text(
        "import sys\n"
        "import numpy as np\n"
        "print('hello from the import')\n"
        "def backward(dy, x, gamma, *, eps, axis):\n"
        "    print('hello from backward')\n"
        "    sys.stdout.close()\n"
        "    z = np.zeros(x.shape[axis], x.dtype)\n"
        "    return dy.astype(np.float32), z, z\n")
    code, out, err = run(capsys, "check", f"{tmp_path / 'bn.py'}:backward")
    assert code == 1 and "hello" not in out and "hello from backward" in err
    assert "hello from the import" in err and not sys.stderr.closed
    first, _, worst = out.splitlines()[:3]
    assert re.search(r"FAIL \(0 of 1[12] inputs passed\)$", first)
    assert worst.startswith("dx") and "(not compared)" in worst and "inf" not in worst


def test_eval_mode_condition_names_the_running_variance(capsys: pytest.CaptureFixture[str]
                                                       ) -> None:
    """In eval mode there is no batch variance: the condition said var + eps > 0, 'a constant
    batch included' (a review)."""
    code, out, _ = run(capsys, "derive", "batchnorm", "--mode", "eval", "--format", "json")
    (condition,) = json.loads(out)["conditions"]
    assert code == 0 and condition["statement"] == "running_var + eps > 0"
    assert "batch" not in condition["explanation"]


def test_python_m_symbn_runs_the_command() -> None:
    """``python -m symbn`` is the symbn command (there was no __main__)."""
    result = subprocess.run([sys.executable, "-m", "symbn", "--version"], capture_output=True,
                            text=True, timeout=60, check=False)
    assert result.returncode == 0 and result.stdout.startswith("symbn ")


def test_concrete_m_text_gives_the_limit_in_its_elements(capsys: pytest.CaptureFixture[str]
                                                         ) -> None:
    """At --m 2 the sigma = 0 limit is written in x_0, g_0 like the closed forms around it, not
    in the symbolic-m notation g(i), Sum(...) (a review)."""
    code, out, _ = run(capsys, "derive", "batchnorm", "--eps-placement", "std", "--m", "2")
    assert code == 0
    assert "where it fails, dL/dx_0 = gamma*(g_0 - g_1)/(2*eps)" in out
    assert "where it fails, dL/dx_1 = gamma*(-g_0 + g_1)/(2*eps)" in out
    assert "Sum(" not in out.split("Conditions:")[1].split("Proof:")[0]
