"""Tests of symbn.document (and document_math/_sections): the derivation as LaTeX and Markdown."""

from __future__ import annotations

import argparse
import re

import pytest
import sympy as sp

import symbn
from symbn import symbols as S
from symbn.api import ProofReport
from symbn.commands import latex as latex_command
from symbn.document import repr_latex, to_markdown, to_tex
from symbn.document_math import partial_latex, split_contribution
from symbn.document_sections import prose_latex
from symbn.errors import OptionError
from symbn.proof import Proof

FORBIDDEN = ("Sum(", "KroneckerDelta", "dL_d", "dL/d", "xhat", "running_var", "sqrt(", "**")


@pytest.fixture(scope="module")
def default():
    d = symbn.derive(symbn.LayerSpec())
    return d, symbn.prove(d)


@pytest.fixture(scope="module")
def std_train():
    d = symbn.derive(symbn.LayerSpec(eps_placement="std"))
    return d, symbn.prove(d)


def _rows(tex: str) -> list[str]:
    """Every displayed equation row of a .tex document, without alignment marks."""
    rows = []
    for block in re.findall(r"\\begin\{align\*\}\n(.*?)\n\\end\{align\*\}", tex, re.S):
        rows += [r.strip().replace("&", "").split(r"\text")[0].strip()
                 for r in block.split("\\\\\n")]
    return rows


def test_default_shows_the_forward_graph(default):
    """μ_B, σ²_B, x̂_i and y_i are defined as in Ioffe & Szegedy's Algorithm 1."""
    rows = _rows(to_tex(*default))
    assert r"\mu_B = \frac{1}{m} \sum_{i=1}^{m} x_{i}" in rows
    assert r"\sigma_B^{2} = \frac{1}{m} \sum_{i=1}^{m} \left(x_{i} - \mu_B\right)^{2}" in rows
    assert r"\hat{x}_{i} = \frac{x_{i} - \mu_B}{\sqrt{\sigma_B^{2} + \epsilon}}" in rows
    assert r"y_{i} = \gamma \hat{x}_{i} + \beta" in rows


def test_default_steps_are_the_papers_equations(default):
    """The six backward equations of Ioffe & Szegedy, Section 3, appear term for term."""
    rows = _rows(to_tex(*default))
    d_xhat, d_var, d_mu = (r"\frac{\partial \ell}{\partial \hat{x}_{i}}",
                           r"\frac{\partial \ell}{\partial \sigma_B^{2}}",
                           r"\frac{\partial \ell}{\partial \mu_B}")
    root = r"\sqrt{\sigma_B^{2} + \epsilon}"
    expected = [
        d_xhat + r" = \frac{\partial \ell}{\partial y_{i}} \cdot \gamma",
        d_var + r" = \sum_{i=1}^{m} " + d_xhat + r" \cdot \left(-\frac{1}{2} \left(x_{i} - "
        r"\mu_B\right) \left(\sigma_B^{2} + \epsilon\right)^{-3/2}\right)",
        d_mu + r" = \sum_{i=1}^{m} " + d_xhat + r" \cdot \left(-\frac{1}{" + root
        + r"}\right) + " + d_var + r" \cdot \sum_{i=1}^{m} -\frac{2 \left(x_{i} - \mu_B\right)}{m}",
        r"\frac{\partial \ell}{\partial x_{i}} = " + d_xhat + r" \cdot \frac{1}{" + root + "} + "
        + d_var + r" \cdot \frac{2 \left(x_{i} - \mu_B\right)}{m} + " + d_mu
        + r" \cdot \frac{1}{m}",
        r"\frac{\partial \ell}{\partial \gamma} = \sum_{i=1}^{m} \frac{\partial \ell}{\partial "
        r"y_{i}} \cdot \hat{x}_{i}",
        r"\frac{\partial \ell}{\partial \beta} = \sum_{i=1}^{m} \frac{\partial \ell}{\partial "
        r"y_{i}}",
    ]
    for row in expected:
        assert row in rows, row


