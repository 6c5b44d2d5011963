"""The exercise checks of notebook 05 (vae_lesson.checks.nb05): right answers, written here
independently of the package, pass; unfinished ones say "not done yet"; each typical wrong answer
raises ExerciseError with a message that names the mistake."""
import numpy as np
import pytest
import torch
from conftest import assert_caught
from torch import distributions as D

from vae_lesson import checks
from vae_lesson.checks import ExerciseError



# --- the student's functions, right ------------------------------------------------------------

def right_sample(mean, std, eps):
    return mean + std * eps


def right_sample_loops(mean, std, eps):
    """Row by row, with torch.stack (still differentiable)."""
    return torch.stack([mean + std * eps[s] for s in range(eps.shape[0])])


def right_sample_affine(mean, std, eps):
    """The affine transform of torch.distributions applied to eps."""
    return D.AffineTransform(loc=mean, scale=std)(eps)


def right_surrogate(f_values, log_q):
    return (f_values.detach() * log_q).mean()


def right_surrogate_dot(f_values, log_q):
    return torch.dot(f_values.detach(), log_q) / f_values.shape[0]


def right_surrogate_plus_constant(f_values, log_q):
    """A constant (no phi) added to the surrogate does not change its gradient."""
    f = f_values.detach()
    return (f * log_q).mean() + f.sum() + 7.0


def right_baseline(f_values):
    S = f_values.shape[0]
    return torch.stack([torch.cat([f_values[:s], f_values[s + 1:]]).mean() for s in range(S)])


def right_baseline_numpy_loops(f_values):
    f = f_values.numpy()
    return torch.tensor([np.delete(f, s).mean() for s in range(len(f))], dtype=torch.float64)


# right answers per check; tests/test_checks_common.py runs the generic checks on them
CHECKS = {
    "reparameterized_sample": (checks.reparameterized_sample, [right_sample, right_sample_loops, right_sample_affine]),
    "score_function_surrogate": (checks.score_function_surrogate,
                                 [right_surrogate, right_surrogate_dot, right_surrogate_plus_constant]),
    "leave_one_out_baseline": (checks.leave_one_out_baseline, [right_baseline, right_baseline_numpy_loops]),
}


# --- 05.1 the reparameterized sample: typical wrong answers --------------------------------------------

def z_detached(mean, std, eps):
    return (mean + std * eps).detach()


def z_torch_normal_detached(mean, std, eps):
    S = eps.shape[0]
    return torch.normal(mean.detach().expand(S, -1), std.detach().expand(S, -1))


def z_torch_normal(mean, std, eps):
    """torch.normal keeps requires_grad but its gradient is zero, and its noise is not eps."""
    S = eps.shape[0]
    return torch.normal(mean.expand(S, -1), std.expand(S, -1))


def z_distribution_sample(mean, std, eps):
    return D.Normal(mean, std).sample((eps.shape[0],))


def z_variance(mean, std, eps):
    return mean + std**2 * eps


def z_no_std(mean, std, eps):
    return mean + eps


def z_swapped(mean, std, eps):
    return std + mean * eps


def z_one_row(mean, std, eps):
    return mean + std * eps[0]


def z_transposed(mean, std, eps):
    return (mean + std * eps).T


def z_items(mean, std, eps):
    """Built from Python floats (.item()): right values, no graph."""
    S, d = eps.shape
    return torch.tensor([[mean[j].item() + std[j].item() * eps[s, j].item() for j in range(d)] for s in range(S)],
                        dtype=torch.float64)


def z_python_float(mean, std, eps):
    return (mean + std * eps).sum().item()


@pytest.mark.parametrize("wrong, phrase", [
    (z_detached, "detached"),
    (z_torch_normal_detached, "detached"),
    (z_distribution_sample, "detached"),
    (z_items, "detached"),
    (z_variance, "variance"),
    (z_no_std, "scaled by std"),
    (z_swapped, "swapped"),
    (z_one_row, "expected shape (5, 3), got shape (3,)"),
    (z_transposed, "transposed"),
    (z_python_float, "return a torch tensor, not float"),
    (z_torch_normal, "values differ"),
])
def test_reparameterized_sample_mistakes(wrong, phrase, capsys):
    assert_caught(lambda: checks.reparameterized_sample(wrong), phrase, capsys)


