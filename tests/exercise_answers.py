"""Right answers to every exercise, written as students write them: other routes than the notebook's
solution (float32 work, loops, lists, torch.distributions, hand-written densities, a harmless
epsilon). Each is the whole source of the exercise's code cell.

Two tests use this table: tests/test_checks_right_answers.py runs each through its check (each
must pass), and tests/test_exercise_routes.py puts them into the student versions and runs every
notebook to its last cell (what a check accepts, the notebook must be able to use)."""

ROUTES: dict[str, dict[str, str]] = {
    "01.1": {
        "float32, one component at a time": '''
def mixture_log_density(x, weights, means, covs):
    x, weights, means, covs = (torch.as_tensor(t, dtype=torch.float32) for t in (x, weights, means, covs))
    columns = [weights[c].log() + torch.distributions.MultivariateNormal(means[c], covs[c]).log_prob(x)
               for c in range(len(weights))]
    return torch.logsumexp(torch.stack(columns, dim=1), dim=1)
''',
        "the Gaussian density by hand": '''
import math

def mixture_log_density(x, weights, means, covs):
    D = x.shape[1]
    diff = x[:, None, :] - means[None]                                   # (N, C, D)
    solved = torch.linalg.solve(covs[None], diff[..., None])[..., 0]     # Sigma_c^-1 (x_n - mu_c)
    log_normal = -0.5 * (D * math.log(2 * math.pi) + torch.logdet(covs) + (diff * solved).sum(-1))
    return torch.logsumexp(weights.log() + log_normal, dim=1)
''',
    },
    "01.2": {
        "log_softmax, then exp": '''
def responsibilities(x, weights, means, covs):
    log_joint = weights.log() + torch.distributions.MultivariateNormal(means, covariance_matrix=covs).log_prob(x[:, None, :])
    return torch.log_softmax(log_joint, dim=1).exp()
''',
        "float32, minus the log-sum-exp": '''
def responsibilities(x, weights, means, covs):
    x, weights, means, covs = (t.float() for t in (x, weights, means, covs))
    log_joint = torch.log(weights) + torch.distributions.MultivariateNormal(means, covs).log_prob(x.unsqueeze(1))
    return torch.exp(log_joint - torch.logsumexp(log_joint, dim=1, keepdim=True))
''',
    },
    "01.3": {
        "a loop over the components": '''
def m_step_means(x, resp):
    return torch.stack([(resp[:, c:c + 1] * x).sum(0) / resp[:, c].sum() for c in range(resp.shape[1])])
''',
        "einsum, as a list": '''
def m_step_means(x, resp):
    return (torch.einsum("nc,nd->cd", resp, x) / resp.sum(0).unsqueeze(1)).tolist()
''',
    },
    "02.1": {
        "the max trick by hand": '''
def naive_log_marginal(log_likelihoods):
    m = log_likelihoods.max(dim=0).values
    return m + torch.log(torch.exp(log_likelihoods - m).mean(dim=0))
''',
        "NumPy": '''
import numpy as np

def naive_log_marginal(log_likelihoods):
    lw = log_likelihoods.numpy()
    m = lw.max(axis=0)
    return m + np.log(np.exp(lw - m).mean(axis=0))
''',
        "float32": '''
import math

def naive_log_marginal(log_likelihoods):
    lw = log_likelihoods.float()
    return torch.logsumexp(lw, 0) - math.log(lw.shape[0])
''',
    },
    "02.2": {
        "the max trick by hand": '''
def importance_log_marginal(log_joint, log_q):
    log_w = log_joint - log_q
    m = log_w.max(dim=0, keepdim=True).values
    return (m + (log_w - m).exp().mean(dim=0, keepdim=True).log()).squeeze(0)
''',
        "float32": '''
import math

def importance_log_marginal(log_joint, log_q):
    log_w = (log_joint - log_q).float()
    return torch.logsumexp(log_w, dim=0) - math.log(len(log_w))
''',
    },
    "02.3": {
        "tensors": "q_mean, q_std = torch.tensor(1.48), torch.tensor(0.05)\n",
        "a slightly wider q": "q_mean, q_std = 1.48, 0.06\n",
    },
    "03.1": {
        "rsample, and a Python float": '''
def elbo_monte_carlo(log_joint, q, n_samples):
    z = q.rsample((n_samples,))
    return (log_joint(z) - q.log_prob(z)).mean().item()
''',
        "float32": '''
def elbo_monte_carlo(log_joint, q, n_samples):
    z = q.sample((n_samples,))
    return (log_joint(z) - q.log_prob(z)).float().sum() / n_samples
''',
    },
    "03.2": {
        "torch.distributions' KL": '''
def kl_to_standard_normal(mean, std):
    q = torch.distributions.Normal(mean, std)
    p = torch.distributions.Normal(torch.zeros_like(mean), torch.ones_like(std))
    return torch.distributions.kl_divergence(q, p).sum(dim=-1)
''',
        "the variance first, then a loop over dimensions": '''
def kl_to_standard_normal(mean, std):
    var = std**2
    total = torch.zeros(mean.shape[0], dtype=mean.dtype)
    for j in range(mean.shape[1]):
        total = total + 0.5 * (var[:, j] + mean[:, j]**2 - 1 - torch.log(var[:, j]))
    return total
''',
    },
    "03.3": {
        "rows: (x - b) W M^-1": '''
def ppca_posterior(x, W, b, sigma):
    M = W.T @ W + sigma**2 * torch.eye(W.shape[1], dtype=W.dtype)
    M_inv = torch.linalg.inv(M)
    return (x - b) @ W @ M_inv, sigma**2 * M_inv
''',
        "Cholesky": '''
def ppca_posterior(x, W, b, sigma):
    d = W.shape[1]
    L = torch.linalg.cholesky(W.T @ W + sigma**2 * torch.eye(d, dtype=W.dtype))
    mean = torch.cholesky_solve((W.T @ (x - b).T), L).T
    return mean, sigma**2 * torch.cholesky_inverse(L)
''',
    },
    "04.1": {
        "torch.distributions.Bernoulli": '''
def log_q(samples, phi):
    return torch.distributions.Bernoulli(probs=phi).log_prob(samples).sum(-1)
''',
        "torch.where, float32": '''
def log_q(samples, phi):
    samples, phi = samples.float(), phi.float()
    return torch.where(samples > 0.5, torch.log(phi), torch.log(1 - phi)).sum(dim=1)
''',
    },
    "04.2": {
        "float32": '''
def missing_pixel_marginals(x, observed, weights, probs):
    x, weights, probs = x.float(), weights.float(), probs.float()
    log_r = weights.log() + torch.distributions.Bernoulli(probs=probs).log_prob(x)[:, observed].sum(-1)
    r = torch.softmax(log_r, 0)
    return (r[:, None] * probs).sum(0)[~observed]
''',
        "a list": '''
def missing_pixel_marginals(x, observed, weights, probs):
    bern = x * probs.log() + (1 - x) * torch.log1p(-probs)
    r = torch.softmax(weights.log() + bern[:, observed].sum(-1), 0)
    return [float(v) for v in (r @ probs)[~observed]]
''',
    },
    "04.3": {
        "log sigma written out, a harmless epsilon (1e-12)": '''
import math

def elbo_pca(x, W, b, log_sigma, q_mean, q_log_std):
    D = x.shape[1]
    s2 = torch.exp(2 * q_log_std)
    sq_error = ((x - q_mean @ W.T - b) ** 2).sum(dim=1) + (s2 * (W**2).sum(dim=0)).sum(dim=1)
    recon = -D / 2 * (math.log(2 * math.pi) + 2 * log_sigma) - sq_error / (2 * torch.exp(2 * log_sigma))
    kl = 0.5 * (s2 + q_mean**2 - 1 - torch.log(s2 + 1e-12)).sum(dim=1)
    return recon - kl
''',
        "a loop over the latent coordinates": '''
import math

def elbo_pca(x, W, b, log_sigma, q_mean, q_log_std):
    sigma2 = torch.exp(2 * log_sigma)
    sq_error = ((x - q_mean @ W.T - b) ** 2).sum(-1)
    kl = torch.zeros(x.shape[0], dtype=x.dtype)
    for j in range(W.shape[1]):  # one latent coordinate at a time: its spread term and its KL
        s2_j = torch.exp(2 * q_log_std[:, j])
        sq_error = sq_error + s2_j * (W[:, j] ** 2).sum()
        kl = kl + 0.5 * (s2_j + q_mean[:, j] ** 2 - 1 - 2 * q_log_std[:, j])
    return -0.5 * x.shape[1] * torch.log(2 * math.pi * sigma2) - sq_error / (2 * sigma2) - kl
''',
    },
    "05.1": {
        "a float32 buffer, row by row": '''
def reparameterized_sample(mean, std, eps):
    z = torch.zeros(eps.shape)
    for s in range(eps.shape[0]):
        z[s] = mean + std * eps[s]
    return z
''',
        "torch.addcmul": '''
def reparameterized_sample(mean, std, eps):
    return torch.addcmul(mean, std, eps)
''',
    },
    "05.2": {
        "f.float() only": '''
def score_function_surrogate(f_values, log_q):
    f = f_values.float()
    return (f.detach() * log_q).mean()
''',
        "sum over S": '''
def score_function_surrogate(f_values, log_q):
    weights = f_values.detach()
    return (weights * log_q).sum() / len(weights)
''',
    },
    "05.3": {
        "Python floats": '''
def leave_one_out_baseline(f_values):
    S, total = len(f_values), float(f_values.sum())
    return torch.tensor([(total - float(f_values[s])) / (S - 1) for s in range(S)])
''',
        "a list": '''
def leave_one_out_baseline(f_values):
    S = f_values.shape[0]
    return [((f_values.sum() - f_values[s]) / (S - 1)).item() for s in range(S)]
''',
    },
    "06.1": {
        "a loop over the samples": '''
def elbo_of_q(model, x, mean, log_std, eps):
    std, terms = log_std.exp(), []
    for e in eps:
        z = mean + std * e
        terms.append(model.joint_log_prob(x, z) - torch.distributions.Normal(mean, std).log_prob(z).sum(-1))
    return torch.stack(terms).mean(0)
''',
        "log q by hand": '''
import math

def elbo_of_q(model, x, mean, log_std, eps):
    z = mean + torch.exp(log_std) * eps
    log_q = (-0.5 * eps**2 - log_std - 0.5 * math.log(2 * math.pi)).sum(-1)
    return (model.joint_log_prob(x, z) - log_q).mean(dim=0)
''',
    },
    "06.2": {
        "float32": '''
def gaps_per_image(encoder_elbo, refined_elbo, log_px):
    return (log_px - refined_elbo).float(), (refined_elbo - encoder_elbo).float()
''',
        "a list of two": '''
def gaps_per_image(encoder_elbo, refined_elbo, log_px):
    approximation = log_px - refined_elbo
    amortization = refined_elbo - encoder_elbo
    return [approximation, amortization]
''',
    },
    "07.1": {
        "logsigmoid": '''
import torch.nn.functional as F

def negative_elbo_loss(x, logits, mean, log_std):
    reconstruction = (x * F.logsigmoid(logits) + (1 - x) * F.logsigmoid(-logits)).sum(dim=1)
    kl = 0.5 * (log_std.exp() ** 2 + mean**2 - 1 - 2 * log_std).sum(dim=1)
    return -(reconstruction - kl).mean()
''',
        "torch.distributions": '''
def negative_elbo_loss(x, logits, mean, log_std):
    reconstruction = torch.distributions.Bernoulli(logits=logits).log_prob(x).sum(-1)
    q = torch.distributions.Normal(mean, log_std.exp())
    kl = torch.distributions.kl_divergence(q, torch.distributions.Normal(0.0, 1.0)).sum(-1)
    return (kl - reconstruction).mean()
''',
    },
    "07.2": {
        "the encoder's distribution": '''
def encoder_sample(model, x, eps):
    q = model.encoder(x)
    return q.mean + q.stddev * eps
''',
        "torch.addcmul": '''
def encoder_sample(model, x, eps):
    mean, log_std = model.encoder.params(x)
    return torch.addcmul(mean, log_std.exp(), eps)
''',
    },
    "07.3": {
        "mean + std * randn_like": '''
def training_step(model, x_batch, optimizer):
    mean, log_std = model.encoder.params(x_batch)
    std = log_std.exp()
    z = mean + std * torch.randn_like(std)
    reconstruction = model.decoder(z).log_prob(x_batch)
    kl = 0.5 * (std**2 + mean**2 - 1 - 2 * log_std).sum(-1)
    loss = (kl - reconstruction).mean()
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return {"loss": loss.item()}
''',
        "torch.distributions' KL, float(loss)": '''
def training_step(model, x_batch, optimizer):
    q = model.encoder(x_batch)
    z = q.rsample()
    kl = torch.distributions.kl_divergence(q, model.prior)  # (B,): the Independent sums over the d dims
    loss = -(model.decoder(z).log_prob(x_batch) - kl).mean()
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return {"loss": float(loss.detach())}
''',
    },
    "07.4": {
        "a loop over the K samples": '''
import math

def importance_weighted_log_px(model, x, eps):
    q = model.encoder(x)
    log_w = torch.stack([model.joint_log_prob(x, q.mean + q.stddev * e) - q.log_prob(q.mean + q.stddev * e)
                         for e in eps])
    return torch.logsumexp(log_w, dim=0) - math.log(len(eps))
''',
        "the max trick by hand, as a list": '''
def importance_weighted_log_px(model, x, eps):
    mean, log_std = model.encoder.params(x)
    z = mean + log_std.exp() * eps
    q = torch.distributions.Normal(mean, log_std.exp())
    log_w = model.joint_log_prob(x, z) - q.log_prob(z).sum(-1)
    m = log_w.max(0).values
    return (m + (log_w - m).exp().mean(0).log()).tolist()
''',
    },
}