def test_second_term_of_dmu_is_said_to_vanish(default):
    """∂ℓ/∂μ_B is followed by the reason its second term is 0 and the step without it."""
    tex = to_tex(*default)
    assert "The second term vanishes because" in tex
    assert r"\sum_{i=1}^{m} (x_i - \mu_B)" in tex
    eval_tex = to_tex(symbn.derive(symbn.LayerSpec(mode="eval")))
    assert "vanishes" not in eval_tex


def test_default_closed_forms_and_definitions(default):
    """The closed forms (γr/m)(m g − Σg − x̂ Σ g x̂), Σ g x̂, Σ g and r = 1/√(σ²+ε) are shown."""
    rows = _rows(to_tex(*default))
    assert (r"\frac{\partial \ell}{\partial x_{i}} = \frac{\gamma r}{m} \left(m g_{i} - "
            r"\sum_{j=1}^{m} g_{j} - \hat{x}_{i} \sum_{j=1}^{m} g_{j} \hat{x}_{j}\right)") in rows
    assert r"\frac{\partial \ell}{\partial \gamma} = \sum_{i=1}^{m} g_{i} \hat{x}_{i}" in rows
    assert r"r = \frac{1}{\sqrt{\sigma_B^{2} + \epsilon}}" in rows
    assert r"\sum_{i=1}^{m} \hat{x}_{i} = 0" in rows


def test_gradient_descent_updates_only_with_affine(default):
    """γ ← γ − α∂ℓ/∂γ and β ← β − α∂ℓ/∂β appear for affine variants, not without affine."""
    rows = _rows(to_tex(*default))
    assert (r"\gamma \leftarrow \gamma - \alpha \frac{\partial \ell}{\partial \gamma} = "
            r"\gamma - \alpha \sum_{i=1}^{m} g_{i} \hat{x}_{i}") in rows
    assert (r"\beta \leftarrow \beta - \alpha \frac{\partial \ell}{\partial \beta} = "
            r"\beta - \alpha \sum_{i=1}^{m} g_{i}") in rows
    plain = to_tex(symbn.derive(symbn.LayerSpec(affine=False)))
    assert r"\leftarrow" not in plain and "Gradient descent" not in plain


def test_std_placement_states_the_condition_and_the_limit(std_train):
    """eps outside the root: σ_B > 0 is stated and the σ → 0 limit of ∂ℓ/∂x_i is shown."""
    tex = to_tex(*std_train)
    assert r"hold where $\sigma_B > 0$" in tex
    assert (r"\frac{\partial \ell}{\partial x_{i}} = \frac{\gamma}{\epsilon m} \left(m g_{i} - "
            r"\sum_{j=1}^{m} g_{j}\right)") in _rows(tex)


def test_proof_statement_follows_the_report(default):
    """Proved claims read 'proved'; a failing report makes the document say NOT proved."""
    d, report = default
    assert "Every claim was proved." in to_tex(d, report)
    bad = ProofReport((Proof("dL/dx: closed form == raw derivative, symbolic m", False, "x"),))
    tex = to_tex(d, bad)
    assert "NOT proved" in tex and "Every claim was proved." not in tex


@pytest.mark.parametrize("spec", [symbn.LayerSpec(), symbn.LayerSpec(eps_placement="std"),
                                  symbn.LayerSpec(eps_placement="std", mode="eval",
                                                  affine=False)],
                         ids=lambda s: s.describe())
def test_no_program_names_and_ascii_tex(spec):
    """Neither format shows SymPy syntax or program names; the .tex is plain ASCII."""
    d = symbn.derive(spec)
    report = symbn.prove(d)
    tex, md = to_tex(d, report), to_markdown(d, report)
    for text in (tex, md):
        for bad in FORBIDDEN:
            assert bad not in text, bad
    assert tex.isascii()
    assert re.search(r"(?<![-_])\beps\b(?![-_])", md) is None


