"""Render docs/configuration.md: the site file's keys and every configurable trait condorhub declares.

The reference is generated, never written by hand, from the two places that own the facts: the site file's
pydantic schema (field descriptions, ``condorhub config schema``) and the traits' ``help`` (kubespawner renders
its traits into its docs the same way). tests/test_docs_reference.py fails when the committed file differs
from what this script renders, so the reference cannot drift from the code.

    python docs/render_config_reference.py            # rewrite docs/configuration.md
    python docs/render_config_reference.py --check    # exit 1 if it is out of date

Not packaged: it documents the package, it is no part of it.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import json
import sys
from pathlib import Path
from typing import Any

OUTPUT = Path(__file__).resolve().parent / "configuration.md"

# (module, class) of every configurable condorhub defines, in the order a reader meets them: login, the
# spawn form, the spawners, the HTCondor queue they share, then what runs inside a user's server.
CONFIGURABLES = [
    ("condorhub.auth.ldap", "CondorhubLDAPAuthenticator"),
    ("condorhub.spawner.profiles", "ProfileSpawner"),
    ("condorhub.spawner.loginnode", "LoginNodeSpawner"),
    ("condorhub.spawner.condor.spawner", "HTCondorSpawner"),
    ("condorhub.spawner.condor.queue", "HTCondorQueue"),
    ("condorhub.spawner.condor.pool_status", "PoolStatus"),
    ("condorhub.spawner.condor.credentials", "UserCredentials"),
    ("condorhub.lab.app", "CondorhubLab"),
]


def _cell(text: Any) -> str:
    """Text that fits in one Markdown table cell."""
    return " ".join(str(text).split()).replace("|", "\\|")


# --------------------------------------------------------------------------------------------- site file


def _resolve(schema: dict, defs: dict) -> dict:
    ref = schema.get("$ref")
    return defs[ref.rsplit("/", 1)[-1]] if ref else schema


def _type_name(schema: dict, defs: dict) -> str:
    if "x-condorhub-kind" in schema:  # the schema's own types (a duration, a memory size), named as such
        return str(schema["x-condorhub-kind"])
    if "$ref" in schema:
        target = _resolve(schema, defs)
        if "enum" in target:
            return " \\| ".join(f"`{v}`" for v in target["enum"])
        return "section"
    if "const" in schema:
        return f"`{schema['const']}`"
    if "enum" in schema:
        return " \\| ".join(f"`{v}`" for v in schema["enum"])
    for union in ("anyOf", "oneOf"):
        if union in schema:
            return " or ".join(_type_name(s, defs) for s in schema[union])
    kind = schema.get("type", "any")
    if kind == "array":
        return f"list of {_type_name(schema.get('items', {}), defs)}"
    if kind == "object" and isinstance(schema.get("additionalProperties"), dict):
        return f"map of {_type_name(schema['additionalProperties'], defs)}"
    if schema.get("format"):
        return f"{kind} ({schema['format']})"
    return kind


def _objects(schemas: list[dict], defs: dict) -> list[dict]:
    """The object models among schemas (``$ref``s to a section), or [] when any is something else."""
    models = [_resolve(s, defs) for s in schemas if s.get("type") != "null"]
    if models and all(m.get("type") == "object" and "properties" in m for m in models):
        return models
    return []


def _site_rows(
    model: dict, defs: dict, prefix: str, rows: list[tuple[str, str, str, str]], sections: list[tuple[str, str, dict]]
) -> None:
    """Rows (key, type, default, description) for the model's plain keys; its sections are queued."""
    required = set(model.get("required", []))
    for key, prop in model.get("properties", {}).items():
        path = f"{prefix}{key}"
        # A section, or an optional one (anyOf: [section, null]).
        single = _objects(prop.get("anyOf", [prop]), defs)
        if len(single) == 1:
            optional = "" if key in required else " (optional)"
            sections.append((path + optional, prop.get("description") or single[0].get("description", ""), single[0]))
            continue
        # A list of sections, maybe of several kinds (the profiles).
        items = prop.get("items", {})
        variants = _objects(items.get("oneOf") or items.get("anyOf") or [items], defs) if items else []
        if prop.get("type") == "array" and variants:
            rows.append((path, "list of sections", _default(prop, key in required), prop.get("description", "")))
            for sub in variants:
                kind = sub.get("properties", {}).get("kind", {}).get("const")
                label = f"{path}[]" + (f" (kind: {kind})" if kind else "")
                sections.append((label, sub.get("description", ""), sub))
            continue
        rows.append((path, _type_name(prop, defs), _default(prop, key in required), prop.get("description", "")))


