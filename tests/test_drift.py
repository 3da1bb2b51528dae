"""Each fact has one owner; these tests fail when a copy that cannot share code with it disagrees.

In the style of zero-to-jupyterhub's schema checks: the site file's schema (condorhub.schema) owns the roles
and the settings' defaults, a role's defaults/main.yml owns its variables' defaults, and wherever a layer
must restate a fact (Ansible, TOSCA, the site example) a test compares the copy with its owner.

- trait defaults == schema defaults: a hub configured in Python behaves as one configured by a site file;
- argument_specs.yml documents every default of defaults/main.yml and restates none of them;
- TOSCA ``valid_values`` and every role named in inventories, role defaults and templates == the schema's roles;
- role → accounting group maps name exactly the quota groups the htcondor role gets from the same source;
- the worker venv path: the schema's default, the worker_env role's, the hub's rendered site file and the
  example agree, and the literal appears nowhere else.
"""

from __future__ import annotations

import re
from pathlib import Path

import jinja2
import pytest
import yaml
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

from condorhub.auth import ROLES, CondorhubLDAPAuthenticator
from condorhub.schema import (
    GroupSettings,
    HTCondorSettings,
    HubSettings,
    LdapSettings,
    Role,
    ThrottleSettings,
    default_of,
)
from condorhub.spawner.condor.queue import HTCondorQueue
from condorhub.spawner.condor.spawner import HTCondorSpawner

REPO = Path(__file__).resolve().parent.parent
ROLES_DIR = REPO / "ansible" / "roles"
INVENTORIES = sorted((REPO / "ansible" / "inventories").glob("*/group_vars/all.yml"))
TOSCA_FILES = sorted((REPO / "tosca").glob("*.yaml")) + sorted((REPO / "tosca" / "types").glob("condorhub_*.yaml"))
EXAMPLE = REPO / "hub_config" / "site.example.yaml"
SCHEMA_ROLES = [role.value for role in Role]


def load(path: Path):
    return yaml.safe_load(path.read_text())


def role_defaults(role: Path) -> dict:
    path = role / "defaults" / "main.yml"
    return (load(path) or {}) if path.exists() else {}


def role_specs(role: Path) -> dict:
    return load(role / "meta" / "argument_specs.yml")["argument_specs"]


ANSIBLE_ROLES = sorted(p for p in ROLES_DIR.iterdir() if (p / "meta" / "argument_specs.yml").exists())


def uncommented_example() -> dict:
    """The example site file with its commented-out blocks (# BEGIN ... # END) switched on."""
    out, inside = [], False
    for line in EXAMPLE.read_text().splitlines():
        if line.startswith("# BEGIN "):
            inside = True
        elif line.startswith("# END "):
            inside = False
        else:
            out.append(line[2:] if inside and line.startswith("# ") else line)
    return yaml.safe_load("\n".join(out))


def render(template: str, **variables) -> str:
    """A role default as Ansible templates it (the filters used here are Jinja's own)."""
    return jinja2.Environment(undefined=jinja2.StrictUndefined).from_string(template).render(**variables)


# ------------------------------------------------------------------------- trait defaults


def _days(seconds: float) -> float:
    return seconds / 86400


