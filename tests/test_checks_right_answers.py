"""Issue 17, per exercise: right answers are accepted whatever route they take (float32, loops,
lists), the usual near-misses get a message that names them (an epsilon inside a log, the
closed-form-KL estimator, a batched covariance, an infinite-variance proposal, a naive exp that
underflows), hints give the idea and never the solution, and a check never changes the
notebook's own data. Every student function here is written as a student would write it."""
import math
import re

import numpy as np
import pytest
import torch
from conftest import assert_caught
from exercise_answers import ROUTES
from test_checks_nb02_nb03 import GP_PM, GP_PS, gp_kwargs

from vae_lesson import checks
from vae_lesson.checks import _core, nb01, nb02, nb03, nb04, nb05, nb06, nb07, reference

F = torch.nn.functional
MODULES = (nb01, nb02, nb03, nb04, nb05, nb06, nb07)


def passes(run, capsys):
    result = run()
    assert result.passed is True, result
    assert "✅" in capsys.readouterr().out


# --- right answers, whatever route -------------------------------------------------------------

def sample_row_by_row(mean, std, eps):
    z = torch.zeros(eps.shape)  # float32 buffer, although the inputs are float64
    for s in range(eps.shape[0]):
        z[s] = mean + std * eps[s]
    return z


def surrogate_f_float(f_values, log_q):
    return (f_values.detach().float() * log_q.float()).mean()


def surrogate_f_float_only(f_values, log_q):
    f = f_values.float()
    return (f.detach() * log_q).mean()


def baseline_python_floats(f_values):
    S, total = len(f_values), float(f_values.sum())
    return torch.tensor([(total - float(f_values[s])) / (S - 1) for s in range(S)])  # float32


def baseline_zeros_loop(f_values):
    S = f_values.shape[0]
    b = torch.zeros(S)
    for s in range(S):
        b[s] = (f_values.sum() - f_values[s]) / (S - 1)
    return b


def baseline_list(f_values):
    S = f_values.shape[0]
    return [((f_values.sum() - f_values[s]) / (S - 1)).item() for s in range(S)]


def marginals_float32(x, observed, weights, probs):
    x, weights, probs = x.float(), weights.float(), probs.float()
    log_r = weights.log() + torch.distributions.Bernoulli(probs=probs).log_prob(x)[:, observed].sum(-1)
    r = torch.softmax(log_r, 0)
    return (r[:, None] * probs).sum(0)[~observed]


def marginals_float32_list(x, observed, weights, probs):
    return marginals_float32(x, observed, weights, probs).tolist()


RIGHT_ROUTES = {
    "05.1 float32 buffer, row by row": lambda: checks.reparameterized_sample(sample_row_by_row),
    "05.2 f.float() and log_q.float()": lambda: checks.score_function_surrogate(surrogate_f_float),
    "05.2 f.float() only": lambda: checks.score_function_surrogate(surrogate_f_float_only),
    "05.3 torch.tensor of python floats": lambda: checks.leave_one_out_baseline(baseline_python_floats),
    "05.3 torch.zeros loop": lambda: checks.leave_one_out_baseline(baseline_zeros_loop),
    "05.3 a list": lambda: checks.leave_one_out_baseline(baseline_list),
    "04.2 float32": lambda: checks.missing_pixel_marginals(marginals_float32),
    "04.2 float32 as a list": lambda: checks.missing_pixel_marginals(marginals_float32_list),
}


@pytest.mark.parametrize("name", sorted(RIGHT_ROUTES))
def test_right_answer_by_another_route_passes(name, capsys):
    passes(RIGHT_ROUTES[name], capsys)


def test_float32_routes_are_really_float32():
    """The routes above do differ from the float64 reference by float32 round-off (else the tests prove nothing)."""
    g = torch.Generator().manual_seed(0)
    f = torch.randn(30, generator=g, dtype=torch.float64) * 4 + 1
    ref = (f.sum() - f) / 29
    for fn in (baseline_python_floats, baseline_zeros_loop):
        out = fn(f)
        assert out.dtype == torch.float32
        assert 1e-9 < float((out.double() - ref).abs().max()) < 1e-5


# --- an epsilon inside a log --------------------------------------------------------------------

def log_q_with(eps, both=True):
    def log_q(samples, phi):
        return (samples * torch.log(phi + eps) + (1 - samples) * torch.log(1 - phi + (eps if both else 0.0))).sum(-1)
    return log_q


