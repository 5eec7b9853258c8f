"""Tests of ``symbn render``: derivations/ is current, regenerates itself and compiles."""

from __future__ import annotations

import argparse
import shutil
import subprocess
from pathlib import Path

import pytest

import symbn
from symbn.commands import render
from symbn.errors import OptionError

ROOT = Path(__file__).resolve().parents[1]
DERIVATIONS = ROOT / "derivations"
TEX_FILES = sorted(DERIVATIONS.glob("*.tex"))
LATEXMK = shutil.which("latexmk")
PDFLATEX = shutil.which("pdflatex")


@pytest.fixture(scope="module")
def files() -> dict[str, str]:
    return render.expected_files()


def _args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="symbn")
    sub = parser.add_subparsers(dest="command")
    render.add_parser(sub)
    return parser.parse_args(["render", *argv])


def test_committed_derivations_are_current(files, monkeypatch, capsys):
    """symbn render --check exits 0 on the committed derivations/ folder."""
    monkeypatch.setattr(render, "expected_files", lambda: files)
    status = render.run(_args(["--check", "--dir", str(DERIVATIONS)]))
    assert status == 0, capsys.readouterr().err


def test_every_variant_has_a_tex_and_a_markdown_file(files):
    """Each of the 16 variants gets NAME.tex and NAME.md, plus an index README.md."""
    for spec in symbn.all_variants():
        name = render.stem(spec)
        assert f"{name}.tex" in files and f"{name}.md" in files
    assert "batchnorm-sqrt-biased-affine-train.tex" in files
    assert "README.md" in files
    assert len({render.stem(s) for s in symbn.all_variants()}) == 16


def test_generated_modules_included_when_codegen_exists(files):
    """With symbn.codegen importable, each variant's NumPy module is in the folder too."""
    pytest.importorskip("symbn.codegen")
    assert "batchnorm_sqrt_biased_affine_train.py" in files
    assert sum(n.endswith(".py") for n in files) == 16


def test_render_writes_then_check_passes_and_names_stale_missing_extra(
        files, tmp_path, monkeypatch, capsys):
    """render fills an empty folder; after edits --check exits 1 naming each bad file."""
    monkeypatch.setattr(render, "expected_files", lambda: files)
    target = tmp_path / "out"
    assert render.run(_args(["--dir", str(target)])) == 0
    assert {p.name for p in target.iterdir()} == set(files)
    assert render.run(_args(["--check", "--dir", str(target)])) == 0
    (target / "batchnorm-std-biased-affine-train.tex").write_text("old", encoding="utf-8")
    (target / "batchnorm-sqrt-biased-affine-eval.md").unlink()
    (target / "notes.txt").write_text("x", encoding="utf-8")
    module = target / "batchnorm_std_unbiased_noaffine_eval.py"  # generated code too (an audit)
    module.write_text(module.read_text(encoding="utf-8") + "# edited\n", encoding="utf-8")
    capsys.readouterr()
    assert render.run(_args(["--check", "--dir", str(target)])) == 1
    err = capsys.readouterr().err
    assert "stale: " in err and "batchnorm-std-biased-affine-train.tex" in err
    assert "batchnorm_std_unbiased_noaffine_eval.py" in err
    assert "missing: " in err and "batchnorm-sqrt-biased-affine-eval.md" in err
    assert "extra: " not in err and "notes.txt" not in err
    assert render.run(_args(["--dir", str(target)])) == 0
    assert render.run(_args(["--check", "--dir", str(target)])) == 0