#: (configurable class, trait) ← (schema model, field, how the site value becomes the trait's):
#: every trait condorhub owns whose value traits.apply_site sets from a schema field with a default.
TRAIT_DEFAULTS = [
    (CondorhubLDAPAuthenticator, "connect_timeout", LdapSettings, "connect_timeout", float),
    (CondorhubLDAPAuthenticator, "receive_timeout", LdapSettings, "receive_timeout", float),
    (CondorhubLDAPAuthenticator, "state_min_free", HubSettings, "state_min_free", int),
    (CondorhubLDAPAuthenticator, "valid_username_regex", LdapSettings, "valid_username_regex", str),
    (CondorhubLDAPAuthenticator, "group_membership_attribute", GroupSettings, "membership_attribute", str),
    (CondorhubLDAPAuthenticator, "throttle_free_failures", ThrottleSettings, "free_failures", int),
    (CondorhubLDAPAuthenticator, "throttle_free_failures_per_address", ThrottleSettings,
     "free_failures_per_address", int),
    (CondorhubLDAPAuthenticator, "throttle_known_browser_days", ThrottleSettings, "known_browser_lifetime", _days),
    (CondorhubLDAPAuthenticator, "throttle_max_delay_seconds", ThrottleSettings, "max_delay", float),
    (CondorhubLDAPAuthenticator, "throttle_window_seconds", ThrottleSettings, "window", float),
    (HTCondorSpawner, "server_venv", HTCondorSettings, "server_venv", str),
    (HTCondorSpawner, "queue_timeout", HTCondorSettings, "queue_timeout", float),
    (HTCondorSpawner, "server_start_timeout", HTCondorSettings, "server_start_timeout", float),
    (HTCondorQueue, "poll_interval", HTCondorSettings, "poll_interval", float),
    (HTCondorQueue, "query_timeout", HTCondorSettings, "query_timeout", float),
    (HTCondorQueue, "unknown_grace", HTCondorSettings, "unknown_grace", float),
]


@pytest.mark.parametrize(
    ("cls", "trait", "model", "field", "convert"),
    TRAIT_DEFAULTS,
    ids=[f"{c.__name__}.{t}" for c, t, *_ in TRAIT_DEFAULTS],
)
def test_trait_default_is_the_schema_default(cls, trait, model, field, convert):
    trait_default = getattr(cls, trait).default_value
    schema_default = convert(default_of(model, field))
    assert trait_default == schema_default, (
        f"{cls.__name__}.{trait} defaults to {trait_default!r}, the site file's {model.__name__}.{field} to "
        f"{schema_default!r}: take the trait's default from the schema (condorhub.schema.default_of)"
    )


def test_every_schema_default_a_trait_restates_is_checked():
    """A condorhub trait whose default equals a schema default but is not in TRAIT_DEFAULTS is a new copy."""
    checked = {(c, t) for c, t, *_ in TRAIT_DEFAULTS}
    fields = {(m, f) for *_, m, f, _ in TRAIT_DEFAULTS}
    assert len(fields) == len(TRAIT_DEFAULTS)
    for cls in (CondorhubLDAPAuthenticator, HTCondorSpawner, HTCondorQueue):
        for name, trait in cls.class_own_traits(config=True).items():
            if (cls, name) in checked:
                continue
            for model in (LdapSettings, GroupSettings, ThrottleSettings, HTCondorSettings):
                if name in model.model_fields and trait.default_value == default_of(model, name):
                    pytest.fail(f"{cls.__name__}.{name} restates {model.__name__}.{name}: add it to TRAIT_DEFAULTS")


# ------------------------------------------------------------------------- argument_specs vs defaults


@pytest.mark.parametrize("role", ANSIBLE_ROLES, ids=lambda p: p.name)
def test_argument_specs_document_the_role_defaults_without_restating_them(role):
    """defaults/main.yml owns the defaults; argument_specs.yml documents and types every one of them.

    Ansible never takes a role variable's default from the spec (it always comes from the role's defaults),
    so a spec ``default:`` is only a copy, and copies drift (jupyterhub_ldap_group_base did).
    """
    defaults = role_defaults(role)
    specs = role_specs(role)
    main = specs["main"]["options"]
    restated = sorted(
        f"{entry}.{name}"
        for entry, spec in specs.items()
        for name, option in (spec.get("options") or {}).items()
        if name in defaults and "default" in option
    )
    assert not restated, f"{role.name}: argument_specs.yml restates defaults/main.yml for {restated}; drop `default:`"
    undocumented = sorted(set(defaults) - set(main))
    assert not undocumented, f"{role.name}: defaults/main.yml sets {undocumented}, not in argument_specs.yml (main)"
    no_default = sorted(name for name, option in main.items() if not option.get("required") and name not in defaults)
    assert not no_default, f"{role.name}: optional {no_default} have no default in defaults/main.yml"
    # Required options may have a default that names an inventory variable (`"{{ condorhub_wheel }}"`):
    # the inventory must set that one. A plain value there would make `required` meaningless.
    needless = sorted(
        name for name, option in main.items()
        if option.get("required") and name in defaults and "{{" not in yaml.safe_dump(defaults[name])
    )
    assert not needless, f"{role.name}: {needless} are required although defaults/main.yml gives a value"
    if "validate" in specs:  # site.yml's first play checks every role's settings with this entry point
        assert specs["validate"]["options"] == main, f"{role.name}: the validate entry point differs from main"