def _default(prop: dict, required: bool) -> str:
    if required:
        return "required"
    if "default" not in prop:
        return ""
    return f"`{json.dumps(prop['default'])}`"


def _render_section(lines: list[str], title: str, description: str, model: dict, defs: dict) -> None:
    """The section's table, then each of its sections right after it (depth first, as in the file)."""
    rows: list[tuple[str, str, str, str]] = []
    nested: list[tuple[str, str, dict]] = []
    prefix = "" if title == "(top level)" else title.split(" ")[0] + "."
    _site_rows(model, defs, prefix, rows, nested)
    lines += [
        f"### `{title.split(' ')[0]}`{title[len(title.split(' ')[0]) :]}"
        if title != "(top level)"
        else "### Top level",
        "",
    ]
    if description:
        lines += [_cell(description), ""]
    if rows:
        lines += ["| key | type | default | description |", "| --- | --- | --- | --- |"]
        lines += [f"| `{k}` | {t} | {_cell(d)} | {_cell(h)} |" for k, t, d, h in rows]
        lines.append("")
    for sub_title, sub_description, sub_model in nested:
        _render_section(lines, sub_title, sub_description, sub_model, defs)


def render_site() -> list[str]:
    from condorhub.schema import SiteConfig

    schema = SiteConfig.model_json_schema()
    defs = schema.get("$defs", {})
    lines = [
        "## Site file (`/etc/condorhub/site.yaml`)",
        "",
        "Every key the site file accepts, from its schema (`condorhub config schema` prints it as JSON "
        "Schema; `condorhub config example` prints a commented example). Unknown keys are errors.",
        "",
    ]
    _render_section(lines, "(top level)", schema.get("description", ""), schema, defs)
    return lines


# ------------------------------------------------------------------------------------------------ traits


def _own_traits(cls: type) -> dict:
    """Configurable traits condorhub itself declares (or redeclares) on cls or its condorhub bases."""
    return {
        name: trait
        for name, trait in sorted(cls.class_traits(config=True).items())
        if getattr(trait.this_class, "__module__", "").startswith("condorhub")
    }


def _trait_type(trait: Any) -> str:
    name = type(trait).__name__
    inner = getattr(trait, "_trait", None)
    if inner is not None:
        return f"{name}({type(inner).__name__})"
    if name == "Union":
        return " or ".join(type(t).__name__ for t in trait.trait_types)
    if name in ("Enum", "CaselessStrEnum"):
        return f"{name}({', '.join(map(repr, trait.values))})"
    return name


def render_traits() -> list[str]:
    lines = [
        "## Traits",
        "",
        "The site file sets most of these (see `hub_config/traits.py` for the mapping); a site can set any "
        "of them directly in a JupyterHub or jupyter-server config file, e.g. "
        "`c.HTCondorSpawner.server_start_timeout = 600`. Only traits condorhub declares are listed; inherited "
        "ones are documented by JupyterHub, batchspawner, ldapauthenticator and jupyter-server.",
        "",
    ]
    for module_name, class_name in CONFIGURABLES:
        cls = getattr(importlib.import_module(module_name), class_name)
        doc = inspect.getdoc(cls) or ""
        lines += [f"### `{class_name}`", "", f"`{module_name}.{class_name}`", ""]
        if doc:
            lines += [doc.split("\n\n")[0].strip(), ""]
        for name, trait in _own_traits(cls).items():
            default = trait.default_value_repr()
            lines += [f"#### `{class_name}.{name}`", "", f"{_trait_type(trait)}. Default: `{default}`", ""]
            help_text = inspect.cleandoc(trait.help or "").strip()
            lines += [help_text or "(no help text)", ""]
    return lines


def render() -> str:
    lines = [
        "# Configuration reference",
        "",
        "<!-- Generated by docs/render_config_reference.py from the schema and the traits' help; do not edit. "
        "tests/test_docs_reference.py fails when this file is out of date. -->",
        "",
    ]
    lines += render_site() + render_traits()
    return "\n".join(lines).rstrip() + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if docs/configuration.md is out of date")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        if not OUTPUT.exists() or OUTPUT.read_text() != text:
            print(f"{OUTPUT} is out of date: run python docs/render_config_reference.py", file=sys.stderr)
            return 1
        return 0
    OUTPUT.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