def loss_with(eps, where="both"):
    def loss(x, logits, mean, log_std):
        p = torch.sigmoid(logits)
        if where == "both":
            rec = (x * torch.log(p + eps) + (1 - x) * torch.log(1 - p + eps)).sum(-1)
        else:  # only in the log of p (a variant the known-mistake list does not hold: the pattern catches it)
            rec = (x * torch.log(p + eps) + (1 - x) * F.logsigmoid(-logits)).sum(-1)
        kl = 0.5 * (torch.exp(2 * log_std) + mean**2 - 1 - 2 * log_std).sum(-1)
        return -(rec - kl).mean()
    return loss


@pytest.mark.parametrize("eps", [1e-6, 1e-5, 1e-4, 1e-3])
def test_epsilon_in_log_q_is_named(eps, capsys):
    msg = assert_caught(lambda: checks.bernoulli_log_q(log_q_with(eps)), "epsilon", capsys)
    assert f"({eps:g})" in msg and "log1p" in msg and "torch.distributions" in msg


def test_epsilon_in_one_log_of_q_is_named(capsys):
    msg = assert_caught(lambda: checks.bernoulli_log_q(log_q_with(1e-5, both=False)), "epsilon", capsys)
    assert "log1p" in msg


@pytest.mark.parametrize("eps", [1e-6, 1e-5, 1e-4, 1e-3])
def test_epsilon_in_bce_is_named(eps, capsys):
    msg = assert_caught(lambda: checks.negative_elbo_loss(loss_with(eps)), "epsilon", capsys)
    assert f"({eps:g})" in msg and "logsigmoid" in msg and "torch.distributions" in msg


def test_epsilon_in_one_log_of_bce_is_named(capsys):
    msg = assert_caught(lambda: checks.negative_elbo_loss(loss_with(1e-6, where="p")), "epsilon", capsys)
    assert "binary_cross_entropy_with_logits" in msg


def test_big_mistakes_are_not_called_an_epsilon(capsys):
    """A loss off by a real mistake (the KL's 1/2 left out) is not blamed on an epsilon."""
    def no_half(x, logits, mean, log_std):
        rec = -F.binary_cross_entropy_with_logits(logits, x, reduction="none").sum(-1)
        return -(rec - (torch.exp(2 * log_std) + mean**2 - 1 - 2 * log_std).sum(-1)).mean()
    msg = assert_caught(lambda: checks.negative_elbo_loss(no_half), "1/2 is missing", capsys)
    assert "epsilon" not in msg


# --- 06.1 by the closed-form KL; 03.3 with a batched covariance ----------------------------------

def elbo_closed_form_kl(model, x, mean, log_std, eps):
    z = mean + log_std.exp() * eps
    reconstruction = model.decoder(z).log_prob(x).mean(0)
    kl = torch.distributions.kl_divergence(torch.distributions.Normal(mean, log_std.exp()),
                                           torch.distributions.Normal(0.0, 1.0)).sum(-1)
    return reconstruction - kl


def test_elbo_with_closed_form_kl_is_named(capsys):
    msg = assert_caught(lambda: checks.elbo_of_q(elbo_closed_form_kl), "valid estimator of the ELBO", capsys)
    assert "not the one this exercise asks for" in msg and "log q" in msg


def ppca_batched_cov(x, W, b, sigma):
    d = W.shape[1]
    M = W.T @ W + sigma**2 * torch.eye(d, dtype=W.dtype)
    mean = torch.linalg.solve(M, W.T @ (x - b).T).T
    return mean, (sigma**2 * torch.linalg.inv(M)).expand(x.shape[0], d, d)


def test_batched_covariance_is_named(capsys):
    msg = assert_caught(lambda: checks.ppca_posterior(ppca_batched_cov), "one covariance shared by all data points",
                        capsys)
    assert "log-sum-exp" not in msg


# --- 02.3: a proposal narrower than sigma_post / sqrt(2) ------------------------------------------

@pytest.mark.parametrize("ratio", [0.5, 0.68, 0.69, 0.70, 0.707])
@pytest.mark.parametrize("seed", range(5))
def test_infinite_variance_proposal_is_rejected_on_every_seed(ratio, seed, capsys):
    msg = assert_caught(lambda: checks.good_proposal(GP_PM, ratio * GP_PS, seed=seed, **gp_kwargs()),
                        "infinite variance", capsys)
    assert "sqrt(2)" in msg