@pytest.mark.parametrize("role", ANSIBLE_ROLES, ids=lambda p: p.name)
def test_literal_role_defaults_satisfy_their_spec(role):
    """The defaults that are plain values (no template) pass the spec's types and choices."""
    defaults = role_defaults(role)
    main = role_specs(role)["main"]["options"]
    literal = {k: v for k, v in defaults.items() if "{{" not in yaml.safe_dump(v)}
    options = {k: {key: val for key, val in main[k].items() if key != "description"} for k in literal}
    result = ArgumentSpecValidator(options).validate(dict(literal))
    assert not result.error_messages, f"{role.name}: {result.error_messages}"


# ------------------------------------------------------------------------- roles


def _walk(node, path=()):
    if isinstance(node, dict):
        for key, value in node.items():
            yield path + (key,), value
            yield from _walk(value, path + (key,))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _walk(value, path + (i,))


def test_the_authenticator_uses_the_schema_roles():
    assert list(ROLES) == SCHEMA_ROLES


def test_tosca_valid_values_of_roles_are_the_schema_roles():
    found = []
    for path in TOSCA_FILES:
        for keys, value in _walk(load(path)):
            if keys[-1] == "role_groups" and isinstance(value, dict) and "entry_schema" in value:
                constraints = value["entry_schema"].get("constraints") or []
                valid = [c["valid_values"] for c in constraints if "valid_values" in c]
                assert valid == [SCHEMA_ROLES], (
                    f"{path.relative_to(REPO)} {'.'.join(map(str, keys))}: valid_values {valid} are not the "
                    f"schema's roles {SCHEMA_ROLES} (condorhub.schema.Role)"
                )
                found.append((path.name, keys))
    # Both templates' inputs and the Hub and AllInOne node types constrain role_groups.
    assert len(found) >= 4, found


def _plain_map(value) -> bool:
    """A mapping written out (not a TOSCA property definition or a get_input)."""
    return (isinstance(value, dict) and bool(value) and all(isinstance(v, str) for v in value.values())
            and not {"type", "get_input", "get_property", "get_attribute"} & set(value))


def _role_mentions() -> list[tuple[str, str]]:
    """(where, role) for every role an inventory, role default or TOSCA file names."""
    mentions = []
    sources = [*INVENTORIES, *(p / "defaults" / "main.yml" for p in ANSIBLE_ROLES), *TOSCA_FILES]
    for path in sources:
        if not path.exists():
            continue
        for keys, value in _walk(load(path)):
            where = f"{path.relative_to(REPO)}:{'.'.join(map(str, keys))}"
            if keys[-1] in ("roles",) and isinstance(value, list):
                mentions += [(where, role) for role in value]
            elif str(keys[-1]).endswith("role_groups") and _plain_map(value):
                mentions += [(where, role) for role in value.values()]
            elif str(keys[-1]).endswith("accounting_groups") and _plain_map(value):
                mentions += [(where, role) for role in value]
            elif keys[-1] == "default" and len(keys) > 1 and str(keys[-2]).endswith("role_groups") and _plain_map(value):
                mentions += [(where, role) for role in value.values()]
    return mentions


def test_every_role_named_in_deployment_files_is_a_schema_role():
    mentions = _role_mentions()
    assert len(mentions) > 20  # the inventories, the jupyterhub role's profiles, the TOSCA defaults
    unknown = [(where, role) for where, role in mentions if role not in SCHEMA_ROLES]
    assert not unknown, f"not condorhub roles (condorhub.schema.Role): {unknown}"


# ------------------------------------------------------------------------- accounting groups


