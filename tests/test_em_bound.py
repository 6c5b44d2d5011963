"""EM's bound as a curve over theta (vae_lesson.em_bound, notebook 01 section 2), against closed forms."""
from __future__ import annotations

import math

import pytest
import torch

from vae_lesson import em_bound, models

THETAS = torch.linspace(-4.0, 4.0, 1601, dtype=torch.float64)


def test_log_marginal_is_the_package_mixture_by_another_route():
    """log p(x; theta) agrees with models.GaussianMixture with means (-theta, +theta), unit variances."""
    x = em_bound.data()
    for theta in (-1.3, 0.0, 0.4, 2.5):
        mixture = models.GaussianMixture(torch.tensor([0.5, 0.5], dtype=torch.float64),
                                         torch.tensor([[-theta], [theta]], dtype=torch.float64),
                                         torch.ones(2, 1, 1, dtype=torch.float64))
        by_the_package = mixture.log_marginal(x[:, None]).mean().item()
        assert em_bound.log_marginal(theta).item() == pytest.approx(by_the_package, abs=1e-12)
        assert torch.allclose(em_bound.posterior(theta), mixture.posterior(x[:, None]), atol=1e-12)


def test_log_marginal_closed_form_and_symmetry():
    """(1/N) sum_n log[(N(x_n; -theta, 1) + N(x_n; theta, 1)) / 2], written out; even in theta (label swap)."""
    x = em_bound.data()
    for theta in (0.0, 0.7, 1.9):
        by_hand = sum(math.log(0.5 * (math.exp(-(xn + theta) ** 2 / 2) + math.exp(-(xn - theta) ** 2 / 2))
                               / math.sqrt(2 * math.pi)) for xn in x.tolist()) / len(x)
        assert em_bound.log_marginal(theta).item() == pytest.approx(by_hand, abs=1e-13)
    assert torch.allclose(em_bound.log_marginal(THETAS), em_bound.log_marginal(-THETAS), atol=1e-13)


@pytest.mark.parametrize("theta_t", [em_bound.THETA_T, -0.8, 0.05, 1.2, 3.0])
def test_exact_e_step_bound_touches_at_theta_t_and_is_below_everywhere(theta_t):
    q_t = em_bound.posterior(theta_t)
    bound = em_bound.elbo(THETAS, q_t)
    assert (bound <= em_bound.log_marginal(THETAS) + 1e-12).all()
    assert abs(em_bound.elbo(theta_t, q_t).item() - em_bound.log_marginal(theta_t).item()) < 1e-10


def test_any_q_gives_a_bound_whose_gap_is_the_kl():
    """ELBO(theta, q) = log p(x; theta) - (1/N) sum_n KL(q_n || p(z | x_n; theta)), for random q."""
    g = torch.Generator().manual_seed(0)
    for _ in range(5):
        q = torch.softmax(3 * torch.randn(len(em_bound.DATA), 2, generator=g, dtype=torch.float64), -1)
        for theta in (-2.0, 0.3, 1.5):
            post = em_bound.posterior(theta)
            kl = (q * (q.log() - post.log())).sum(-1).mean().item()
            gap = em_bound.log_marginal(theta).item() - em_bound.elbo(theta, q).item()
            assert gap == pytest.approx(kl, abs=1e-12) and gap > 0


@pytest.mark.parametrize("theta_t", [em_bound.THETA_T, -0.8, 0.05, 1.2, 3.0])
def test_m_step_is_the_bound_argmax_and_never_lowers_log_p(theta_t):
    q_t = em_bound.posterior(theta_t)
    theta_next = em_bound.m_step(q_t)
    x = em_bound.data()
    assert theta_next == pytest.approx(((q_t[:, 1] - q_t[:, 0]) * x).mean().item(), abs=1e-15)
    # the bound is a parabola -theta^2/2 + b theta + c: zero slope at theta_next, curvature -1
    theta = torch.tensor(theta_next, dtype=torch.float64, requires_grad=True)
    (slope,) = torch.autograd.grad(em_bound.elbo(theta, q_t), theta, create_graph=True)
    (curvature,) = torch.autograd.grad(slope, theta)
    assert abs(slope.item()) < 1e-12 and curvature.item() == pytest.approx(-1.0, abs=1e-12)
    fine = torch.linspace(theta_next - 1, theta_next + 1, 20001, dtype=torch.float64)
    assert abs(fine[em_bound.elbo(fine, q_t).argmax()].item() - theta_next) <= 1e-4
    assert em_bound.log_marginal(theta_next).item() >= em_bound.log_marginal(theta_t).item()


