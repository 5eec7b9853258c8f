"""Write a pytest + hypothesis test file for a user's backward function.

The file is text made from one template: readable, deterministic (the same arguments give the
same bytes; hypothesis runs derandomized), and it imports the function under test by name, so
it can be committed next to the code it tests. Each test draws inputs with
:mod:`symbn.strategies` and compares every output with the proven reference through
:func:`symbn.checker.check_case`, whose failure message names the input and both values.

>>> source = generate_tests(LayerSpec(), "mypkg.layers:bn_backward")
>>> "from mypkg.layers import bn_backward as backward_under_test" in source
True
>>> source == generate_tests(LayerSpec(), "mypkg.layers:bn_backward")
True
"""

from __future__ import annotations

import keyword
import os
import re
from pathlib import Path

from symbn import __version__
from symbn.cases import DTypeLike, check_dtype, default_cases, signature
from symbn.errors import OptionError, check_whole, printable
from symbn.spec import LayerSpec, checked_spec

__all__ = ["generate_tests", "signature"]

_DOTTED = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")


def _import_line(target: str, test_file: str | None) -> str:
    """The line that gives the test file ``backward_under_test``.

    A file target is read relative to the test file where that is known (``test_file``), so
    that the tests run from any folder; else relative to the folder pytest runs in.
    """
    if ":" not in target:
        raise OptionError.bad_value("target", target,
                                    "write it as package.module:function or path/file.py:function")
    where, _, name = target.rpartition(":")
    if not name.isidentifier() or keyword.iskeyword(name):
        raise OptionError.bad_value("target", target, f"{name!r} is not a function name")
    if where.endswith(".py"):
        if test_file is None:
            return f"backward_under_test = load_function({target!r})"
        near = Path(os.path.relpath(Path(where).resolve(), Path(test_file).resolve().parent))
        # the path outside the f-string: a backslash (an escape of the path's repr) may not
        # stand in an f-string's braces before Python 3.12
        return ("HERE = Path(__file__).resolve().parent  # the target's path is from here\n"
                f"TARGET = HERE / {near.as_posix()!r}\n"
                f'backward_under_test = load_function(f"{{TARGET}}:{name}")')
    if not _DOTTED.match(where):
        raise OptionError.bad_value("target", target, f"{where!r} is not a module name")
    return f"from {where} import {name} as backward_under_test"


def generate_tests(spec: LayerSpec, target: str, *, dtype: DTypeLike = "float64",
                   examples: int = 200, command: str | None = None,
                   test_file: str | None = None) -> str:
    """The source of a test file checking ``target`` (``module:function``) against symbn.

    Parameters
    ----------
    spec
        The variant the function implements.
    target
        ``package.module:function`` (or ``path/to/file.py:function``).
    dtype
        ``"float64"`` or ``"float32"`` (or NumPy's float32, float64): the dtype of the
        generated inputs.
    examples
        Hypothesis examples per property test.
    command
        The command line to record in the docstring (default: the equivalent ``symbn testgen``).
    test_file
        Where the test file will be written, if known: a ``path/file.py`` target is then read
        relative to it, not to the folder pytest runs in.

    """
    spec = checked_spec(spec)  # the options by their Python names, as load_function names them
    if not isinstance(target, str):
        raise OptionError.bad_value("target", target, "give a string, such as "
                                    "'mypkg.layers:bn_backward' or 'path/file.py:bn_backward'")
    dtype = check_dtype(dtype)
    examples = check_whole("examples", examples, 1)  # 2.5 and True were written out as given
    flags = _flags(spec)
    command = command or f"symbn testgen {spec.layer} --target {target}{flags} " \
                         f"--dtype {dtype} --examples {examples}" \
                         f"{'' if test_file is None else ' -o ' + test_file}"
    import_line = _import_line(target, test_file)
    from_file = target.rpartition(":")[0].endswith(".py")  # read by load_function
    options = (f'eps_placement="{spec.eps_placement}", variance="{spec.variance}", '
               f'affine={spec.affine}, mode="{spec.mode}"')
    fixed = len(default_cases(spec, dtype))
    structured = ""
    if spec.uses_batch_statistics:
        structured = _STRUCTURED.format(layer=spec.layer, options=options)
    return _TEMPLATE.format(
        target=_shown(target), command=_shown(command), version=__version__,
        describe=spec.describe(),
        signature=signature(spec), import_line=import_line, layer=spec.layer,
        pathlib="from pathlib import Path\n\n" if from_file and test_file is not None else "",
        options=options, dtype=dtype, examples=examples, fixed=fixed,
        structured=structured, load=", load_function" if from_file else "",
    )