def test_render_removes_only_files_it_generates(files, tmp_path, monkeypatch, capsys):
    """Files render does not generate stay; a generated name it no longer writes is extra."""
    without_modules = {n: t for n, t in files.items() if not n.endswith(".py")}
    monkeypatch.setattr(render, "expected_files", lambda: without_modules)
    target = tmp_path / "out"
    target.mkdir()
    mine = {"notes.txt": "notes", "mycode.py": "x = 1", "batchnorm.tex": "draft"}
    for name, text in mine.items():
        (target / name).write_text(text, encoding="utf-8")
    module = "batchnorm_sqrt_biased_affine_train.py"
    (target / module).write_text("old", encoding="utf-8")
    assert render.run(_args(["--check", "--dir", str(target)])) == 1
    err = capsys.readouterr().err
    assert f"extra: {target / module}" in err
    assert all(name not in err for name in mine)
    assert render.run(_args(["--dir", str(target)])) == 0
    assert "1 removed" in capsys.readouterr().out
    assert {p.name for p in target.iterdir()} == set(without_modules) | set(mine)
    assert all((target / n).read_text(encoding="utf-8") == t for n, t in mine.items())
    assert render.run(_args(["--check", "--dir", str(target)])) == 0


def test_render_refuses_to_replace_a_readme_that_is_not_its_index(files, tmp_path, monkeypatch):
    """A folder whose README.md is somebody's (a project's) is refused, the README untouched;
    render's own index is rewritten as before."""
    monkeypatch.setattr(render, "expected_files", lambda: files)
    target = tmp_path / "project"
    target.mkdir()
    (target / "README.md").write_text("# My project\n", encoding="utf-8")
    with pytest.raises(OptionError, match=r"README\.md is not symbn's index"):
        render.run(_args(["--dir", str(target)]))
    assert (target / "README.md").read_text(encoding="utf-8") == "# My project\n"
    assert [p.name for p in target.iterdir()] == ["README.md"]
    (target / "README.md").write_bytes(b"# Projekt \xe9t\xe9\n")  # Latin-1, not UTF-8
    with pytest.raises(OptionError, match=r"README\.md is not symbn's index"):
        render.run(_args(["--dir", str(target)]))
    assert (target / "README.md").read_bytes() == b"# Projekt \xe9t\xe9\n"
    own = tmp_path / "derivations"
    own.mkdir()
    (own / "README.md").write_text(files["README.md"].replace("| yes |", "| no |"), "utf-8")
    assert render.run(_args(["--dir", str(own)])) == 0
    assert (own / "README.md").read_text(encoding="utf-8") == files["README.md"]


def test_generated_names_are_what_render_writes(files):
    """The names render may remove are exactly the names it writes with symbn.codegen."""
    pytest.importorskip("symbn.codegen")
    assert render.generated_names() == set(files)


def test_committed_documents_read_as_people_write(files):
    """No SymPy syntax or program names in any committed document; .tex files are ASCII."""
    for name, text in files.items():
        if name.endswith((".tex", ".md")) and name != "README.md":
            for bad in ("Sum(", "KroneckerDelta", "dL_d", "xhat", "sqrt("):
                assert bad not in text, (name, bad)
            if name.endswith(".tex"):
                assert text.isascii(), name


@pytest.mark.skipif(LATEXMK is None and PDFLATEX is None,
                    reason="no LaTeX toolchain: latexmk/pdflatex not on PATH (Debian: "
                           "texlive-latex-base texlive-latex-recommended latexmk)")
@pytest.mark.parametrize("tex", TEX_FILES, ids=lambda p: p.name)
def test_tex_compiles(tex, tmp_path):
    """Each committed .tex compiles with pdflatex without errors and gives a PDF."""
    if LATEXMK is not None:
        cmd = [LATEXMK, "-pdf", "-interaction=nonstopmode", "-halt-on-error",
               f"-outdir={tmp_path}", str(tex)]
    else:
        cmd = [PDFLATEX, "-interaction=nonstopmode", "-halt-on-error",
               f"-output-directory={tmp_path}", str(tex)]
    run = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, timeout=120,
                         check=False)
    log = tmp_path / (tex.stem + ".log")
    assert run.returncode == 0, log.read_text(errors="replace")[-3000:] if log.exists() else run
    assert (tmp_path / (tex.stem + ".pdf")).stat().st_size > 0
    assert "Overfull \\hbox" not in log.read_text(errors="replace")


def test_there_are_committed_tex_files():
    """derivations/ holds the 16 .tex files the compile test runs over."""
    assert len(TEX_FILES) == 16
