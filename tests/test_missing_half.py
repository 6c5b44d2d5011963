"""A digit with its top half hidden (vae_lesson.missing_half): the factorized Bernoulli q, its
Monte Carlo ELBO and the score-function optimization of phi.

Expected values are computed here independently of the package: log q with
torch.distributions.Bernoulli or by hand, log p(x) of a mixture of Bernoullis with numpy/scipy in
float64, and, on a 6-pixel model with 3 hidden pixels, the ELBO and its exact gradient by
enumerating the 8 completions. Monte Carlo comparisons use tolerances in standard errors.
"""
import itertools
import math

import numpy as np
import pytest
import torch
from conftest import SMALL_BERNOULLI_PROBS, SMALL_BERNOULLI_WEIGHTS
from scipy.special import logsumexp

from vae_lesson import missing_half as mh
from vae_lesson.bernoulli_mixture import BernoulliMixture, fit_bernoulli_mixture, observed_bottom_half
from vae_lesson.data import load_digits

N_SE = 4.0  # tolerance for Monte Carlo comparisons, in standard errors

# A tiny known model: K = 3 components over P = 6 pixels, pixels 1, 3 and 4 hidden.
W6 = np.array(SMALL_BERNOULLI_WEIGHTS)
P6 = np.array(SMALL_BERNOULLI_PROBS)
OBS6 = torch.tensor([True, False, True, False, False, True])
X6 = torch.tensor([1.0, 0.0, 0.0, 1.0, 1.0, 1.0])  # the values at hidden pixels are ignored by the ELBO


def model6(dtype=torch.float64):
    return BernoulliMixture(torch.tensor(W6, dtype=dtype), torch.tensor(P6, dtype=dtype))


def log_joint_np(x_full, w, p):
    """(S,) log p(x) = logsumexp_k [log w_k + sum_j x_j log p_kj + (1 - x_j) log(1 - p_kj)], numpy float64."""
    x = np.atleast_2d(np.asarray(x_full, dtype=np.float64))
    comp = x @ np.log(p).T + (1 - x) @ np.log1p(-p).T
    return logsumexp(np.log(w) + comp, axis=1)


def completions6():
    """(8, 3) every assignment of the 3 hidden pixels, and (8, 6) the full images."""
    tops = torch.tensor(list(itertools.product([0.0, 1.0], repeat=3)), dtype=torch.float64)
    full = X6.double().expand(8, -1).clone()
    full[:, ~OBS6] = tops
    return tops, full


def exact_elbo6(phi):
    """ELBO(phi) = sum over the 8 completions c of q(c) [log p(c, x_o) - log q(c)], float64,
    differentiable in phi (autograd gives the exact gradient)."""
    tops, full = completions6()
    log_q = (tops * torch.log(phi) + (1 - tops) * torch.log1p(-phi)).sum(-1)
    log_p = torch.tensor(log_joint_np(full.numpy(), W6, P6))
    return (log_q.exp() * (log_p - log_q)).sum()


def log_p_observed6():
    _, full = completions6()
    return float(logsumexp(log_joint_np(full.numpy(), W6, P6)))


@pytest.fixture(scope="module")
def digits():
    return load_digits(binarized=True)


@pytest.fixture(scope="module")
def fitted(digits):
    model, _ = fit_bernoulli_mixture(digits.x_train, n_components=10, n_iter=20, seed=0)
    return model


@pytest.fixture(scope="module")
def observed():
    return observed_bottom_half()


def first_test_digit(digits, label):
    return digits.x_test[int((digits.y_test == label).nonzero()[0])]


def model_np(model):
    return model.weights.double().numpy(), model.probs.double().numpy()


# --- log_q ------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype, tol", [(torch.float64, 1e-12), (torch.float32, 1e-5)])
def test_log_q_matches_torch_bernoulli(dtype, tol):
    g = torch.Generator().manual_seed(1)
    phi = (0.01 + 0.98 * torch.rand(32, generator=g, dtype=torch.float64)).to(dtype)
    samples = (torch.rand(50, 32, generator=g) < 0.5).to(dtype)
    got = mh.log_q(samples, phi)
    assert got.shape == (50,) and got.dtype == dtype
    expected = torch.distributions.Bernoulli(probs=phi.double()).log_prob(samples.double()).sum(-1)
    np.testing.assert_allclose(got.double().numpy(), expected.numpy(), rtol=tol, atol=tol)