def _group_maps() -> list[tuple[str, dict, dict]]:
    """(source, role → accounting group, accounting group → quota) for each deployment description."""
    maps = []
    for path in INVENTORIES:
        inventory = load(path)
        maps.append((str(path.relative_to(REPO)), inventory.get("condorhub_accounting_groups") or {},
                     inventory.get("condorhub_accounting_group_quotas") or {}))
    cluster = load(REPO / "tosca" / "condorhub-cluster.yaml")["topology_template"]["node_templates"]
    hub = next(n["properties"] for n in cluster.values() if n["type"] == "tosca.nodes.condorhub.Hub")
    cm = next(n["properties"] for n in cluster.values() if n["type"] == "tosca.nodes.condorhub.CentralManager")
    maps.append(("tosca/condorhub-cluster.yaml", hub["accounting_groups"], cm["group_quotas"]))
    from devstack import run  # the demo's pool (./setup.sh demo)

    maps.append(("devstack/run.py", run.ACCOUNTING_GROUPS, run.GROUP_QUOTAS))
    return maps


def test_the_roles_read_the_inventory_maps_that_are_compared():
    """The jupyterhub role's role → group map and the htcondor role's quotas come from the same inventory."""
    jupyterhub = role_defaults(ROLES_DIR / "jupyterhub")["jupyterhub_accounting_groups"]
    htcondor = role_defaults(ROLES_DIR / "htcondor")["htcondor_group_quotas"]
    assert "condorhub_accounting_groups" in jupyterhub
    assert "condorhub_accounting_group_quotas" in htcondor
    # and the TOSCA types hand the templates' maps to those role variables
    types = (REPO / "tosca" / "types" / "condorhub_types.yaml").read_text()
    assert re.search(r"condorhub_accounting_groups: \{ get_property: \[SELF, accounting_groups\] \}", types)
    assert re.search(r"condorhub_accounting_group_quotas: \{ get_property: \[SELF, group_quotas\] \}", types)


@pytest.mark.parametrize("source,groups,quotas", _group_maps(), ids=[m[0] for m in _group_maps()])
def test_accounting_groups_are_the_htcondor_quota_groups(source, groups, quotas):
    """A role charged to a group the negotiator has no quota for competes outside the fair share; a quota
    group no role is charged to holds a share of the pool nobody can use (until surplus)."""
    assert groups, f"{source}: no accounting groups"
    assert set(groups) <= set(SCHEMA_ROLES), f"{source}: {sorted(set(groups) - set(SCHEMA_ROLES))} are not roles"
    assert set(groups.values()) == set(quotas), (
        f"{source}: roles are charged to {sorted(set(groups.values()))}, the htcondor role gets quotas for "
        f"{sorted(quotas)}"
    )


def test_the_site_example_charges_roles_to_the_shipped_quota_groups():
    example = uncommented_example()["htcondor"]["accounting_groups"]
    assert set(example) <= set(SCHEMA_ROLES)
    for source, _, quotas in _group_maps():
        assert set(example.values()) == set(quotas), f"site.example.yaml's accounting groups vs {source}"


def test_the_schema_default_charges_no_group():
    """The schema's default is no groups (a pool without group quotas); a default map would need quotas
    that the htcondor role does not configure by default."""
    assert default_of(HTCondorSettings, "accounting_groups") == {}
    assert render(role_defaults(ROLES_DIR / "htcondor")["htcondor_group_quotas"]) == "{}"


# ------------------------------------------------------------------------- the worker venv path


WORKER_VENV = str(default_of(HTCondorSettings, "server_venv"))


def test_the_worker_env_role_installs_where_the_schema_points_the_spawner():
    worker_env_path = role_defaults(ROLES_DIR / "worker_env")["worker_env_path"]
    assert render(worker_env_path) == WORKER_VENV
    # One inventory variable moves both sides together.
    assert render(worker_env_path, condorhub_worker_env="/srv/venv") == "/srv/venv"
    hub_side = role_defaults(ROLES_DIR / "jupyterhub")["jupyterhub_worker_env"]
    assert render(hub_side) == ""  # the site file leaves htcondor.worker_env out: the schema's default
    assert render(hub_side, condorhub_worker_env="/srv/venv") == "/srv/venv"


