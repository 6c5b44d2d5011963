"""deploy/z2jh/config.yaml, the Zero to JupyterHub values for a class, checked as helm checks it.

helm merges a chart's defaults (values.yaml) with the user's values and validates the result
against the chart's values.schema.json before it renders anything; the jupyterhub chart's schema
has ``additionalProperties: false`` at most levels, so a misspelled key or a wrong type stops
`helm upgrade`. Here the same check runs against the chart's schema and defaults vendored at a
named chart version (deploy/z2jh/values.schema-4.4.0.yaml and values-4.4.0.yaml), so the mistake
fails in this test instead, with the key path. Also checked: deploy/z2jh/KEYS.md lists exactly the
config's key paths with the schema's types; the memory values are ones JupyterHub itself accepts,
no guarantee exceeds its limit; the model cache is mounted read-only where VAE_LESSON_CACHE
points; the default URL is an nbgitpuller pull of this course that opens its notebooks folder, and
the image repo2docker builds from requirements.txt has nbgitpuller. No cluster, no network.
"""
from __future__ import annotations

import copy
import re
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import jsonschema
import pytest
import yaml

CHART_VERSION = "4.4.0"
ROOT = Path(__file__).resolve().parent.parent
HERE = ROOT / "deploy" / "z2jh"
CONFIG = HERE / "config.yaml"
SCHEMA = HERE / f"values.schema-{CHART_VERSION}.yaml"
DEFAULTS = HERE / f"values-{CHART_VERSION}.yaml"
KEYS = HERE / "KEYS.md"
REPOSITORY = "https://github.com/jupyterhub/zero-to-jupyterhub-k8s"
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when there: the schema is 3,000 lines


def _load(path: Path):
    with open(path, encoding="utf-8") as f:
        return yaml.load(f, Loader=_Loader)


@pytest.fixture(scope="module")
def schema() -> dict:
    return _load(SCHEMA)


@pytest.fixture(scope="module")
def validator(schema) -> jsonschema.Draft7Validator:
    return jsonschema.Draft7Validator(schema)


@pytest.fixture(scope="module")
def defaults() -> dict:
    return _load(DEFAULTS)


@pytest.fixture(scope="module")
def config() -> dict:
    return _load(CONFIG)