def test_log_q_allows_phi_exactly_0_and_1():
    """0 log 0 = 0: a pixel with phi = 1 (or 0) that is on (or off) contributes log 1 = 0; a
    sample that disagrees with such a pixel is impossible under q (log q = -inf)."""
    phi = torch.tensor([0.0, 1.0, 0.3, 0.0, 1.0], dtype=torch.float64)
    samples = torch.tensor([
        [0.0, 1.0, 1.0, 0.0, 1.0],
        [0.0, 1.0, 0.0, 0.0, 1.0],
        [1.0, 1.0, 1.0, 0.0, 1.0],  # pixel 0 on, but phi_0 = 0
        [0.0, 0.0, 1.0, 0.0, 1.0],  # pixel 1 off, but phi_1 = 1
    ], dtype=torch.float64)
    got = mh.log_q(samples, phi)
    assert got[0].item() == pytest.approx(math.log(0.3), abs=1e-15)
    assert got[1].item() == pytest.approx(math.log(0.7), abs=1e-15)
    assert got[2].item() == -math.inf and got[3].item() == -math.inf
    # all-degenerate phi: a point mass, log q = 0 at its point (up to float32 round-off)
    point = torch.tensor([1.0, 0.0, 1.0, 1.0])
    assert abs(mh.log_q(point[None], point).item()) <= torch.finfo(torch.float32).eps


def test_fill_missing_puts_the_top_on_the_hidden_pixels(observed):
    x = (torch.arange(64) % 3 == 0).float()
    top = (torch.rand(5, 32, generator=torch.Generator().manual_seed(2)) < 0.5).float()
    x_before = x.clone()
    full = mh.fill_missing(x, observed, top)
    assert full.shape == (5, 64) and full.dtype == x.dtype
    for s in range(5):
        np.testing.assert_array_equal(full[s, 32:].numpy(), x[32:].numpy())  # the observed bottom half
        np.testing.assert_array_equal(full[s, :32].numpy(), top[s].numpy())  # hidden pixels in order
    assert torch.equal(x, x_before)


# --- elbo_missing ---------------------------------------------------------------------------------

def test_elbo_with_fixed_uniforms_matches_a_hand_computation(fitted, digits, observed):
    """x_top = (u < phi) with the given uniforms; terms log p(x_top, x_bottom) - log q by hand."""
    x = first_test_digit(digits, 9)
    g = torch.Generator().manual_seed(3)
    phi = 0.05 + 0.9 * torch.rand(32, generator=g)
    u = torch.rand(3000, 32, generator=g)
    est = mh.elbo_missing(fitted, x, observed, phi, n_samples=3000, uniforms=u)
    top = (u.numpy() < phi.numpy()).astype(np.float64)  # both float32, as the package compares them
    full = np.broadcast_to(x.numpy().astype(np.float64), (3000, 64)).copy()
    full[:, :32] = top
    p = phi.double().numpy()
    log_q = (top * np.log(p) + (1 - top) * np.log1p(-p)).sum(1)
    terms = log_joint_np(full, *model_np(fitted)) - log_q
    assert est.value.item() == pytest.approx(terms.mean(), rel=1e-5)
    assert est.std_error.item() == pytest.approx(terms.std(ddof=1) / math.sqrt(3000), rel=1e-4)
    # deterministic given the uniforms, whatever the global random state
    torch.manual_seed(123)
    again = mh.elbo_missing(fitted, x, observed, phi, n_samples=3000, uniforms=u)
    assert torch.equal(again.value, est.value) and torch.equal(again.std_error, est.std_error)


def test_elbo_without_uniforms_uses_the_global_seed(fitted, digits, observed):
    x, phi = first_test_digit(digits, 4), torch.full((32,), 0.5)
    torch.manual_seed(5)
    a = mh.elbo_missing(fitted, x, observed, phi, n_samples=500)
    torch.manual_seed(5)
    b = mh.elbo_missing(fitted, x, observed, phi, n_samples=500)
    c = mh.elbo_missing(fitted, x, observed, phi, n_samples=500)
    assert torch.equal(a.value, b.value)
    assert not torch.equal(b.value, c.value)


@pytest.mark.parametrize("phi", [[0.5, 0.5, 0.5], [0.9, 0.1, 0.7], [0.02, 0.6, 0.99], [0.3, 0.3, 0.95]])
def test_elbo_matches_enumeration_on_six_pixels(phi):
    phi = torch.tensor(phi, dtype=torch.float64)
    exact = exact_elbo6(phi).item()
    log_px = log_p_observed6()
    assert exact < log_px  # a product of Bernoullis is not the (correlated) posterior
    torch.manual_seed(6)
    est = mh.elbo_missing(model6(), X6, OBS6, phi, n_samples=20_000)
    assert est.std_error.item() > 0
    assert abs(est.value.item() - exact) < N_SE * est.std_error.item(), (est.value.item(), exact)