@pytest.mark.parametrize("seed", range(5))
def test_good_proposal_passes_on_every_seed(seed, capsys):
    passes(lambda: checks.good_proposal(GP_PM, 1.3 * GP_PS, seed=seed, **gp_kwargs()), capsys)


def test_rule_threshold_is_the_variance_threshold():
    """E_q[w^2] is finite exactly when sigma_q > sigma_post / sqrt(2): the closed form
    integral N(z; 0, 1)^2 / N(z; 0, s^2) dz = s^2 / sqrt(2 s^2 - 1), checked by quadrature, is finite only
    for s > 1 / sqrt(2) (and the integrand grows without bound in the tails below it)."""
    from scipy import integrate, stats
    for s in (0.75, 1.0, 2.0):
        value = integrate.quad(lambda z: np.exp(2 * stats.norm.logpdf(z) - stats.norm.logpdf(z, 0, s)), -60, 60)[0]
        assert value == pytest.approx(s**2 / math.sqrt(2 * s**2 - 1), rel=1e-6)
    s = 0.69  # below the threshold: the integrand at z = 30 is larger than at z = 0
    def log_integrand(z):
        return 2 * stats.norm.logpdf(z) - stats.norm.logpdf(z, 0, s)
    assert log_integrand(30.0) > log_integrand(0.0)


# --- naive log(exp(.).mean()) underflows: the log-sum-exp message fires ---------------------------

def mixture_naive(x, w, m, c):
    comp = torch.distributions.MultivariateNormal(m, covariance_matrix=c).log_prob(x[:, None, :])
    return torch.log((w * comp.exp()).sum(-1))


def responsibilities_naive(x, w, m, c):
    comp = torch.distributions.MultivariateNormal(m, covariance_matrix=c).log_prob(x[:, None, :])
    joint = w * comp.exp()
    return joint / joint.sum(-1, keepdim=True)


def iw_naive(model, x, eps):
    q = model.encoder(x)
    z = q.mean + q.stddev * eps
    log_w = model.joint_log_prob(x, z) - q.log_prob(z)
    return torch.log(log_w.exp().mean(0))


def iw_right(model, x, eps):
    q = model.encoder(x)
    z = q.mean + q.stddev * eps
    return torch.logsumexp(model.joint_log_prob(x, z) - q.log_prob(z), 0) - math.log(eps.shape[0])


@pytest.mark.parametrize("check,naive", [(checks.mixture_log_density, mixture_naive),
                                         (checks.responsibilities, responsibilities_naive),
                                         (checks.importance_weighted_log_px, iw_naive)])
def test_naive_exp_underflows_and_is_told_logsumexp(check, naive, capsys):
    assert_caught(lambda: check(naive), "torch.logsumexp", capsys)


def test_underflow_cases_do_underflow():
    """The inputs added for this really are around -1000 (exp gives 0 even in float64)."""
    x, w, m, c = nb01._far_mixture()
    from vae_lesson.models import GaussianMixture
    log_px = GaussianMixture(w, m, c).log_marginal(x)[:3]
    assert bool((log_px < -800).all()) and bool((log_px > -1500).all())
    model = nb07._sharp_vae(734)
    xs = (torch.rand(4, 64, generator=torch.Generator().manual_seed(1)) < 0.4).float()
    with torch.no_grad():
        q = model.encoder(xs)
        log_w = model.joint_log_prob(xs, q.mean) - q.log_prob(q.mean)
    assert float(log_w.max()) < -745


def test_importance_weighted_right_answer_passes(capsys):
    passes(lambda: checks.importance_weighted_log_px(iw_right), capsys)


# --- hints give the idea, never the solution ------------------------------------------------------

def _squash(text: str) -> str:
    return re.sub(r"\s+", " ", text)


def _common_substring(a: str, b: str, n: int = 25) -> str | None:
    a, b = _squash(a), _squash(b)
    return next((a[i:i + n] for i in range(len(a) - n + 1) if a[i:i + n] in b), None)


ALL_HINTS = {k: v for m in MODULES for k, v in m.HINTS.items()}
ALL_SOLUTIONS = {k: v for m in MODULES for k, v in m.SOLUTIONS.items()}


def test_every_exercise_has_a_hint_and_a_registered_solution():
    sources = [open(m.__file__).read() for m in MODULES]
    ids = {_core.exercise_id(t) for src in sources for t in re.findall(r'run_check\(\s*"([^"]+)"', src)}
    assert ids == set(ALL_HINTS) == set(ALL_SOLUTIONS), ids ^ set(ALL_HINTS)
    assert len(ids) == 21
    for key, text in ALL_SOLUTIONS.items():
        assert _core.SOLUTIONS[key] == text.strip()