def test_reparameterized_sample_detached_message_says_what_to_use(capsys):
    msg = assert_caught(lambda: checks.reparameterized_sample(z_detached), "no gradient flows back", capsys)
    assert ".sample()" in msg and "torch.normal" in msg and ".item()" in msg


def test_reparameterized_sample_wrong_gradient_is_caught(capsys):
    """Right values, wrong graph: mean + std * eps where the std term is detached."""
    def std_detached(mean, std, eps):
        return mean + std.detach() * eps

    assert_caught(lambda: checks.reparameterized_sample(std_detached), "d(sum z)/d std", capsys)


@pytest.mark.parametrize("convert", [lambda z: z.detach().numpy(), lambda z: z.tolist()],
                         ids=["numpy", "list"])
def test_reparameterized_sample_not_a_tensor(convert, capsys):
    assert_caught(lambda: checks.reparameterized_sample(lambda m, s, e: convert(m + s * e)), "tensor", capsys)


# --- 05.2 the score-function surrogate: typical wrong answers -------------------------------------------

def sur_q(f_values, log_q):
    return (f_values * log_q.exp()).mean()


def sur_product_of_means(f_values, log_q):
    return f_values.mean() * log_q.mean()


def sur_sign(f_values, log_q):
    return -(f_values * log_q).mean()


def sur_detached(f_values, log_q):
    return (f_values * log_q.detach()).mean()


def sur_per_sample(f_values, log_q):
    return f_values * log_q


def sur_sum(f_values, log_q):
    return (f_values * log_q).sum()


def sur_item(f_values, log_q):
    return (f_values * log_q).mean().item()


def sur_f_only(f_values, log_q):
    return f_values.mean()


@pytest.mark.parametrize("wrong, phrase", [
    (sur_q, "instead of log q"),
    (sur_product_of_means, "product of the averages"),
    (sur_sign, "sign is wrong"),
    (sur_detached, "do not detach"),
    (sur_per_sample, "one number"),
    (sur_item, "scalar tensor"),
    (sur_f_only, "does not depend on phi"),
    (sur_sum, "the gradient of your surrogate: values differ"),
])
def test_score_function_surrogate_mistakes(wrong, phrase, capsys):
    assert_caught(lambda: checks.score_function_surrogate(wrong), phrase, capsys)


# --- 05.3 the leave-one-out baseline: typical wrong answers ---------------------------------------------

def b_plain_mean(f_values):
    return f_values.mean().expand(f_values.shape[0])


def b_divide_by_S(f_values):
    return (f_values.sum() - f_values) / f_values.shape[0]


def b_sum_of_others(f_values):
    return f_values.sum() - f_values


def b_zero(f_values):
    return torch.zeros_like(f_values)


def b_scalar(f_values):
    return f_values.mean()


def b_off_by_one(f_values):
    """Leaves out the next sample instead of itself."""
    S = f_values.shape[0]
    return (f_values.sum() - f_values.roll(-1)) / (S - 1)


@pytest.mark.parametrize("wrong, phrase", [
    (b_plain_mean, "itself"),
    (b_divide_by_S, "divide by K - 1"),
    (b_sum_of_others, "sum of the other samples"),
    (b_zero, "baseline: values differ"),
    (b_scalar, "reduced everything to one number"),
    (b_off_by_one, "baseline: values differ"),
])
def test_leave_one_out_baseline_mistakes(wrong, phrase, capsys):
    assert_caught(lambda: checks.leave_one_out_baseline(wrong), phrase, capsys)


def test_checks_do_not_change_the_inputs_they_own():
    """A function that modifies f_values in place still gets a fair check (the check passes a copy)."""
    def in_place(f_values):
        S = f_values.shape[0]
        total = f_values.sum()
        return f_values.neg_().add_(total).div_(S - 1)

    assert checks.leave_one_out_baseline(in_place).passed
