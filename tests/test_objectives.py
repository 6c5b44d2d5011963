"""objectives: the Monte Carlo ELBO (value, standard error, reparameterized gradient) and the
closed-form Gaussian KL. Exact ELBOs are written here in NumPy for probabilistic PCA."""
import math

import numpy as np
import pytest
import torch
from torch import distributions as D

from vae_lesson.models import Latent1DModel, LinearGaussianModel
from vae_lesson.objectives import Estimate, elbo_monte_carlo, kl_to_standard_normal

N_SE = 4.0

W = np.array([[1.0, 0.3], [-0.5, 0.8], [0.4, -0.6], [0.2, 1.1]])
B = np.array([0.2, -0.1, 0.5, 0.0])
SIGMA = np.float64(0.7)
X = np.array([[1.1, -0.4, 0.9, 0.3], [-2.0, 1.5, 0.3, -1.0], [0.0, 0.0, 0.0, 0.0]])


def t(a):
    return torch.tensor(np.asarray(a), dtype=torch.float64)


@pytest.fixture(scope="module")
def model():
    return LinearGaussianModel(t(W), t(B), SIGMA)


def numpy_elbo(x, m, S):
    """Closed-form ELBO of q = N(m, S) for one x: E_q log p(x|z) - KL(q || N(0, I)), in NumPy."""
    D_, d = W.shape
    resid = x - W @ m - B
    ell = -0.5 * D_ * math.log(2 * math.pi * SIGMA**2) - (resid @ resid + np.trace(W @ S @ W.T)) / (2 * SIGMA**2)
    kl = 0.5 * (np.trace(S) + m @ m - d - np.linalg.slogdet(S)[1])
    return ell - kl


QM = np.array([[0.5, -0.2], [-1.0, 0.7], [0.1, 0.1]])
QL = np.array([[[0.6, 0.0], [0.2, 0.4]], [[0.3, 0.0], [-0.1, 0.5]], [[1.0, 0.0], [0.0, 1.0]]])


def q_batch(mean=QM, tril=QL):
    return D.MultivariateNormal(t(mean), scale_tril=t(tril))


# --- elbo_monte_carlo -------------------------------------------------------------------------------

def test_estimate_is_a_value_and_a_standard_error(model):
    torch.manual_seed(0)
    est = elbo_monte_carlo(lambda z: model.joint_log_prob(t(X), z), q_batch(), 100)
    assert isinstance(est, Estimate)
    value, se = est
    assert value is est.value and se is est.std_error
    assert value.shape == se.shape == (3,) and value.dtype == torch.float64
    assert torch.all(se > 0)


def test_matches_the_closed_form_elbo_within_standard_errors(model):
    torch.manual_seed(1)
    value, se = elbo_monte_carlo(lambda z: model.joint_log_prob(t(X), z), q_batch(), 20_000)
    exact = np.array([numpy_elbo(X[n], QM[n], QL[n] @ QL[n].T) for n in range(3)])
    np.testing.assert_allclose(model.elbo(t(X), t(QM), t(QL @ QL.transpose(0, 2, 1))).numpy(), exact, rtol=1e-12)
    assert np.all(np.abs(value.numpy() - exact) < N_SE * se.numpy()), (value, exact, se)
    # the tolerance is tight: forgetting -log q (dropping the entropy of q, 0.9 to 2.8 nats here) is caught
    assert np.all(np.abs(q_batch().entropy().numpy()) > 2 * N_SE * se.numpy())


def test_the_standard_error_matches_the_spread_of_repeated_estimates(model):
    """R independent estimates (q.expand((R,))) of S samples each: their std is about the reported SE."""
    r, s = 500, 40
    x = t(X[:1])
    q = D.MultivariateNormal(t(QM[0]), scale_tril=t(QL[0])).expand((r,))
    torch.manual_seed(2)
    value, se = elbo_monte_carlo(lambda z: model.joint_log_prob(x, z), q, s)
    assert value.shape == (r,)
    assert value.std().item() == pytest.approx(se.mean().item(), rel=0.2)
    assert value.mean().item() == pytest.approx(numpy_elbo(X[0], QM[0], QL[0] @ QL[0].T),
                                                abs=N_SE * value.std().item() / math.sqrt(r))


def _fd_gradient(f, p, h=1e-5):
    g = np.zeros_like(p)
    for i in range(len(p)):
        e = np.zeros_like(p)
        e[i] = h
        g[i] = (f(p + e) - f(p - e)) / (2 * h)
    return g


def test_reparameterized_gradient_matches_finite_differences(model):
    """d ELBO / d (mean, log std) of a diagonal Gaussian q, by autograd through rsample, averaged over R
    repeats, equals the gradient of the closed form (central finite differences) within standard errors."""
    r, s = 400, 20
    m0, log_s0 = np.array([0.5, -0.2]), np.log(np.array([0.6, 0.9]))
    mean = t(np.tile(m0, (r, 1))).requires_grad_(True)  # one row per repeat: row r gets its own gradient
    log_std = t(np.tile(log_s0, (r, 1))).requires_grad_(True)
    q = D.Independent(D.Normal(mean, log_std.exp()), 1)
    torch.manual_seed(3)
    value, _ = elbo_monte_carlo(lambda z: model.joint_log_prob(t(X[:1]), z), q, s)
    value.sum().backward()
    for grad, p0, closed_form in (
        (mean.grad.numpy(), m0, lambda m: numpy_elbo(X[0], m, np.diag(np.exp(2 * log_s0)))),
        (log_std.grad.numpy(), log_s0, lambda ls: numpy_elbo(X[0], m0, np.diag(np.exp(2 * ls)))),
    ):
        expected = _fd_gradient(closed_form, p0)
        se = grad.std(0, ddof=1) / math.sqrt(r)
        assert np.all(np.abs(grad.mean(0) - expected) < N_SE * se), (grad.mean(0), expected, se)
        assert np.all(N_SE * se < 0.5 * np.abs(expected)), (se, expected)  # the gradient is clearly resolved