@pytest.mark.parametrize("key", sorted(ALL_HINTS))
def test_hint_does_not_contain_its_solution(key):
    hint, solution = ALL_HINTS[key], ALL_SOLUTIONS[key]
    assert "return " not in hint
    assert _common_substring(hint, solution) is None, _common_substring(hint, solution)
    assert len(hint) > 60  # says something


def test_common_substring_finds_a_copy():
    """The test above can fail: a hint quoting its solution is found."""
    assert _common_substring("use (f_values.detach() * log_q).mean() here", ALL_SOLUTIONS["05.2"]) is not None


def test_failing_check_prints_the_hint_not_the_solution(capsys):
    def wrong_baseline(f_values):
        return f_values.mean().expand(f_values.shape[0])
    msg = assert_caught(lambda: checks.leave_one_out_baseline(wrong_baseline), "includes the sample itself", capsys)
    assert _squash(ALL_HINTS["05.3"]) in _squash(msg)
    assert "f_values.sum() - f_values" not in msg


def test_solution_can_be_asked_for(capsys):
    _core.reset_modes()
    assert checks.solution("05.3") == ALL_SOLUTIONS["05.3"].strip()
    assert "f_values.sum() - f_values" in capsys.readouterr().out


# --- a check never changes the notebook's own data ------------------------------------------------

def test_mixture_checks_pass_copies(capsys):
    x = np.array([[0.0, 0.0], [1.0, 2.0], [-1.5, 0.5]])
    w, m, c = np.array([0.6, 0.4]), np.array([[0.0, 0.0], [2.0, 1.0]]), np.array([np.eye(2), 0.5 * np.eye(2)])
    kept = [a.copy() for a in (x, w, m, c)]

    def vandal(x, w, m, c):
        out = torch.logsumexp(torch.as_tensor(w).log() + torch.distributions.MultivariateNormal(
            m, covariance_matrix=c).log_prob(x[:, None, :]), -1)
        x.mul_(0), w.fill_(1), m.add_(5)
        return out

    checks.mixture_log_density(vandal, x, w, m, c)
    for a, b in zip((x, w, m, c), kept):
        np.testing.assert_array_equal(a, b)


def _vandal_model(model):
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(0)


def test_vae_checks_pass_copies(capsys):
    from vae_lesson.checks.nb06 import _small_vae
    model = _small_vae(5)
    x = (torch.rand(8, 64, generator=torch.Generator().manual_seed(2)) < 0.4).float()
    params, x_kept = [p.detach().clone() for p in model.parameters()], x.clone()

    def elbo_vandal(model, x, mean, log_std, eps):
        out = reference.elbo_of_q(model, x, mean, log_std, eps)
        _vandal_model(model), x.mul_(0)
        return out

    def sample_vandal(model, x, eps):
        out = reference.encoder_sample(model, x.clone(), eps)
        x.mul_(0)
        return out

    def iw_vandal(model, x, eps):
        out = iw_right(model, x, eps)
        _vandal_model(model), x.mul_(0)
        return out

    checks.elbo_of_q(elbo_vandal, model, x)
    checks.encoder_sample(sample_vandal, model, x)
    checks.importance_weighted_log_px(iw_vandal, model, x)
    assert capsys.readouterr().out.count("✅") == 3
    torch.testing.assert_close(x, x_kept, rtol=0, atol=0)
    for p, q in zip(model.parameters(), params):
        torch.testing.assert_close(p.detach(), q, rtol=0, atol=0)


# --- every route of tests/exercise_answers.py passes its check (test_exercise_routes.py then runs each
#     through its notebook to the last cell) ------------------------------------------------------------

def _check_for(key):
    from test_exercise_routes import exercise_of_check

    name = {v: k for k, v in exercise_of_check().items()}[key]
    return getattr(checks, name)


def _defined(source: str):
    """The function that a route's cell defines, run as the notebook would."""
    ns = {}
    exec(compile("import math\nimport torch\n" + source, "<route>", "exec"), ns)
    return next(v for k, v in ns.items() if callable(v) and getattr(v, "__module__", "") is None and not k.startswith("_"))


# 02.3's routes are values chosen for the notebook's own model: only test_exercise_routes.py can run them
ALL_ROUTES = [(key, name) for key, routes in ROUTES.items() for name in routes if key != "02.3"]