def _shown(text: str) -> str:
    r"""``text`` as the docstring shows it, whatever it holds.

    A path's bytes that are not UTF-8 (``bad\xfe.py``: ``'\udcfe'`` in Python) made the file
    unwritable, or, written, a file pytest could not read; a backslash or three quotes would
    end or change the docstring. They show as escapes.

    >>> print(_shown('bad\udcfe.py a\\b "q"'))
    bad\\udcfe.py a\\b \"q\"
    """
    return printable(text).replace("\\", "\\\\").replace('"', '\\"')


def _flags(spec: LayerSpec) -> str:
    default = LayerSpec(spec.layer)
    out = ""
    if spec.eps_placement != default.eps_placement:
        out += f" --eps-placement {spec.eps_placement}"
    if spec.variance != default.variance:
        out += f" --variance {spec.variance}"
    if not spec.affine:
        out += " --no-affine"
    if spec.mode != default.mode:
        out += f" --mode {spec.mode}"
    return out


_TEMPLATE = '''\
"""Property tests: {target} against symbn's proven gradient.

Generated by symbn {version} with
    {command}
Regenerate rather than edit.
Variant: {describe}.

The function under test has the signature
    {signature}
with `axis` the channel axis (statistics reduce over every other axis). Every test compares
each output with symbn's mpmath evaluation of the proven closed form, with a tolerance derived
from the dtype and the conditioning of the input; a failure prints the input, the worst
element of each output and both values ("analytic ... reference ...").
"""

from __future__ import annotations

{pathlib}import pytest
from hypothesis import HealthCheck, given, settings
from symbn import LayerSpec
from symbn import strategies as sst
from symbn.checker import Case, check_case, default_cases{load}
from symbn.reference import Reference

{import_line}

SPEC = LayerSpec(
    layer="{layer}", {options},
)
DTYPE = "{dtype}"
EXAMPLES = settings(max_examples={examples}, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@pytest.fixture(scope="module")
def reference() -> Reference:
    """symbn's reference for the variant (derived once per test module)."""
    return Reference(SPEC)


def check(case: Case, reference: Reference) -> None:
    """Run the backward on one input and compare every output with the reference."""
    result = check_case(backward_under_test, case, spec=SPEC, reference=reference)
    if not result.passed:
        pytest.fail(result.explain(), pytrace=False)


@pytest.mark.parametrize("index", range({fixed}))
def test_symbn_fixed_inputs(index: int, reference: Reference) -> None:
    """symbn's fixed inputs: m = 1, 2, 256, NCHW with axis=1, mean offset, constant channel..."""
    check(default_cases(SPEC, DTYPE)[index], reference)


@EXAMPLES
@given(case=sst.cases(
    "{layer}", {options},
    dtype=DTYPE, hard=False))
def test_ordinary_inputs(case: Case, reference: Reference) -> None:
    """Ordinary inputs: random upstream gradients, gamma != 1, batch sizes 1, 2 and large."""
    check(case, reference)


@EXAMPLES
@given(case=sst.hard_cases(
    "{layer}", {options},
    dtype=DTYPE))
def test_hard_inputs(case: Case, reference: Reference) -> None:
    """Hard inputs: mean offset up to 1e7, constant channel, variance below eps, tiny or big γ."""
    check(case, reference)
{structured}'''

_STRUCTURED = '''

@EXAMPLES
@given(case=sst.cases(
    "{layer}", {options},
    dtype=DTYPE, dy_kind="constant"))
def test_constant_upstream_gradient(case: Case, reference: Reference) -> None:
    """dy constant along the batch: in training mode dx must be 0."""
    check(case, reference)


@EXAMPLES
@given(case=sst.cases(
    "{layer}", {options},
    dtype=DTYPE, dy_kind="xhat"))
def test_upstream_gradient_xhat(case: Case, reference: Reference) -> None:
    """dy = xhat: dx = gamma*r*xhat*eps/(var+eps) for the default variant (eps placement shows)."""
    check(case, reference)
'''
