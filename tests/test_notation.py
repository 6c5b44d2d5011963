from vae_lesson.notation import WHO_IS_WHO, Role, who_is_who_markdown

CODE_NAMES = ["prior", "decoder", "joint", "log_marginal", "posterior", "q", "encoder", "elbo"]


def _table_rows(md):
    rows = [line for line in md.splitlines() if line.startswith("|")]
    header, rule, body = rows[0], rows[1], rows[2:]
    return header, rule, body


def test_every_code_name_is_in_the_table():
    md = who_is_who_markdown()
    for name in CODE_NAMES:
        assert f"`{name}`" in md, name


def test_roles_are_the_expected_ones():
    assert all(isinstance(r, Role) for r in WHO_IS_WHO)
    assert [r.code_name for r in WHO_IS_WHO] == CODE_NAMES
    assert len({r.symbol for r in WHO_IS_WHO}) == len(WHO_IS_WHO)


def test_one_row_per_role_with_five_columns():
    header, rule, body = _table_rows(who_is_who_markdown())
    assert len(body) == len(WHO_IS_WHO) == len(CODE_NAMES)
    n_cols = header.count("|") - 1
    assert n_cols == 5
    assert rule.count("|") - 1 == n_cols
    for row, role in zip(body, WHO_IS_WHO):
        # a stray "|" inside a cell (e.g. p(x|z) instead of p(x \mid z)) would break the table
        assert row.count("|") - 1 == n_cols, row
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert cells[0] == f"${role.symbol}$"
        assert cells[2] == f"`{role.code_name}`"


def test_decoder_and_posterior_are_not_confused():
    md = who_is_who_markdown()
    rows = {r.code_name: r for r in WHO_IS_WHO}
    assert rows["decoder"].symbol.replace(" ", "") == r"p(x\midz;\theta)"
    assert rows["posterior"].symbol.replace(" ", "") == r"p(z\midx;\theta)"
    assert "nats" in md