def test_no_gradient_without_rsample():
    """A q without rsample (a mixture) still gives the right value, by plain sampling."""
    model, x = Latent1DModel(), 1.2
    q = D.MixtureSameFamily(D.Categorical(probs=t([0.3, 0.7])), D.Normal(t([0.0, 2.0]), t([0.5, 1.0])))
    assert not q.has_rsample
    torch.manual_seed(4)
    value, se = elbo_monte_carlo(lambda z: model.joint_log_prob(x, z), q, 20_000)
    zs = torch.linspace(-12, 14, 40001, dtype=torch.float64)
    lq = q.log_prob(zs)
    exact = torch.trapezoid(lq.exp() * (model.joint_log_prob(x, zs) - lq), zs).item()
    assert abs(value.item() - exact) < N_SE * se.item()


@pytest.mark.parametrize("n, match", [(1, ">= 2"), (0, "positive integer"), (-5, "positive integer"),
                                      (2.5, "positive integer")])
def test_rejects_fewer_than_two_samples(model, n, match):
    with pytest.raises(ValueError, match="^n_samples must") as info:
        elbo_monte_carlo(lambda z: model.joint_log_prob(t(X), z), q_batch(), n)
    assert match in str(info.value)


# --- kl_to_standard_normal ----------------------------------------------------------------------------

@pytest.mark.parametrize("shape", [(3,), (5, 2), (4, 3, 6), (1, 1)])
def test_kl_matches_torch_distributions(shape):
    rng = np.random.default_rng(5)
    m, s = rng.normal(scale=1.5, size=shape), rng.uniform(0.1, 3.0, size=shape)
    got = kl_to_standard_normal(t(m), t(s))
    expected = D.kl_divergence(D.Independent(D.Normal(t(m), t(s)), 1),
                               D.Independent(D.Normal(t(np.zeros(shape)), t(np.ones(shape))), 1))
    assert got.shape == shape[:-1]
    torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-12)
    assert torch.all(got > 0)


def test_kl_is_zero_only_at_the_standard_normal():
    # 0 up to float32 round-off (log 1 need not be exactly 0 in every vectorized log)
    assert kl_to_standard_normal(torch.zeros(4, 3), torch.ones(4, 3)).abs().max().item() <= torch.finfo(torch.float32).eps
    for m, s in (([0.01, 0.0], [1.0, 1.0]), ([0.0, 0.0], [1.01, 1.0]), ([0.0, 0.0], [0.99, 1.0])):
        assert kl_to_standard_normal(t(m), t(s)).item() > 0


def test_kl_accepts_numpy_and_lists_and_keeps_float32():
    got = kl_to_standard_normal([[0.5, -1.0]], np.array([[2.0, 0.5]], dtype=np.float32))
    expected = 0.5 * ((4.0 + 0.25 - 1 - 2 * math.log(2.0)) + (0.25 + 1.0 - 1 - 2 * math.log(0.5)))
    assert got.shape == (1,) and got.dtype == torch.float32
    assert got.item() == pytest.approx(expected, rel=1e-6)


def test_kl_gradient():
    """d KL / d mean = mean, d KL / d std = std - 1/std."""
    m = t([0.5, -1.0]).requires_grad_(True)
    s = t([2.0, 0.5]).requires_grad_(True)
    kl_to_standard_normal(m, s).backward()
    np.testing.assert_allclose(m.grad.numpy(), [0.5, -1.0])
    np.testing.assert_allclose(s.grad.numpy(), [2.0 - 0.5, 0.5 - 2.0])


@pytest.mark.parametrize("mean, std, name", [
    (np.zeros((3, 2)), np.ones((3, 3)), "mean and std"),
    (np.zeros((3, 2)), np.ones(2), "mean and std"),
    (np.zeros(2), np.array([1.0, 0.0]), "std"),
    (np.zeros(2), np.array([1.0, -0.5]), "std"),
    (np.zeros(2), np.array([1.0, np.nan]), "std"),
    (np.zeros(2), np.array([np.inf, 1.0]), "std"),
    (np.array([np.nan, 0.0]), np.ones(2), "mean"),
    (np.array([0.0, -np.inf]), np.ones(2), "mean"),
])
def test_kl_rejects_bad_input_naming_the_argument(mean, std, name):
    with pytest.raises(ValueError) as info:
        kl_to_standard_normal(t(mean), t(std))
    assert str(info.value).startswith(f"{name} "), str(info.value)


def test_kl_rejects_non_numbers():
    with pytest.raises(TypeError, match="^mean "):
        kl_to_standard_normal("zero", torch.ones(2))