@pytest.mark.parametrize("label", [9, 4, 0])
def test_elbo_with_a_point_mass_on_the_true_top_is_log_p_x(fitted, digits, observed, label):
    """phi in {0, 1} equal to the true top half: q is a point mass, every sample is the true image,
    log q = 0, and the ELBO is log p(x_top, x_bottom) with zero standard error."""
    x = first_test_digit(digits, label)
    model64 = BernoulliMixture(fitted.weights.double(), fitted.probs.double())
    est = mh.elbo_missing(model64, x, observed, x[~observed], n_samples=500)
    want = log_joint_np(x.numpy(), *model_np(fitted))[0]
    assert est.value.item() == pytest.approx(want, rel=1e-12)
    assert est.std_error.item() == pytest.approx(0.0, abs=1e-12)
    est32 = mh.elbo_missing(fitted, x, observed, x[~observed], n_samples=500)
    assert est32.value.item() == pytest.approx(want, rel=1e-5)
    assert est32.std_error.item() == pytest.approx(0.0, abs=1e-5)


@pytest.mark.parametrize("label", [9, 4, 0])
def test_elbo_stays_below_log_p_bottom(fitted, digits, observed, label):
    x = first_test_digit(digits, label)
    log_px = fitted.log_marginal_observed(x[None], observed).item()
    # independently: log p(x_bottom) is the mixture over the observed pixels only
    w, p = model_np(fitted)
    xb = x[observed].double().numpy()
    comp = xb @ np.log(p[:, 32:]).T + (1 - xb) @ np.log1p(-p[:, 32:]).T
    assert log_px == pytest.approx(float(logsumexp(np.log(w) + comp)), rel=1e-5)
    g = torch.Generator().manual_seed(7)
    phis = {
        "0.5": torch.full((32,), 0.5),
        "0.9": torch.full((32,), 0.9),
        "random": 0.05 + 0.9 * torch.rand(32, generator=g),
        "true top": torch.where(x[~observed] > 0, 0.95, 0.05),
        "exact marginals": fitted.missing_marginals(x[None], observed)[0][~observed],
    }
    u = torch.rand(5000, 32, generator=g)
    for name, phi in phis.items():
        est = mh.elbo_missing(fitted, x, observed, phi, n_samples=5000, uniforms=u)
        assert est.value.item() <= log_px + N_SE * est.std_error.item() + 1e-5, name


def test_elbo_errors_name_the_argument(fitted, digits, observed):
    x, phi = first_test_digit(digits, 9), torch.full((32,), 0.5)
    with pytest.raises(ValueError, match="phi"):
        mh.elbo_missing(fitted, x, observed, phi[:31])
    with pytest.raises(ValueError, match="phi"):
        mh.elbo_missing(fitted, x, observed, torch.full((64,), 0.5))
    for bad in (1.2, -0.1, float("nan")):
        with pytest.raises(ValueError, match="phi"):
            mh.elbo_missing(fitted, x, observed, torch.cat([phi[:31], torch.tensor([bad])]))
    with pytest.raises(ValueError, match="observed"):
        mh.elbo_missing(fitted, x, observed.float(), phi)
    with pytest.raises(ValueError, match="observed"):
        mh.elbo_missing(fitted, x, observed[:63], phi)
    with pytest.raises(ValueError, match="x"):
        mh.elbo_missing(fitted, x[None], observed, phi)
    with pytest.raises(ValueError, match="n_samples"):
        mh.elbo_missing(fitted, x, observed, phi, n_samples=0)


# --- optimize_phi ----------------------------------------------------------------------------------

def test_optimize_phi_approaches_log_p_bottom(fitted, digits, observed):
    """150 steps on the top half of a 9: a fresh 20,000-sample ELBO is within 1 nat of
    log p(x_bottom), far above phi = 0.5, and (as any ELBO) not above log p(x_bottom)."""
    x = first_test_digit(digits, 9)
    phi, history = mh.optimize_phi(fitted, x, observed, n_steps=150, n_samples=64, lr=0.1, seed=0)
    assert phi.shape == (32,) and len(history) == 150
    assert ((phi > 0) & (phi < 1)).all()
    log_px = fitted.log_marginal_observed(x[None], observed).item()
    u = torch.rand(20_000, 32, generator=torch.Generator().manual_seed(8))
    est = mh.elbo_missing(fitted, x, observed, phi, n_samples=20_000, uniforms=u)
    half = mh.elbo_missing(fitted, x, observed, torch.full((32,), 0.5), n_samples=20_000, uniforms=u)
    value, se = est.value.item(), est.std_error.item()
    assert log_px - 1.0 < value <= log_px + N_SE * se
    assert value > half.value.item() + N_SE * (se + half.std_error.item())
    assert np.mean(history[-20:]) > np.mean(history[:20]) + 5  # the history climbs
    again, history2 = mh.optimize_phi(fitted, x, observed, n_steps=150, n_samples=64, lr=0.1, seed=0)
    assert torch.equal(phi, again) and history == history2  # deterministic given the seed


