from vae_lesson.notation import WHO_IS_WHO, Role, who_is_who_markdown

CODE_NAMES = ["prior", "decoder", "joint_log_prob", "log_marginal", "posterior", "q", "encoder", "elbo"]


def _table_rows(md):
    rows = [line for line in md.split("\n\n")[0].splitlines() if line.startswith("|")]  # the first table
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


def _course_objects():
    """The course's models as a student meets them: the VAE (its encoder and decoder are set in
    __init__, so an instance), the small exact models of notebooks 01-04, a refinement's q."""
    import inspect

    from vae_lesson import bernoulli_mixture, models, vae

    objects = [vae.VAE(latent_dim=2, hidden=8), vae.Refinement]
    for module in (models, bernoulli_mixture):
        objects += [c for _, c in inspect.getmembers(module, inspect.isclass) if c.__module__ == module.__name__]
    return objects


def test_every_code_name_is_what_the_code_calls_it():
    """The table's "name in code" is an attribute of the course's models, spelled as the code spells
    it (a row saying `joint` for the method `joint_log_prob` sends students looking for nothing)."""
    objects = _course_objects()
    for role in WHO_IS_WHO:
        owners = [o for o in objects if hasattr(o, role.code_name)]
        assert owners, f"no model in vae_lesson has an attribute {role.code_name!r} (who's-who row {role.symbol})"


def test_the_check_of_code_names_fails_on_a_name_the_code_does_not_use():
    assert not any(hasattr(o, "joint") for o in _course_objects())


def test_the_readme_table_is_the_package_table():
    """README.md repeats the who's-who: same symbols and code names, in the same order."""
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = readme.split("### Who's who", 1)[1].split("\n\n| symbol", 1)[1].split("\n\n", 1)[0]
    rows = [line for line in ("| symbol" + section).splitlines() if line.startswith("| $")]
    cells = [[c.strip() for c in row.strip("|").split("|")] for row in rows]
    assert [c[0] for c in cells] == [f"${r.symbol}$" for r in WHO_IS_WHO]
    assert [c[2] for c in cells] == [f"`{r.code_name}`" for r in WHO_IS_WHO]


def test_theta_is_only_the_model_parameters_in_the_notebooks():
    """theta names the generative model's parameters (the decoder) everywhere; a variational
    distribution's parameters are phi, also for a categorical q in notebook 05 (its logits)."""
    import re
    from pathlib import Path

    import nbformat

    for path in sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        for cell in nb.cells:
            found = re.findall(r"softmax\(\\?theta|k\(\\?theta|q\(z = k\) = \\mathrm\{softmax\}\(\\theta|change of theta",
                               cell.source)
            assert not found, f"{path.name}: theta used for a variational distribution's parameters: {found}"


def test_one_meaning_per_symbol():
    from vae_lesson.notation import SYMBOLS, symbols_markdown

    assert len({sym.symbol for sym in SYMBOLS}) == len(SYMBOLS)
    assert {"x", "z", r"\theta", r"\phi", "K", "C"} <= {sym.symbol for sym in SYMBOLS}
    assert symbols_markdown() in who_is_who_markdown()


# What K and k meant before K was kept for samples (components and categories are C, index c).
OLD_MEANINGS = [r"\\pi_k\b", r"\\mu_k\b", r"z = k\b", r"\$K\$ clusters", r"\$K = 20\$ prototype", r"\\sum_k r_k",
                r"\\{1, \\dots, K\\}", r"softmax\(\\phi\)_k"]


def test_k_means_samples_only_in_the_notebooks():
    """K counts samples z_1..z_K; a mixture's components and a categorical's categories are C (index c)."""
    import re
    from pathlib import Path

    import nbformat

    for path in sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb")):
        for cell in nbformat.read(path, as_version=4).cells:
            for pattern in OLD_MEANINGS:
                assert not re.search(pattern, cell.source), f"{path.name}: {pattern} (K/k for a component or category)"


def test_the_k_lint_catches_the_old_notation():
    import re

    old = r"$$z \sim \mathrm{Categorical}(\pi_1, \dots, \pi_K) \qquad x \mid z = k \;\sim\; \mathcal{N}(\mu_k, \Sigma_k).$$"
    assert any(re.search(p, old) for p in OLD_MEANINGS)


def test_the_readme_has_the_symbols_table():
    from pathlib import Path

    from vae_lesson.notation import symbols_markdown

    assert symbols_markdown() in (Path(__file__).resolve().parents[1] / "README.md").read_text()
