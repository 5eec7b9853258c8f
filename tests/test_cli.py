"""The command line: output, exit statuses, one-line errors, help."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import sympy as sp

import symbn
from symbn.cli import main
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


def test_concrete_m_json_has_one_entry_per_element(capsys: pytest.CaptureFixture[str]) -> None:
    """With --m 3 the input gradient is given for each of the three elements."""
    code, out, _ = run(capsys, "derive", "batchnorm", "--m", "3", "--format", "json", "--prove")
    data = json.loads(out)
    assert code == 0 and data["m"] == 3 and data["proof"]["holds"]
    assert len(data["gradients"]["x"]["closed"]) == 3


def test_latex_format(capsys: pytest.CaptureFixture[str]) -> None:
    """--format latex prints align* blocks without SymPy's machine names."""
    code, out, _ = run(capsys, "derive", "batchnorm", "--format", "latex", "--no-affine")
    assert code == 0 and r"\begin{align*}" in out and r"\hat{x}_{i}" in out
    assert "Sum(" not in out and "dL_d" not in out


@pytest.mark.parametrize(("argv", "needle"), [
    (["derive", "batchnorm", "--m", "0"], "m=0"),
    (["derive", "batchnorm", "--m", "2.5"], "m='2.5'"),
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