def test_markdown_math_is_github_safe(std_train):
    """Every $$ block is one line between $$ lines, with no \\\\ or backslash-punctuation."""
    md = to_markdown(*std_train)
    blocks = re.findall(r"^\$\$\n(.*?)\n\$\$$", md, re.M | re.S)
    assert blocks and md.count("$$") == 2 * len(blocks)
    for block in blocks:
        assert "\n" not in block
    assert re.search(r"\\[\\,;:!{}_]", md) is None
    for line in md.splitlines():
        if line != "$$":
            assert line.count("$") % 2 == 0, line


def test_output_is_deterministic(default):
    """Two derivations of the same variant give byte-identical documents."""
    d2 = symbn.derive(symbn.LayerSpec())
    assert to_tex(*default) == to_tex(d2, symbn.prove(d2))
    assert to_markdown(*default) == to_markdown(d2, symbn.prove(d2))


def test_concrete_batch_size_is_refused():
    """A document is for symbolic m: a derivation at m = 3 raises OptionError naming m."""
    with pytest.raises(OptionError, match="m=3"):
        to_tex(symbn.derive(symbn.LayerSpec(), m=3))


def test_repr_latex_for_jupyter():
    """repr_latex is one $$ aligned block with the closed form, for symbolic and concrete m."""
    text = repr_latex(symbn.derive(symbn.LayerSpec()))
    assert text.startswith("$$\\begin{aligned}") and text.endswith("\\end{aligned}$$")
    assert r"\frac{\gamma r}{m}" in text
    assert "m = 2" in repr_latex(symbn.derive(symbn.LayerSpec(), m=2))


def test_split_contribution_recombines_every_term():
    """adjoint · partial (summed where marked) rebuilds every chain-rule term of every variant."""
    for spec in symbn.all_variants():
        for step in symbn.derive(spec).steps:
            for c in step.contributions:
                adjoint, partial, summed = split_contribution(c)
                whole = partial if adjoint is None else adjoint * partial
                if summed:
                    whole = sp.Sum(whole, (S.j, 1, S.m))
                assert sp.simplify(whole - c.expr) == 0, (spec.describe(), c)


def test_partial_latex_layouts():
    """Partials print as the paper does: 2(x_i − μ_B)/m, −½(…)(σ²+ε)^{−3/2}, −1/√(σ²+ε)."""
    x = S.element_function("x")(S.i)
    assert partial_latex((2 * x - 2 * S.mu) / S.m) == r"\frac{2 \left(x_{i} - \mu_B\right)}{m}"
    assert partial_latex((2 * S.mu - 2 * x) / S.m) == r"-\frac{2 \left(x_{i} - \mu_B\right)}{m}"
    assert partial_latex(-(x - S.mu) / (2 * (S.var + S.eps) ** sp.Rational(3, 2))) == (
        r"-\frac{1}{2} \left(x_{i} - \mu_B\right) \left(\sigma_B^{2} + \epsilon\right)^{-3/2}")
    assert partial_latex(-1 / sp.sqrt(S.var + S.eps)) == (
        r"-\frac{1}{\sqrt{\sigma_B^{2} + \epsilon}}")


def test_prose_latex_turns_unicode_into_math():
    """Unicode prose from the core becomes ASCII LaTeX with the symbols in math mode."""
    out = prose_latex("x̂ = (x − μ)/(σ + ε) for m = 1, 100% sure")
    assert out.isascii()
    assert r"\hat{x}" in out and r"\mu" in out and r"\epsilon" in out and r"100\%" in out


def test_prose_math_keeps_its_closing_parentheses_and_the_number_after_a_relation():
    """A review found ``(\\sigma + \\epsilon$)``, ``1/(2\\sigma$)``, ``O($|x - \\mu|^2$)`` and
    ``\\equiv$ 0`` in the std documents: a math span ended before its own ``)``."""
    tex = to_tex(symbn.derive(symbn.LayerSpec(eps_placement="std")))
    for span in re.findall(r"\$([^$]*)\$", tex):
        assert span.count("(") == span.count(")"), span
    assert r"$\hat{x} \equiv 0$" in tex and r"$O(|x - \mu|^2)$" in tex


