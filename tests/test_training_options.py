"""The options ``fit`` gained for longer runs: ``lr_schedule``, ``time_budget``, ``callback`` and
``callback_every``, checked against explicit loops, exact step lists and a fake clock."""
import math
import time
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from vae_lesson import training
from vae_lesson.training import NonFiniteLossError, fit
from test_training import Quadratic  # loss(w) = ||w - target||^2


class FakeClock:
    """A perf_counter that only moves when ``tick`` is called: time budgets become exact."""

    def __init__(self, start: float = 1000.0):
        self.now = start

    def perf_counter(self) -> float:
        return self.now

    def tick(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock(monkeypatch) -> FakeClock:
    """Replace the clock ``fit`` reads (vae_lesson.training.time) by a FakeClock."""
    fake = FakeClock()
    monkeypatch.setattr(training, "time", SimpleNamespace(perf_counter=fake.perf_counter))
    return fake


# ----------------------------------------------------------------------------------------------
# lr_schedule


def test_lr_schedule_sets_base_lr_times_schedule_of_step_over_n_steps():
    """At step s the optimizer's learning rate is base_lr * schedule(s / n_steps), and the schedule
    is called with exactly the fractions 0, 1/n, ..., (n-1)/n."""
    model = Quadratic()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    n = 8
    fractions, lrs = [], []

    def schedule(f):
        fractions.append(f)
        return 1.0 - f ** 2

    def loss_fn(step):
        lrs.append(opt.param_groups[0]["lr"])
        return model.loss()

    history = fit(model, loss_fn, n_steps=n, optimizer=opt, progress=False, lr_schedule=schedule)
    assert len(history["loss"]) == n
    assert fractions == pytest.approx([s / n for s in range(n)], abs=0)
    assert lrs == pytest.approx([0.1 * (1 - (s / n) ** 2) for s in range(n)], rel=1e-12)
    assert all(0 <= f < 1 for f in fractions)


def test_lr_schedule_is_the_lr_the_update_uses():
    """Plain SGD under a cosine schedule ends exactly where an explicit loop
    w <- w - lr_s * 2 (w - target), lr_s = 0.2 * 0.5 (1 + cos(pi s / n)), ends."""
    model = Quadratic()
    opt = torch.optim.SGD(model.parameters(), lr=0.2)
    n = 12
    cosine = lambda f: 0.5 * (1 + math.cos(math.pi * f))  # noqa: E731
    fit(model, lambda s: model.loss(), n_steps=n, optimizer=opt, progress=False, lr_schedule=cosine)

    w = torch.tensor([3.0, -2.0, 0.5], dtype=torch.float64)
    target = torch.tensor([1.0, 1.0, -1.0], dtype=torch.float64)
    for s in range(n):
        w = w - 0.2 * cosine(s / n) * 2 * (w - target)
    torch.testing.assert_close(model.w.detach().double(), w, atol=1e-6, rtol=0)
    # and a schedule that changed nothing would have landed elsewhere
    w_const = torch.tensor([3.0, -2.0, 0.5], dtype=torch.float64)
    for s in range(n):
        w_const = w_const - 0.2 * 2 * (w_const - target)
    assert (w - w_const).abs().max() > 1e-3


def test_lr_schedule_scales_every_param_group_from_its_own_base():
    """Each parameter group keeps its own base learning rate; the schedule multiplies both."""
    a, b = nn.Parameter(torch.tensor(1.0)), nn.Parameter(torch.tensor(2.0))
    model = nn.Module()
    model.a, model.b = a, b
    opt = torch.optim.SGD([{"params": [a], "lr": 0.1}, {"params": [b], "lr": 0.01}])
    seen = []

    def loss_fn(step):
        seen.append([g["lr"] for g in opt.param_groups])
        return a ** 2 + b ** 2

    fit(model, loss_fn, n_steps=4, optimizer=opt, progress=False, lr_schedule=lambda f: 1 - f)
    expected = [[0.1 * (1 - s / 4), 0.01 * (1 - s / 4)] for s in range(4)]
    for got, want in zip(seen, expected):
        assert got == pytest.approx(want, rel=1e-12)


def test_lr_schedule_with_the_default_adam_matches_an_explicit_adam_loop():
    """Without an optimizer, fit's Adam(lr) under a schedule follows an explicit Adam loop whose
    learning rate is set by hand to lr * schedule(s / n) before each step."""
    n, lr = 15, 0.3
    schedule = lambda f: 1.0 - 0.9 * f  # noqa: E731
    model = Quadratic()
    fit(model, lambda s: model.loss(), n_steps=n, lr=lr, progress=False, lr_schedule=schedule)

    ref = Quadratic()
    opt = torch.optim.Adam(ref.parameters(), lr=lr)
    for s in range(n):
        opt.param_groups[0]["lr"] = lr * schedule(s / n)
        opt.zero_grad()
        ref.loss().backward()
        opt.step()
    torch.testing.assert_close(model.w.detach(), ref.w.detach(), atol=1e-6, rtol=0)

    unscheduled = Quadratic()
    fit(unscheduled, lambda s: unscheduled.loss(), n_steps=n, lr=lr, progress=False)
    assert (unscheduled.w - model.w).abs().max() > 1e-3


# ----------------------------------------------------------------------------------------------
# time_budget


def test_time_budget_stops_when_the_clock_says_so(clock):
    """With a budget of 1 s and 0.125 s per step (fake clock), exactly 8 steps run although
    n_steps is 1000; the history has one entry per completed step."""
    model = Quadratic()
    calls = []

    def loss_fn(step):
        calls.append(step)
        clock.tick(0.125)
        return model.loss()

    history = fit(model, loss_fn, n_steps=1000, lr=0.05, progress=False, time_budget=1.0)
    assert calls == list(range(8))
    assert len(history["loss"]) == 8


def test_time_budget_lr_schedule_follows_elapsed_time(clock):
    """Under a time budget the schedule's fraction is elapsed / time_budget, not step / n_steps."""
    model = Quadratic()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    fractions, lrs = [], []

    def schedule(f):
        fractions.append(f)
        return 1 - f

    def loss_fn(step):
        lrs.append(opt.param_groups[0]["lr"])
        clock.tick(0.25)
        return model.loss()

    history = fit(model, loss_fn, n_steps=100, optimizer=opt, progress=False, time_budget=2.0,
                  lr_schedule=schedule)
    assert len(history["loss"]) == 8
    assert fractions == pytest.approx([0.125 * s for s in range(8)], abs=1e-12)
    assert lrs == pytest.approx([0.1 * (1 - 0.125 * s) for s in range(8)], rel=1e-12)


def test_time_budget_with_a_real_clock_stops_near_the_budget():
    """With the real clock and steps of ~10 ms, a 0.3 s budget ends the loop well before
    n_steps, shortly after the budget, with one history entry per loss evaluation."""
    model = Quadratic()
    calls = []

    def loss_fn(step):
        calls.append(step)
        time.sleep(0.01)
        return model.loss()

    start = time.perf_counter()
    history = fit(model, loss_fn, n_steps=10**6, lr=0.05, progress=False, time_budget=0.3)
    wall = time.perf_counter() - start
    assert 0.3 <= wall < 0.3 + 0.5
    assert 5 <= len(calls) < 10**6
    assert len(history["loss"]) == len(calls)


def test_n_steps_is_still_a_maximum_under_a_time_budget(clock):
    """A generous budget does not add steps: n_steps still caps the loop."""
    model = Quadratic()
    history = fit(model, lambda s: model.loss(), n_steps=7, lr=0.05, progress=False, time_budget=100.0)
    assert len(history["loss"]) == 7


@pytest.mark.parametrize("budget", [0, -1.0, float("nan"), "1", [1.0]])
def test_bad_time_budget(budget):
    """A time budget that is not a positive number is refused before any step."""
    model = Quadratic()
    calls = []
    with pytest.raises(ValueError, match="time_budget"):
        fit(model, lambda s: calls.append(s) or model.loss(), n_steps=3, progress=False, time_budget=budget)
    assert calls == []


# ----------------------------------------------------------------------------------------------
# callback


@pytest.mark.parametrize("n_steps, every, expected", [
    (10, 3, [0, 3, 6, 9, 10]),
    (9, 3, [0, 3, 6, 9]),
    (5, 10, [0, 5]),
    (4, 1, [0, 1, 2, 3, 4]),
    (1, 250, [0, 1]),
])
def test_callback_steps(n_steps, every, expected):
    """callback(step) runs before the first step, after every ``callback_every`` completed steps
    and after the last, each step once; at callback(s) exactly s updates have been made."""
    model = Quadratic()
    calls, losses_seen = [], []

    def loss_fn(step):
        losses_seen.append(step)
        return model.loss()

    def callback(step):
        calls.append(step)
        assert len(losses_seen) == step  # s updates done when callback(s) runs

    fit(model, loss_fn, n_steps=n_steps, lr=0.05, progress=False, callback=callback, callback_every=every)
    assert calls == expected


def test_callback_sees_the_parameters_after_step_updates():
    """The model passed to callback(s) holds the parameters after s SGD updates, computed by hand."""
    model = Quadratic()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    seen = {}

    def callback(step):
        seen[step] = model.w.detach().clone()

    fit(model, lambda s: model.loss(), n_steps=6, optimizer=opt, progress=False, callback=callback,
        callback_every=2)
    w = torch.tensor([3.0, -2.0, 0.5])
    for s in range(7):
        if s in seen:
            torch.testing.assert_close(seen[s], w, atol=1e-6, rtol=0)
        w = w - 0.1 * 2 * (w - model.target)
    assert sorted(seen) == [0, 2, 4, 6]


@pytest.mark.parametrize("returned", [None, {}, {"test ELBO": -42.5, "other": 3}])
def test_callback_return_value_is_shown_without_changing_the_run(returned, capsys):
    """Whatever the callback returns (None, {} or numbers to show) leaves history and parameters
    exactly as a run without callback, also with the progress bar on."""
    plain = Quadratic()
    h_plain = fit(plain, lambda s: {"loss": plain.loss(), "half": plain.loss() / 2}, n_steps=9, lr=0.05,
                  progress=False)
    model = Quadratic()
    h = fit(model, lambda s: {"loss": model.loss(), "half": model.loss() / 2}, n_steps=9, lr=0.05,
            progress=True, callback=lambda s: returned, callback_every=4)
    assert set(h) == {"loss", "half"}
    assert h == h_plain
    assert torch.equal(model.w, plain.w)


def test_callback_under_a_time_budget_runs_at_the_last_completed_step(clock):
    """Stopped by the budget after 8 steps, callback_every=3: callbacks at 0, 3, 6 and 8."""
    model = Quadratic()
    calls = []

    def loss_fn(step):
        clock.tick(0.125)
        return model.loss()

    fit(model, loss_fn, n_steps=1000, lr=0.05, progress=False, time_budget=1.0,
        callback=calls.append, callback_every=3)
    assert calls == [0, 3, 6, 8]


def test_callback_time_counts_against_the_budget(clock):
    """The callback's own time is part of the elapsed time: a callback taking the whole budget
    at step 0 leaves no step to run, and the callback is not repeated."""
    model = Quadratic()
    calls, steps = [], []

    def callback(step):
        calls.append(step)
        clock.tick(5.0)

    history = fit(model, lambda s: steps.append(s) or model.loss(), n_steps=10, lr=0.05, progress=False,
                  time_budget=1.0, callback=callback)
    assert steps == [] and history == {}
    assert calls == [0]


@pytest.mark.parametrize("every", [0, -2, 1.5, True, None, "3"])
def test_bad_callback_every(every):
    """callback_every must be a positive integer; nothing runs otherwise."""
    model = Quadratic()
    calls = []
    with pytest.raises(ValueError, match="callback_every"):
        fit(model, lambda s: model.loss(), n_steps=3, progress=False, callback=calls.append, callback_every=every)
    assert calls == []


# ----------------------------------------------------------------------------------------------
# NaN handling with the new options


def test_nan_with_all_options_restores_the_last_good_parameters(clock):
    """With a schedule, a (generous) budget and a callback, a NaN at step 6 still raises
    NonFiniteLossError and leaves the parameters with which step 5 computed its finite loss."""
    model = Quadratic()
    params_at_step, calls = {}, []

    def loss_fn(step):
        clock.tick(0.01)
        params_at_step[step] = model.w.detach().clone()
        return model.loss() + (float("nan") if step == 6 else 0.0)

    with pytest.raises(NonFiniteLossError) as info:
        fit(model, loss_fn, n_steps=50, lr=0.05, progress=False, lr_schedule=lambda f: 1 - f,
            time_budget=10.0, callback=calls.append, callback_every=2)
    assert info.value.step == 6 and info.value.term == "loss"
    assert max(params_at_step) == 6
    assert not torch.equal(params_at_step[5], params_at_step[6])
    assert torch.equal(model.w.detach(), params_at_step[5])
    assert calls[:4] == [0, 2, 4, 6] and max(calls) <= 6


def test_nan_parameters_from_a_scheduled_step_are_rolled_back():
    """A NaN gradient at step 3 (finite loss) poisons the step-4 parameters; with a schedule and
    callback the model still goes back to the parameters of step 3."""
    model = Quadratic()
    params_at_step = {}

    def loss_fn(step):
        params_at_step[step] = model.w.detach().clone()
        loss = model.loss()
        if step == 3:
            loss = loss + (model.w.sum() * 0).sqrt()  # value + 0, gradient NaN
        return loss

    with pytest.raises(NonFiniteLossError) as info:
        fit(model, loss_fn, n_steps=20, lr=0.05, progress=False, lr_schedule=lambda f: 0.5 + f,
            callback=lambda s: {"w0": model.w[0].item()}, callback_every=1)
    assert info.value.step == 4
    assert torch.isnan(params_at_step[4]).all()
    assert torch.equal(model.w.detach(), params_at_step[3])
