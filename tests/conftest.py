"""Shared fixtures for the unit tests of ``vae_lesson``.

The Agg backend is selected here, before anything imports ``matplotlib.pyplot``, so the tests
never need a display and never open windows.
"""
import os
import re
from pathlib import Path

os.environ["MPLBACKEND"] = "Agg"

import matplotlib  # noqa: E402

matplotlib.use("Agg", force=True)

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

import vae_lesson  # noqa: E402


@pytest.fixture(autouse=True)
def seeded() -> torch.Generator:
    """Seed Python, NumPy and torch (seed 0, one torch thread) before every test; the returned
    generator is a private stream for tests that want one."""
    return vae_lesson.seed_everything(0)


@pytest.fixture(autouse=True)
def _close_figures():
    """No figure outlives its test."""
    yield
    plt.close("all")


def bent_latent_model(seed: int, hidden: int, std_bias: float):
    """A small untrained LatentGaussianModel whose output layer is scaled up, so that its
    Gaussians' centres move with z, with their stds set by ``std_bias`` (softplus(std_bias) + 0.05):
    a curved, narrow density, a harder target than the default initialization."""
    from vae_lesson.models import LatentGaussianModel

    torch.manual_seed(seed)
    model = LatentGaussianModel(latent_dim=1, data_dim=2, hidden=hidden)
    with torch.no_grad():
        model.decoder.net[-1].weight.mul_(3.0)
        model.decoder.net[-1].bias[2:] = std_bias
    return model.requires_grad_(False)


def assert_caught(run, phrase: str, capsys) -> str:
    """``run()`` must raise an ExerciseError whose message starts with ❌, names the mistake
    (contains ``phrase``) and gives a hint, and nothing may have printed a pass line."""
    from vae_lesson.checks import ExerciseError

    with pytest.raises(ExerciseError) as info:
        run()
    msg = str(info.value)
    assert msg.startswith("❌"), msg
    assert phrase in msg, msg
    assert "Hint:" in msg
    assert "✅" not in capsys.readouterr().out
    return msg


# A small mixture of Bernoullis with known parameters: K = 3 components over P = 6 pixels.
SMALL_BERNOULLI_WEIGHTS = [0.5, 0.3, 0.2]
SMALL_BERNOULLI_PROBS = [
    [0.9, 0.8, 0.1, 0.2, 0.7, 0.05],
    [0.1, 0.3, 0.95, 0.6, 0.2, 0.5],
    [0.5, 0.02, 0.4, 0.97, 0.5, 0.85],
]


def assert_right_answers_pass(check, rights, capsys) -> None:
    """Every reference answer in ``rights`` passes ``check`` with a ✅ line and a passing result."""
    from vae_lesson.checks import CheckResult

    for right in rights:
        result = check(right)
        assert isinstance(result, CheckResult)
        assert result.passed is True and bool(result)
        assert capsys.readouterr().out.strip().startswith("✅")
        assert result.message.startswith("✅")


def assert_not_done_yet(check, capsys) -> None:
    """A scaffold still raising NotImplementedError is reported as "not done yet", without raising."""
    from vae_lesson.checks import CheckResult

    def not_done(*args, **kwargs):
        raise NotImplementedError

    result = check(not_done)
    assert isinstance(result, CheckResult)
    assert result.passed is False and not result
    assert "not done yet" in capsys.readouterr().out
    assert "not done yet" in result.message


def assert_memorized_answer_fails(check, right) -> None:
    """A function that memorizes its first answer fails: the check tries more than one input."""
    from vae_lesson.checks import ExerciseError

    first = []

    def memorized(*args):
        if not first:
            first.append(right(*args))
        return first[0].clone() if isinstance(first[0], torch.Tensor) else first[0]

    with pytest.raises(ExerciseError):
        check(memorized)


def current_env_kernel_manager():
    """A KernelManager whose kernel is the Python running the tests (as nbval's --nbval-current-env),
    whatever kernels are installed on the machine."""
    import ipykernel.kernelspec
    from jupyter_client import KernelManager
    from jupyter_client.kernelspec import KernelSpecManager

    class ThisPython(KernelSpecManager):
        def get_kernel_spec(self, kernel_name):
            return self.kernel_spec_class(resource_dir=ipykernel.kernelspec.RESOURCES,
                                          **ipykernel.kernelspec.get_kernel_dict())

    return KernelManager(kernel_name="python3", kernel_spec_manager=ThisPython())


def assert_student_run_went_through(nb, printed: str) -> None:
    """What "Run All" of an untouched student version must print: every exercise's check says "not
    done yet" (nothing passes by itself), and every unfinished function that a later cell calls is
    replaced by the reference for the cells below (and says so). ``printed``: the text of the
    notebook's printed outputs, in order."""
    exercises = sum("exercise" in c.metadata.get("tags", []) for c in nb.cells)
    assert printed.count("not done yet") == exercises, printed[-2000:]
    assert "✅" not in printed  # nothing passes by itself
    # the reference stands in for every unfinished function that a later cell calls (checks' USED_LATER)
    from vae_lesson.checks import USED_LATER

    assert exercises == len(exercise_ids := re.findall(r"⏳ Exercise (\d\d\.\d+)", printed))
    assert printed.count("the cells below use the reference") == sum(key in USED_LATER for key in exercise_ids)


def check_source_lines() -> set[str]:
    """Every line of vae_lesson/checks/*.py worth finding (stripped, 12 characters or more): no line of a
    check's own code may reach the student (the reference formula, the table of known mistakes). A line
    that only continues a message or hint string still has its quotes, so the message itself never
    matches; a line of code does, wherever the traceback machinery would print it."""
    from vae_lesson import checks

    import nbformat

    folder = Path(checks.__file__).parent
    in_notebooks = {line.strip() for nb in (folder.parents[1] / "notebooks").glob("*.ipynb")
                    for cell in nbformat.read(nb, as_version=4).cells for line in cell.source.splitlines()}
    lines = set()
    for path in folder.glob("*.py"):
        for line in path.read_text(encoding="utf-8").splitlines():
            line = line.strip()
            if (len(line) >= 12 and not line.startswith("#") and line not in in_notebooks
                    and sum(ch.isalnum() for ch in line) >= 6):
                lines.add(line)  # a line the notebook shows anyway (an import, a docstring) gives nothing away
    return lines


def assert_no_check_source(shown: str, lines: set[str] | None = None, traceback_allowed: bool = False) -> None:
    """``shown`` (what a student sees of a failing check) names no file of the checks and quotes no line of
    them; unless ``traceback_allowed`` (a whole page, where a notebook cell's own assertion may show its
    traceback), it holds no traceback at all."""
    lines = check_source_lines() if lines is None else lines
    markers = ("vae_lesson/checks", "checks/nb0", "_core.py") + (() if traceback_allowed else ("Traceback", 'File "'))
    for marker in markers:
        assert marker not in shown, f"{marker!r} shown to the student:\n{shown}"
    leaked = [line for line in lines if line in shown]
    assert not leaked, f"check source shown to the student: {leaked[:3]}\n{shown}"