class GradientRecorder:
    """Stands in for torch.optim.Adam inside optimize_phi: puts the logit eta at LAM on construction,
    never moves it, and records the ascent direction d surrogate / d eta at every step."""

    LAM = None
    grads = []

    def __init__(self, params, lr):
        (self.lam,) = list(params)
        with torch.no_grad():
            self.lam.copy_(self.LAM)
        GradientRecorder.grads = []

    def zero_grad(self):
        self.lam.grad = None

    def step(self):
        GradientRecorder.grads.append(-self.lam.grad.detach().double().clone())  # backward ran on -surrogate


@pytest.mark.parametrize("lam", [[0.0, 0.0, 0.0], [1.5, -2.0, 0.4]])
def test_score_function_gradient_is_unbiased(monkeypatch, lam):
    """optimize_phi's own single-batch gradient (f, leave-one-out baseline, mean((f - b) log q)),
    averaged over many batches at a fixed eta, matches d ELBO / d eta computed exactly by
    enumerating the 8 completions of the 3 hidden pixels, within 4 standard errors."""
    lam = torch.tensor(lam, dtype=torch.float32)
    monkeypatch.setattr(GradientRecorder, "LAM", lam)
    monkeypatch.setattr(GradientRecorder, "grads", [])  # nothing left over from another run
    monkeypatch.setattr(torch.optim, "Adam", GradientRecorder)
    n_steps, n_samples = 4000, 4
    _, history = mh.optimize_phi(model6(), X6, OBS6, n_steps=n_steps, n_samples=n_samples, seed=9)
    grads = torch.stack(GradientRecorder.grads)
    assert grads.shape == (n_steps, 3)

    lam64 = lam.double().requires_grad_(True)
    elbo = exact_elbo6(torch.sigmoid(lam64))
    (exact,) = torch.autograd.grad(elbo, lam64)
    mean, se = grads.mean(0), grads.std(0) / math.sqrt(n_steps)
    assert (se > 0).all()
    assert exact.abs().max() > 10 * se.max()  # the gradient is not ~0: the comparison has power
    assert ((mean - exact).abs() < N_SE * se).all(), (mean, exact, se)
    # the history holds unbiased ELBO estimates at the same phi
    h = np.array(history)
    assert abs(h.mean() - elbo.item()) < N_SE * h.std(ddof=1) / math.sqrt(n_steps)


def test_the_score_in_the_logit_is_x_minus_phi():
    """optimize_phi (and notebook 04's loop) use d log q(x_top; sigmoid(eta)) / d eta_j = x_j - phi_j
    in place of autograd: autograd through log_q agrees, for logits far from 0 too."""
    g = torch.Generator().manual_seed(2)
    for _ in range(5):
        eta = (3 * torch.randn(7, generator=g, dtype=torch.float64)).requires_grad_()
        x = (torch.rand(1, 7, generator=g) < 0.5).double()
        (score,) = torch.autograd.grad(mh.log_q(x, torch.sigmoid(eta)).sum(), eta)
        assert torch.allclose(score, x[0] - torch.sigmoid(eta).detach(), atol=1e-12)


def test_optimize_phi_errors(fitted, digits, observed):
    x = first_test_digit(digits, 9)
    for bad in (1, 0, -3):
        with pytest.raises(ValueError, match="n_samples"):
            mh.optimize_phi(fitted, x, observed, n_steps=2, n_samples=bad)
    with pytest.raises(ValueError, match="n_steps"):
        mh.optimize_phi(fitted, x, observed, n_steps=0)


@pytest.mark.parametrize("case", ["float mask", "int mask", "short mask", "2-D x"])
def test_optimize_phi_validates_x_and_observed_like_elbo_missing(fitted, digits, observed, case):
    x = first_test_digit(digits, 9)
    args = {
        "float mask": (x, observed.float(), "observed"),
        "int mask": (x, observed.long(), "observed"),
        "short mask": (x, observed[:40], "observed"),
        "2-D x": (x[None], observed, "x"),
    }[case]
    with pytest.raises(ValueError, match=args[2]):
        mh.optimize_phi(fitted, args[0], args[1], n_steps=2)