@pytest.mark.parametrize("key,name", ALL_ROUTES, ids=[f"{k} {n}" for k, n in ALL_ROUTES])
def test_every_route_in_the_table_passes_its_check(key, name, capsys):
    answer = _defined(ROUTES[key][name])
    passes(lambda: _check_for(key)(answer), capsys)


# --- the mistakes that used to get only "values differ" (issue 23): each is named -------------------

def surrogate_without_detach(f_values, log_q):
    return (f_values * log_q).mean()


def elbo_log_q_averaged_over_d(model, x, mean, log_std, eps):
    z = mean + log_std.exp() * eps
    log_q = torch.distributions.Normal(mean, log_std.exp()).log_prob(z).mean(-1)
    return (model.joint_log_prob(x, z) - log_q).mean(0)


def iw_divided_by_n(model, x, eps):
    q = model.encoder(x)
    z = q.mean + q.stddev * eps
    return torch.logsumexp(model.joint_log_prob(x, z) - q.log_prob(z), 0) - math.log(x.shape[0])


def pca_elbo_with(eps=0.0, dtype=None, kl_only=False):
    def elbo_pca(x, W, b, log_sigma, q_mean, q_log_std):
        if dtype is not None:
            x, W, b, log_sigma, q_mean, q_log_std = (t.to(dtype) for t in (x, W, b, log_sigma, q_mean, q_log_std))
        sigma2, s2 = torch.exp(2 * log_sigma), torch.exp(2 * q_log_std)
        sq_error = (x - q_mean @ W.T - b).pow(2).sum(-1) + s2 @ W.pow(2).sum(0)
        recon = -0.5 * x.shape[1] * torch.log(2 * math.pi * sigma2 + (0 if kl_only else eps)) - sq_error / (2 * sigma2)
        return recon - 0.5 * (s2 + q_mean**2 - 1 - torch.log(s2 + eps)).sum(-1)
    return elbo_pca


def iw_log_q_twice(log_joint, log_q):
    return torch.logsumexp(log_joint - 2 * log_q, 0) - math.log(log_joint.shape[0])


def iw_log_joint_halved(log_joint, log_q):
    return torch.logsumexp(0.5 * log_joint - log_q, 0) - math.log(log_joint.shape[0])


@pytest.mark.parametrize("run, phrase", [
    (lambda: checks.score_function_surrogate(surrogate_without_detach), "f_values.detach()"),
    (lambda: checks.elbo_of_q(elbo_log_q_averaged_over_d), "SUM over the d coordinates"),
    (lambda: checks.importance_weighted_log_px(iw_divided_by_n), "instead of K"),
    (lambda: checks.linear_gaussian_elbo(pca_elbo_with(1e-6)), "epsilon (1e-06)"),
    (lambda: checks.linear_gaussian_elbo(pca_elbo_with(1e-8)), "epsilon (1e-08)"),
    (lambda: checks.linear_gaussian_elbo(pca_elbo_with(3e-8, kl_only=True)), "epsilon inside a log"),
    (lambda: checks.linear_gaussian_elbo(pca_elbo_with(dtype=torch.float32)), "your result is torch.float32"),
    (lambda: checks.importance_log_marginal(iw_log_q_twice), "the way log_q enters is wrong"),
    (lambda: checks.importance_log_marginal(iw_log_joint_halved), "the way log_joint enters is wrong"),
], ids=["05.2 no detach", "06.1 mean over d", "07.4 N for K", "04.3 eps 1e-6", "04.3 eps 1e-8", "04.3 eps 3e-8 in KL",
        "04.3 float32", "02.2 log q", "02.2 log joint"])
def test_named_mistake(run, phrase, capsys):
    msg = assert_caught(run, phrase, capsys)
    assert "values differ" not in msg


def test_the_score_function_check_sees_an_f_with_a_graph():
    """The no-detach mistake changes the gradient (else the test above proves nothing): f depends on phi
    in one of the check's cases, and there the two gradients differ."""
    phi = torch.randn(3, dtype=torch.float64, requires_grad=True)
    feats = torch.randn(8, 3, dtype=torch.float64)
    log_q = feats @ phi - torch.logsumexp(feats @ phi, 0)
    f = 2 + (feats @ phi) ** 2
    g_detached = torch.autograd.grad((f.detach() * log_q).mean(), phi, retain_graph=True)[0]
    g_through = torch.autograd.grad((f * log_q).mean(), phi)[0]
    assert float((g_detached - g_through).abs().max()) > 0.1