def test_the_site_example_shows_the_schema_worker_env():
    assert uncommented_example()["htcondor"]["server_venv"] == WORKER_VENV


#: Where the literal may stand: its owners (schema, worker_env role), the example that documents it
#: (checked above), the generated configuration reference (tests/test_docs_reference.py) and tests.
WORKER_VENV_OWNERS = {
    "hub_config/schema.py",
    "ansible/roles/worker_env/defaults/main.yml",
    "hub_config/site.example.yaml",
    "docs/configuration.md",
}
SOURCE_SUFFIXES = {".py", ".yml", ".yaml", ".j2", ".sh", ".md", ".ts", ".json", ".toml", ".cfg"}
SKIP_DIRS = {"node_modules", "tests", "build", "_built", "lib", "test-artifacts", ".git", "__pycache__"}


def test_the_worker_venv_literal_has_no_other_copy():
    copies = []
    for path in REPO.rglob("*"):
        rel = path.relative_to(REPO)
        if (not path.is_file() or path.suffix not in SOURCE_SUFFIXES or set(rel.parts) & SKIP_DIRS
                or rel.parts[0].endswith(".egg-info")):
            continue
        if WORKER_VENV in path.read_text(errors="replace") and rel.as_posix() not in WORKER_VENV_OWNERS:
            copies.append(rel.as_posix())
    assert not copies, (
        f"{WORKER_VENV} is restated in {copies}: derive it from condorhub.schema (Python) or the worker_env "
        "role's worker_env_path (Ansible)"
    )


# ------------------------------------------------------------------------- the worker's packages


def _extra_requirements(extras: dict, name: str) -> set[str]:
    """Project names an extra installs, following ``condorhub[other]`` references."""
    names = set()
    for requirement in extras[name]:
        project = re.match(r"[A-Za-z0-9_.-]+", requirement).group(0).lower()
        inner = re.match(r"condorhub\[([^\]]+)\]", requirement)
        if inner:
            for other in inner.group(1).split(","):
                names |= _extra_requirements(extras, other.strip())
        else:
            names.add(project)
    return names


def test_the_worker_env_installs_the_package_extras_with_the_xrootd_client():
    """The worker's packages are pyproject.toml's extras, not a list of the role's own (which lacked the
    XRootD client, so root:// reads failed on the nodes the roles deployed)."""
    import tomllib

    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    defaults = role_defaults(ROLES_DIR / "worker_env")
    chosen = defaults["worker_env_condorhub_extras"]
    assert chosen == ["course"]
    assert defaults["worker_env_packages"] == []
    installed = set().union(*(_extra_requirements(extras, name) for name in chosen))
    assert {"xrootd", "fsspec-xrootd", "uproot", "tensorflow"} <= installed, installed
    tasks = (ROLES_DIR / "worker_env" / "tasks" / "main.yml").read_text()
    assert "worker_env_condorhub_extras | join(',')" in tasks


def test_the_tosca_worker_defaults_are_the_worker_env_role_defaults():
    types = load(REPO / "tosca" / "types" / "condorhub_types.yaml")["node_types"]
    worker = next(t for t in types.values() if "worker_extras" in (t.get("properties") or {}))
    inputs = worker["interfaces"]["Standard"]["configure"]["inputs"]
    defaults = role_defaults(ROLES_DIR / "worker_env")
    for prop, variable in (("worker_extras", "worker_env_condorhub_extras"), ("worker_packages", "worker_env_packages")):
        assert inputs[variable] == {"get_property": ["SELF", prop]}
        assert worker["properties"][prop]["default"] == defaults[variable], f"TOSCA {prop} vs the role's {variable}"


def test_the_site_example_lists_the_schema_roles():
    """The example's comment is the first place a site looks for the roles."""
    listed = re.search(r"^# .*Roles: ([a-z, ]+)\.$", EXAMPLE.read_text(), re.MULTILINE)
    assert listed, "site.example.yaml no longer lists the roles"
    assert listed.group(1).split(", ") == SCHEMA_ROLES
