"""The engineering checks that notebook 04 keeps out of its lesson (issue 25): the notebook asserts once that
each loop it writes agrees with the package's twin; here the loops are taken from the stored notebook and
checked step by step (theta, every phi_i, the whole history), together with the score identity the
section-3 loop relies on."""
from __future__ import annotations

import ast
import math
from pathlib import Path

import nbformat
import pytest
import torch

from vae_lesson import data, missing_half, variational
from vae_lesson.bernoulli_mixture import fit_bernoulli_mixture, observed_bottom_half
from vae_lesson.checks import reference

NB04 = next((Path(__file__).resolve().parents[1] / "notebooks").glob("04_*.ipynb"))


def _cells():
    return [c for c in nbformat.read(NB04, as_version=4).cells if c.cell_type == "code"]


def _defining(names: set[str]) -> list[str]:
    """The sources of the code cells that define any of ``names`` at top level."""
    out = []
    for cell in _cells():
        if cell.source.lstrip().startswith(("%", "!")) or "\n%" in cell.source:
            continue  # IPython magics: not the cells we look for
        tree = ast.parse(cell.source)
        if any(isinstance(n, ast.FunctionDef) and n.name in names for n in tree.body):
            out.append(cell.source)
    return out


@pytest.fixture(scope="module")
def loops():
    namespace = {"torch": torch, "variational": variational, "math": math}
    sources = _defining({"record", "lecture_loop", "in_sync_loop"})
    assert len(sources) == 2, "notebook 04 should define record + lecture_loop in one cell, in_sync_loop in another"
    for source in sources:
        exec(compile(source, str(NB04), "exec"), namespace)
    return namespace


@pytest.fixture(scope="module")
def x_grey():
    return data.load_digits().x_train[:300].double()


@pytest.mark.parametrize("schedule, name", [("alternating", "lecture_loop"), ("in_sync", "in_sync_loop")])
def test_each_loop_of_section_6_is_its_twin_step_by_step(loops, x_grey, schedule, name):
    theta, phi, hist = loops[name](x_grey, n_steps=50)
    theta_twin, phi_twin, hist_twin = variational.fit_per_datapoint(x_grey, latent_dim=2, n_steps=50,
                                                                    schedule=schedule, lr=0.02)
    for a, b in zip(theta.params() + list(phi), theta_twin.params() + list(phi_twin)):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-9)
    for key in ("elbo", "log_px"):
        assert len(hist[key]) == len(hist_twin[key]) == 50
        assert all(abs(a - b) < 1e-6 * (1 + abs(b)) for a, b in zip(hist[key], hist_twin[key])), key
    assert all(e <= lp + 1e-9 for e, lp in zip(hist["elbo"], hist["log_px"]))  # a lower bound at every step


def test_the_loops_run_with_exercise_3s_elbo(loops, x_grey):
    """Section 7 runs lecture_loop with the student's elbo_pca: it starts at the package's ELBO."""
    mine = loops["lecture_loop"](x_grey, n_steps=1, elbo_fn=reference.elbo_pca)[2]["elbo"][0]
    theirs = loops["lecture_loop"](x_grey, n_steps=1)[2]["elbo"][0]
    assert abs(mine - theirs) < 1e-8


def test_the_lecture_loop_takes_the_mean_of_the_one_image_gradients(x_grey):
    """What the notebook says of lecture_loop against the board: its gradient in theta (of the mean ELBO,
    every phi_i at its optimum) is the average over i of the gradient of ELBO(x_i; theta, phi_i), the
    lecture's one-image step, i.e. its expectation when i is drawn uniformly."""
    theta = variational.Theta.initial(x_grey, latent_dim=2)
    params = [p.requires_grad_() for p in theta.params()]
    q_mean, q_log_std = variational.optimal_diagonal_q(x_grey, *[p.detach() for p in params])
    elbo = variational.elbo_linear_gaussian(x_grey, *params, q_mean, q_log_std)
    full = torch.autograd.grad(elbo.mean(), params, retain_graph=True)
    per_image = [torch.autograd.grad(elbo[i], params, retain_graph=True) for i in range(len(x_grey))]
    for k, f in enumerate(full):
        average = torch.stack([g[k] for g in per_image]).mean(0)
        torch.testing.assert_close(f, average, rtol=1e-9, atol=1e-12)
    # and no single image's step is that average: the board's loop is noisier
    assert all(not torch.allclose(per_image[i][0], full[0], rtol=1e-2) for i in range(10))


@pytest.fixture(scope="module")
def small_slide_11():
    digits = data.load_digits(binarized=True)
    model, _ = fit_bernoulli_mixture(digits.x_train, n_components=10, n_iter=20, seed=0)
    nine = digits.x_test[int((digits.y_test == 9).nonzero()[0])]
    return model, nine, observed_bottom_half()


def test_the_section_3_loop_is_optimize_phi(small_slide_11):
    """The notebook's score-function loop (section 3) and missing_half.optimize_phi: the same phi and the
    same ELBO history, step by step (the notebook itself asserts only the final phi)."""
    model, nine, observed = small_slide_11
    loop = next(c.source for c in _cells() if "eta.grad = -grad" in c.source)
    namespace = {"torch": torch, "missing_half": missing_half, "model": model, "nine": nine, "observed": observed}
    exec(compile(loop, str(NB04), "exec"), namespace)
    phi_pkg, history_pkg = missing_half.optimize_phi(model, nine, observed, n_steps=300, n_samples=namespace["K"],
                                                     lr=0.1, seed=0)
    torch.testing.assert_close(namespace["phi_opt"], phi_pkg, rtol=1e-6, atol=1e-7)
    assert max(abs(a - b) for a, b in zip(namespace["history"], history_pkg)) < 1e-5


def test_the_score_of_a_bernoulli_logit_is_x_minus_phi():
    """d log q / d eta_j = x_j - sigmoid(eta_j), the score the section-3 loop uses, by autograd."""
    eta = torch.randn(32, generator=torch.Generator().manual_seed(5), requires_grad=True)
    x = (torch.rand(32, generator=torch.Generator().manual_seed(6)) < 0.5).float()
    (score,) = torch.autograd.grad(missing_half.log_q(x[None], torch.sigmoid(eta)).sum(), eta)
    torch.testing.assert_close(score, x - torch.sigmoid(eta).detach(), atol=1e-6, rtol=0)