def coalesce(defaults, values):
    """The values helm renders with: ``values`` over the chart's ``defaults``, maps merged key by key,
    anything else (lists included) replaced, and a key set to null removing the default."""
    if not (isinstance(defaults, dict) and isinstance(values, dict)):
        return copy.deepcopy(values)
    merged = copy.deepcopy(defaults)
    for key, value in values.items():
        if value is None:
            merged.pop(key, None)
        elif key in merged:
            merged[key] = coalesce(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def schema_errors(validator, defaults, values) -> list[str]:
    """One line per schema error in the merged values, with its dotted key path."""
    errors = validator.iter_errors(coalesce(defaults, values))
    return sorted(f"{'.'.join(map(str, e.absolute_path)) or '(top level)'}: {e.message}" for e in errors)


def schema_node(schema: dict, path: list[str]) -> dict | None:
    """The schema for a key path: from "properties", else a matching "patternProperties", else
    "additionalProperties" ({} when anything goes; None when the key is not allowed)."""
    node = schema
    for key in path:
        if key in node.get("properties", {}):
            node = node["properties"][key]
            continue
        patterns = [sub for pattern, sub in node.get("patternProperties", {}).items() if re.search(pattern, key)]
        if patterns:
            node = patterns[0]
            continue
        extra = node.get("additionalProperties", True)
        if extra is False:
            return None
        node = extra if isinstance(extra, dict) else {}
    return node


def schema_type(node: dict | None) -> str:
    """The type(s) a schema node allows, as KEYS.md writes them: "number, string, null"."""
    if node is None:
        return "(not in the schema)"
    if "type" in node:
        types = node["type"] if isinstance(node["type"], list) else [node["type"]]
        return ", ".join(str(t) for t in types)
    if "enum" in node:
        return "one of " + ", ".join("null" if v is None else str(v) for v in node["enum"])
    return "any"


def leaf_paths(values: dict, schema: dict, prefix: tuple[str, ...] = ()) -> dict[str, str]:
    """Every key path the config sets, down to where the schema stops describing keys (a value that
    is not a map, or a free-form map such as singleuser.extraEnv), with the schema's type there."""
    leaves = {}
    for key, value in values.items():
        path = (*prefix, key)
        node = schema_node(schema, list(path))
        if isinstance(value, dict) and node is not None and ("properties" in node or "patternProperties" in node):
            leaves.update(leaf_paths(value, schema, path))
        else:
            leaves[".".join(path)] = schema_type(node)
    return leaves


def keys_table() -> dict[str, str]:
    """KEYS.md's rows: key path -> the type column."""
    rows = {}
    for line in KEYS.read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")] if line.startswith("|") else []
        if len(cells) >= 2 and cells[0].startswith("`"):
            rows[cells[0].strip("`")] = cells[1]
    return rows


def set_path(values: dict, dotted: str, value) -> dict:
    changed = copy.deepcopy(values)
    *parents, last = dotted.split(".")
    node = changed
    for key in parents:
        node = node.setdefault(key, {})
    node[last] = value
    return changed


def get_path(values: dict, dotted: str):
    for key in dotted.split("."):
        values = values[key]
    return values


def test_the_vendored_schema_and_defaults_are_the_named_chart_version(schema, validator, defaults):
    for path in (SCHEMA, DEFAULTS):
        first = path.read_text(encoding="utf-8").splitlines()[0]
        assert first.startswith("# Vendored") and REPOSITORY in first and f"tag {CHART_VERSION}" in first, (
            f"{path.name}: the first line must say where it came from ({REPOSITORY}, tag {CHART_VERSION})")
    assert "BSD 3-Clause License" in (HERE / "LICENSE-zero-to-jupyterhub").read_text(encoding="utf-8")
    jsonschema.Draft7Validator.check_schema(schema)
    assert schema_errors(validator, defaults, {}) == [], "the chart's own defaults must pass its own schema"
    assert f"version {CHART_VERSION}" in CONFIG.read_text(encoding="utf-8").splitlines()[0], (
        "config.yaml's first line must name the chart version its keys were checked against")


def test_config_passes_the_chart_schema(validator, defaults, config):
    errors = schema_errors(validator, defaults, config)
    assert not errors, ("deploy/z2jh/config.yaml would stop `helm upgrade` (chart "
                        f"{CHART_VERSION}):\n  " + "\n  ".join(errors))


@pytest.mark.parametrize("dotted, value, where, expected", [
    ("singleuser.memory.limitt", "2G", "singleuser.memory", "'limitt' was unexpected"),      # a typo in a key
    ("singleuser.defaultURL", "/lab", "singleuser", "'defaultURL' was unexpected"),          # the wrong case
    ("cul.timeout", 3600, "(top level)", "'cul' was unexpected"),                            # a typo at the top
    ("singleuser.cpu.limit", "500m", "singleuser.cpu.limit", "'500m' is not of type 'number', 'null'"),  # k8s notation
    ("cull.timeout", "1h", "cull.timeout", "'1h' is not of type 'integer', 'null'"),         # a wrong type
    ("singleuser.image.tag", 2026.12, "singleuser.image.tag", "2026.12 is not of type 'string'"),  # unquoted tag
    ("singleuser.storage.extraVolumes", "vae-lesson-models", "singleuser.storage.extraVolumes",
     "is not of type 'object', 'array', 'null'"),
])
def test_a_mistake_in_the_config_fails_with_its_key_path(validator, defaults, config, dotted, value, where, expected):
    errors = schema_errors(validator, defaults, set_path(config, dotted, value))
    assert any(e.startswith(f"{where}: ") and expected in e for e in errors), (
        f"{dotted}: {value!r} should fail at {where} ({expected}); the schema said: {errors}")


def test_keys_table_lists_exactly_the_config_key_paths_with_the_schema_types(schema, config):
    text = KEYS.read_text(encoding="utf-8")
    assert f"version {CHART_VERSION}" in text, f"KEYS.md must name the chart version ({CHART_VERSION})"
    table, used = keys_table(), leaf_paths(config, schema)
    missing = {k: v for k, v in used.items() if k not in table}
    extra = sorted(set(table) - set(used))
    wrong = {k: (table[k], used[k]) for k in used if k in table and table[k] != used[k]}
    assert not (missing or extra or wrong), (
        "deploy/z2jh/KEYS.md is out of date with config.yaml:"
        + (f"\n  add rows (key path | schema type): {missing}" if missing else "")
        + (f"\n  remove rows: {extra}" if extra else "")
        + (f"\n  type column (KEYS.md, schema): {wrong}" if wrong else ""))


def test_resources_are_values_jupyterhub_accepts_with_guarantees_within_limits(config):
    # The schema allows any string for memory; JupyterHub parses it with this trait when the hub
    # starts (K, M, G, T in units of 1024), and Kubernetes refuses a pod whose request exceeds its limit.
    from jupyterhub.traitlets import ByteSpecification
    from traitlets import HasTraits, TraitError

    class Memory(HasTraits):
        value = ByteSpecification()

    def nbytes(spec):
        return Memory(value=spec).value

    with pytest.raises(TraitError):
        nbytes("2Gi")  # Kubernetes' notation: the hub would not start
    assert nbytes("1.5G") == 3 * 2**29
    memory, cpu = config["singleuser"]["memory"], config["singleuser"]["cpu"]
    assert 0 < nbytes(memory["guarantee"]) <= nbytes(memory["limit"]), memory
    assert 0 < cpu["guarantee"] <= cpu["limit"], cpu


def test_the_model_cache_is_mounted_read_only_where_vae_lesson_cache_points(defaults, config):
    singleuser = config["singleuser"]
    storage = singleuser["storage"]
    cache = singleuser["extraEnv"]["VAE_LESSON_CACHE"]
    mounts = [m for m in storage["extraVolumeMounts"] if m["mountPath"] == cache]
    assert len(mounts) == 1 and mounts[0].get("readOnly") is True, (
        f"VAE_LESSON_CACHE={cache}: one extraVolumeMounts entry must mount it there with readOnly: true")
    volumes = {v["name"]: v for v in storage["extraVolumes"]}
    volume = volumes.get(mounts[0]["name"])
    assert volume is not None, f"no extraVolumes entry named {mounts[0]['name']!r} for the mount"
    claim = volume.get("persistentVolumeClaim", {})
    assert claim.get("claimName") and claim.get("readOnly") is True, volume
    home = get_path(coalesce(defaults, config), "singleuser.storage.homeMountPath")
    assert not cache.startswith(home.rstrip("/") + "/"), f"the shared cache must not be inside the home {home}"


def test_the_default_url_pulls_this_course_and_opens_its_notebooks(config):
    url = urlsplit(config["singleuser"]["defaultUrl"])
    assert url.path == "/git-pull", (
        f"defaultUrl {url.path!r}: relative to the student's server it is /git-pull (the /hub/user-redirect/ "
        "form is for links handed out)")
    query = parse_qs(url.query, strict_parsing=True)
    assert set(query) >= {"repo", "branch", "urlpath"}, query
    repo, urlpath = query["repo"][0], query["urlpath"][0]
    assert re.fullmatch(r"https://[^/\s]+/[^/\s]+/vae-lesson", repo), repo
    clone = repo.rstrip("/").split("/")[-1]  # nbgitpuller's default target folder
    assert urlpath.startswith(f"lab/tree/{clone}/"), (urlpath, clone)
    assert (ROOT / urlpath.removeprefix(f"lab/tree/{clone}/")).is_dir(), f"{urlpath}: no such folder in the course"


def test_the_image_repo2docker_builds_has_nbgitpuller():
    # repo2docker installs requirements.txt; the default URL above needs nbgitpuller's /git-pull in the image
    pins = re.findall(r"(?im)^\s*nbgitpuller\s*==\s*([\w.]+)", (ROOT / "requirements.txt").read_text(encoding="utf-8"))
    assert pins, ("requirements.txt (what repo2docker installs into the class's image) must pin nbgitpuller: "
                  "singleuser.defaultUrl in deploy/z2jh/config.yaml pulls the course with it")