def test_em_climbs_to_the_maximum_of_log_p():
    theta = em_bound.THETA_T
    values = [em_bound.log_marginal(theta).item()]
    for _ in range(60):
        theta = em_bound.m_step(em_bound.posterior(theta))
        values.append(em_bound.log_marginal(theta).item())
    assert all(b >= a - 1e-14 for a, b in zip(values, values[1:]))
    grid_max = em_bound.log_marginal(THETAS).max().item()
    assert values[-1] == pytest.approx(grid_max, abs=1e-5) and theta > 0


@pytest.mark.parametrize("theta_t", [em_bound.THETA_T, -0.8, 1.2])
def test_the_hard_assignment_bound_is_strictly_below_everywhere(theta_t):
    hard = em_bound.hard_assignments(theta_t)
    assert ((hard == 0) | (hard == 1)).all() and (hard.sum(-1) == 1).all()
    gap = em_bound.log_marginal(THETAS) - em_bound.elbo(THETAS, hard)
    assert (gap > 0).all()
    # the gap is (1/N) sum_n -log p(z = c_n | x_n; theta): the posterior is never one-hot
    chosen = hard.argmax(-1)
    for theta in (-2.0, 0.0, em_bound.THETA_T, 2.0):
        post = em_bound.posterior(theta)
        expected = -post[torch.arange(len(chosen)), chosen].log().mean().item()
        assert (em_bound.log_marginal(theta) - em_bound.elbo(theta, hard)).item() == pytest.approx(expected, abs=1e-12)
    assert em_bound.elbo(0.0, hard).item() == pytest.approx(em_bound.log_marginal(0.0).item() - math.log(2), abs=1e-12)


def test_the_picture_holds_what_it_draws():
    pic = em_bound.em_picture()
    assert pic.theta_t == em_bound.THETA_T and pic.theta_next > pic.theta_t
    assert (pic.bound_t <= pic.log_p + 1e-12).all() and (pic.bound_next <= pic.log_p + 1e-12).all()
    assert (pic.hard_bound < pic.log_p).all()
    signs = torch.sign(em_bound.data())  # at theta_t > 0 each point goes to the component on its side
    assert pic.theta_hard == pytest.approx((signs * em_bound.data()).mean().item(), abs=1e-12)
    assert pic.theta_hard > pic.thetas[pic.log_p.argmax()].item()  # the hard bound's top is not the likelihood's


def test_the_drawing_runs_and_draws_on_the_given_axes():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2)
    pic = em_bound.em_picture()
    em_bound.draw_em_step(axes[0], pic)
    em_bound.draw_restricted(axes[1], pic)
    assert len(axes[0].lines) >= 3 and len(axes[1].lines) >= 3
    plt.close(fig)
    ax = em_bound.draw_restricted()  # no axes given: a new figure, and the default picture
    assert ax.get_title() == "a restricted q: its bound never touches" and len(ax.lines) >= 3
    plt.close(ax.figure)


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="q must have shape"):
        em_bound.elbo(0.5, torch.ones(3, 2) / 2)
    with pytest.raises(ValueError, match="probabilities"):
        em_bound.elbo(0.5, torch.full((len(em_bound.DATA), 2), 0.7))
    with pytest.raises(ValueError, match="one theta"):
        em_bound.posterior(torch.zeros(2))
    with pytest.raises(ValueError, match="finite"):
        em_bound.log_marginal(float("nan"))


def test_the_core_module_does_not_import_matplotlib():
    import subprocess
    import sys

    code = "import sys, vae_lesson.em_bound as m; m.em_picture(); print('matplotlib' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
