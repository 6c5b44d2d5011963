"""What every exercise check must do, for the checks whose right answers are listed in CHECKS of
the per-notebook test files: pass the reference answers, say "not done yet" to a scaffold, and
try more than one input (a memorized answer fails)."""
import pytest
from conftest import assert_memorized_answer_fails, assert_not_done_yet, assert_right_answers_pass
from test_checks_nb04 import CHECKS as NB04
from test_checks_nb05 import CHECKS as NB05
from test_checks_nb06_nb07 import CHECKS as NB06_07

CHECKS = {**NB04, **NB05, **NB06_07}


@pytest.mark.parametrize("name", sorted(CHECKS))
def test_right_answers_pass(name, capsys):
    assert_right_answers_pass(*CHECKS[name], capsys)


@pytest.mark.parametrize("name", sorted(CHECKS))
def test_not_done_yet(name, capsys):
    assert_not_done_yet(CHECKS[name][0], capsys)


@pytest.mark.parametrize("name", sorted(CHECKS))
def test_checks_use_several_inputs(name):
    check, rights = CHECKS[name]
    assert_memorized_answer_fails(check, rights[0])