@pytest.mark.parametrize("placement", ["sqrt", "std"])
def test_unbiased_training_documents_hold_for_m_of_two_and_more(placement):
    """The unbiased variance divides by m − 1: a review found every unbiased document saying
    the results held for every m, and the std one's condition naming m = 1 (which is refused)."""
    spec = symbn.LayerSpec(eps_placement=placement, variance="unbiased")
    d = symbn.derive(spec)
    assert [c.statement for c in d.conditions][-1] == "m >= 2"
    for text in (to_tex(d), to_markdown(d)):
        assert "every result holds for every $m \\geq 2$" in text
        assert "hold where $m \\geq 2$" in text
        assert "m = 1" not in text.replace("$", "")
        # the proof's claims and the sqrt placement's condition say so too (a second review)
        assert "every batch size $m$" not in text and "every batch size $m \\geq 2$" in text
        assert placement == "std" or "every input of at least 2 elements" in text
    biased = to_tex(symbn.derive(symbn.LayerSpec(eps_placement=placement)))
    assert "m \\geq 2" not in biased and "every result holds for every $m$." in biased
    evaluation = to_tex(symbn.derive(symbn.LayerSpec(variance="unbiased", mode="eval")))
    assert "m \\geq 2" not in evaluation  # the running variance is an input there


def test_latex_block_and_jupyter_name_sigma_as_the_documents_do():
    """``--format latex`` and ``_repr_latex_`` printed σ_B = σ_B for the std placement, named
    the running variance's root σ_B (the batch statistic's name) in eval mode, and put
    ``eps_placement`` with a bare _ in \\text{} (pdflatex: "Missing $ inserted"): a review."""
    from symbn.formats import to_latex

    train = symbn.derive(symbn.LayerSpec(eps_placement="std"))
    evaluation = symbn.derive(symbn.LayerSpec(eps_placement="std", mode="eval"))
    assert r"\sigma_B &= \sqrt{\sigma_B^{2}}" in to_latex(train)
    assert r"\sigma_B &= \sigma_B" not in to_latex(train)
    for text in (to_latex(evaluation), repr_latex(evaluation)):
        assert r"\sigma &= \sqrt{\mathrm{Var}[x]}" in text and r"\sigma_B" not in text
    for d in (train, evaluation):
        label = re.search(r"\\text\{(.*?)\}\\\\", repr_latex(d)).group(1)
        assert re.search(r"(?<!\\)_", label) is None, label


@pytest.mark.parametrize("printer", ["to_text", "to_latex", "to_json", "to_tex", "to_markdown",
                                     "repr_latex"])
@pytest.mark.parametrize("wrong", [None, symbn.LayerSpec()])
def test_printers_say_what_they_take(printer, wrong):
    """A printer given no derivation (or the spec instead) said AttributeError: 'NoneType'
    object has no attribute 'm' (a review); it is the OptionError prove gives."""
    from symbn import document, formats

    function = getattr(formats, printer, None) or getattr(document, printer)
    with pytest.raises(OptionError, match=r"^derivation=.* give what symbn\.derive returns"):
        function(wrong)


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="symbn")
    sub = parser.add_subparsers(dest="command")
    latex_command.add_parser(sub)
    return parser.parse_args(argv)


def test_latex_command_writes_tex_and_markdown(tmp_path, default):
    """symbn latex -o FILE writes the document; --markdown writes the Markdown version."""
    out = tmp_path / "bn.tex"
    assert latex_command.run(_parse(["latex", "batchnorm", "-o", str(out)])) == 0
    assert out.read_text(encoding="utf-8") == to_tex(*default)
    md = tmp_path / "bn.md"
    args = _parse(["latex", "batchnorm", "--eps-placement", "std", "--markdown", "-o", str(md)])
    assert latex_command.run(args) == 0
    assert md.read_text(encoding="utf-8").startswith("# Batch normalization")


def test_latex_command_rejects_a_bad_variant():
    """An unknown --variance value raises OptionError naming the value and the choices."""
    with pytest.raises(OptionError, match="'sample'"):
        latex_command.run(_parse(["latex", "batchnorm", "--variance", "sample"]))
