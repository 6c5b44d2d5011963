"""What a student sees when a check fails, in a real kernel (nbclient, as JupyterLab and nbgrader run
notebooks): the ❌ message once, and no line of the checks' own code (no traceback through
vae_lesson/checks, whose reference formulas and tables of known mistakes would give the answer away).
An error raised inside the student's function is explained: what was raised, at which line of the
cell, the shapes it was given and must return, and the hint. All cases run in one kernel."""
import re

import nbformat
import patience
import pytest
from conftest import assert_no_check_source, check_source_lines

SETUP = """\
import math
import torch
from torch import distributions as D
from vae_lesson import checks
"""

# (exercise, the student's cell, the check cell, a phrase the message must hold)
CASES = [
    # the four shape errors students met (issue 23): each explained, never a raw torch traceback
    ("01.3", "def m_step_means(x, resp):\n    return resp.T @ x / resp.sum(0)\n",
     "checks.m_step_means(m_step_means)", "raised RuntimeError at line 2 of your cell"),
    ("03.3", "def ppca_posterior(x, W, b, sigma):\n"
             "    M = W.T @ W + sigma**2 * torch.eye(W.shape[1], dtype=W.dtype)\n"
             "    return torch.linalg.solve(M, W.T @ (x - b)), sigma**2 * torch.linalg.inv(M)\n",
     "checks.ppca_posterior(ppca_posterior)", "must return mean (N, d) = (6, 2), cov (d, d) = (2, 2)"),
    ("04.3", "def elbo_pca(x, W, b, log_sigma, q_mean, q_log_std):\n"
             "    sigma2, s2 = torch.exp(2 * log_sigma), torch.exp(2 * q_log_std)\n"
             "    sq_error = (x - q_mean @ W - b).pow(2).sum(-1) + s2 @ W.pow(2).sum(0)\n"
             "    return -0.5 * x.shape[1] * torch.log(2 * math.pi * sigma2) - sq_error / (2 * sigma2)\n",
     "checks.linear_gaussian_elbo(elbo_pca)", "W of shape (5, 2) = (D, d)"),
    ("06.1", "def elbo_of_q(model, x, mean, log_std, eps):\n"
             "    z = mean + log_std.exp() * eps\n"
             "    log_q = D.Normal(mean, log_std.exp()).log_prob(z)\n"
             "    return (model.joint_log_prob(x, z) - log_q).mean(0)\n",
     "checks.elbo_of_q(elbo_of_q)", "line 4: return (model.joint_log_prob(x, z) - log_q).mean(0)"),
    # wrong answers whose checks hold the reference formula and a table of known mistakes
    ("01.3", "def m_step_means(x, resp):\n    return resp.T @ x\n",
     "checks.m_step_means(m_step_means)", "forgot to divide by N_c"),
    ("02.2", "def importance_log_marginal(log_joint, log_q):\n"
             "    return torch.logsumexp(log_joint + log_q, 0) - math.log(log_joint.shape[0])\n",
     "checks.importance_log_marginal(importance_log_marginal)", "subtract log q"),
    ("04.3", "def elbo_pca(x, W, b, log_sigma, q_mean, q_log_std):\n"
             "    sigma2, s2 = torch.exp(2 * log_sigma), torch.exp(2 * q_log_std)\n"
             "    sq_error = (x - q_mean @ W.T - b).pow(2).sum(-1)\n"
             "    recon = -0.5 * x.shape[1] * torch.log(2 * math.pi * sigma2) - sq_error / (2 * sigma2)\n"
             "    return recon - 0.5 * (s2 + q_mean**2 - 1 - 2 * q_log_std).sum(-1)\n",
     "checks.linear_gaussian_elbo(elbo_pca)", "you left out q's spread"),
    ("06.1", "def elbo_of_q(model, x, mean, log_std, eps):\n"
             "    z = mean + log_std.exp() * eps\n"
             "    return model.joint_log_prob(x, z).mean(0)\n",
     "checks.elbo_of_q(elbo_of_q)", "the entropy of q is missing"),
]


@pytest.fixture(scope="module")
def executed(tmp_path_factory):
    nb = nbformat.v4.new_notebook()
    nb.cells.append(nbformat.v4.new_code_cell(SETUP))
    for _, student, check, _ in CASES:
        nb.cells += [nbformat.v4.new_code_cell(student), nbformat.v4.new_code_cell(check)]
    # graded mode (nbgrader): an untouched exercise fails its test cell with "not done: 0 points"
    nb.cells += [nbformat.v4.new_code_cell('checks.graded(True)\n'
                                           'def kl_to_standard_normal(mean, std):\n'
                                           '    raise NotImplementedError("✏️ your code here")'),
                 nbformat.v4.new_code_cell("checks.kl_to_standard_normal(kl_to_standard_normal)")]
    patience.execute_notebook(nb, tmp_path_factory.mktemp("feedback"), allow_errors=True)
    return nb


def shown(cell) -> str:
    """What JupyterLab (and nbconvert's feedback page) shows of a cell's outputs: streams, and of an error
    its traceback lines (the ename/evalue fields are not rendered when a traceback is present)."""
    parts = []
    for out in cell.outputs:
        if out.output_type == "stream":
            parts.append(out.text)
        elif out.output_type == "error":
            parts.append("\n".join(out.traceback))
        else:
            parts.append(str(out.get("data", {}).get("text/plain", "")))
    return re.sub(r"\x1b\[[0-9;]*m", "", "\n".join(parts))


@pytest.mark.parametrize("i", range(len(CASES)), ids=[f"{c[0]}-{n}" for n, c in enumerate(CASES)])
def test_failing_check_shows_its_message_once_and_no_check_source(executed, i):
    exercise, _, _, phrase = CASES[i]
    student_cell, check_cell = executed.cells[1 + 2 * i], executed.cells[2 + 2 * i]
    assert not [o for o in student_cell.outputs if o.output_type == "error"]
    errors = [o for o in check_cell.outputs if o.output_type == "error"]
    assert len(errors) == 1, check_cell.outputs
    text = shown(check_cell)
    assert text.count("❌") == 1, text
    assert text.lstrip().startswith(f"❌ Exercise {exercise}"), text
    assert phrase in text, text
    assert "Hint:" in text
    assert_no_check_source(text, LINES)


@pytest.mark.parametrize("i", range(4), ids=[c[0] for c in CASES[:4]])
def test_an_error_in_the_students_function_is_explained(executed, i):
    """Each of the four shape errors: ❌, the exercise, what was raised at which line of the cell with
    torch's own message, the shapes given and the shape to return, and the idea-level hint."""
    text = shown(executed.cells[2 + 2 * i])
    assert re.search(r"your function raised RuntimeError at line \d+ of your cell: \S", text), text
    assert "It was given " in text and "it must return" in text, text


def test_graded_not_done_shows_one_line(executed):
    text = shown(executed.cells[-1])
    assert text.count("not done: 0 points") == 1 and "❌" not in text, text
    assert_no_check_source(text, LINES)


LINES = check_source_lines()


def test_the_source_lines_would_be_found():
    """The test above can fail: the line of the reference formula that an old traceback showed (issue 23)
    is among the lines looked for, and a traceback quoting it is caught."""
    assert "expected = r.T @ xs / r.sum(0)[:, None]" in LINES
    with pytest.raises(AssertionError, match="check source shown"):
        assert_no_check_source("  ----> 12 expected = r.T @ xs / r.sum(0)[:, None]", LINES)
