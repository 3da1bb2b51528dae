"""condorhub's TOSCA templates (tosca/): input checks, an Ansible inventory for on-prem use, an IM bundle.

OpenStack's tosca-parser reads the templates (offline: the INDIGO and condorhub types are local files) but
does not enforce input constraints: it accepts ``num_workers: 100`` against ``in_range: [1, 50]`` and only
logs a missing required input. :func:`check_inputs` does that, with messages naming input and rule.

:func:`inventory` turns a template plus inputs plus the machines' addresses into the inventory that
``ansible/site.yml`` takes. Each condorhub node type says in its metadata which inventory groups it stands
for (``condorhub_groups``); the host variables are exactly the inputs of the type's ``Standard.configure``
operation, evaluated as the Infrastructure Manager would pass them to the type's playbook in ansible/im/.
So the TOSCA path and the inventory path apply the same roles with the same variables
(tests/test_tosca_templates.py checks it).

:func:`bundle` writes one self-contained template for the IM client: the local type files inlined, the
playbook paths made absolute URLs under the given base (where the IM can download them), and with
``--inputs`` the checked input values as the inputs' defaults (the IM deploys with the defaults).
tests/test_tosca_im.py submits such bundles to a real Infrastructure Manager (Dummy cloud).

CLI::

    condorhub-deploy tosca check TEMPLATE [--inputs FILE]
    condorhub-deploy tosca inventory TEMPLATE --inputs FILE --host NODE=ADDR[,ADDR...] ... [--public NODE=ADDR]
    condorhub-deploy tosca bundle TEMPLATE --artifacts-url URL [--inputs FILE] [-o FILE]
"""

from __future__ import annotations

import argparse
import copy
import logging
import re
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

__all__ = ["ToscaError", "bundle", "check_inputs", "inventory", "load", "main"]

# Where tosca/types/indigo_custom_types.yaml's playbooks live; copies are vendored in tosca/types/artifacts/.
INDIGO_ARTIFACTS = "https://raw.githubusercontent.com/indigo-dc/tosca-types/master/artifacts/"

SIZE_UNITS = {
    "B": 1,
    "KB": 1000,
    "KIB": 1024,
    "MB": 1000**2,
    "MIB": 1024**2,
    "GB": 1000**3,
    "GIB": 1024**3,
    "TB": 1000**4,
    "TIB": 1024**4,
}


class ToscaError(ValueError):
    """A template or its inputs are not acceptable; the message says which and why."""


def _read(path: Path) -> dict:
    try:
        data = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as err:
        raise ToscaError(f"{path}: {err}") from None
    if not isinstance(data, dict):
        raise ToscaError(f"{path}: not a TOSCA document")
    return data


def _size(value: Any) -> float:
    match = re.fullmatch(r"\s*([\d.]+)\s*([A-Za-z]+)\s*", str(value))
    if not match or match.group(2).upper() not in SIZE_UNITS:
        raise ValueError(f"{value!r} is not a size like 8 GB")
    return float(match.group(1)) * SIZE_UNITS[match.group(2).upper()]


def _typed(name: str, spec: dict, value: Any) -> Any:
    kind = spec.get("type", "string")
    ok = {
        "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
        "float": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
        "boolean": lambda v: isinstance(v, bool),
        "string": lambda v: isinstance(v, str),
        "list": lambda v: isinstance(v, list),
        "map": lambda v: isinstance(v, dict),
        "scalar-unit.size": lambda v: isinstance(v, str),
    }.get(kind, lambda v: True)
    if not ok(value):
        raise ToscaError(f"input {name}: {value!r} is not of type {kind}")
    if kind == "scalar-unit.size":
        try:
            _size(value)
        except ValueError as err:
            raise ToscaError(f"input {name}: {err}") from None
    return value


def _constraint_errors(name: str, kind: str, value: Any, constraints: Sequence[dict]) -> list[str]:
    def num(v):
        return _size(v) if kind == "scalar-unit.size" else v

    errors = []
    for constraint in constraints or []:
        ((op, arg),) = constraint.items()
        if op == "valid_values" and value not in arg:
            errors.append(f"input {name}: {value!r} is not one of {arg}")
        elif op == "in_range" and not num(arg[0]) <= num(value) <= num(arg[1]):
            errors.append(f"input {name}: {value!r} is not in the range {arg[0]} to {arg[1]}")
        elif op == "greater_or_equal" and not num(value) >= num(arg):
            errors.append(f"input {name}: {value!r} is less than {arg}")
        elif op == "greater_than" and not num(value) > num(arg):
            errors.append(f"input {name}: {value!r} must be more than {arg}")
        elif op == "less_or_equal" and not num(value) <= num(arg):
            errors.append(f"input {name}: {value!r} is more than {arg}")
        elif op == "less_than" and not num(value) < num(arg):
            errors.append(f"input {name}: {value!r} must be less than {arg}")
        elif op == "equal" and value != arg:
            errors.append(f"input {name}: {value!r} must be {arg!r}")
        elif op == "min_length" and len(value) < arg:
            errors.append(f"input {name}: needs at least {arg} characters (or entries), has {len(value)}")
        elif op == "max_length" and len(value) > arg:
            errors.append(f"input {name}: at most {arg} characters (or entries), has {len(value)}")
        elif op == "length" and len(value) != arg:
            errors.append(f"input {name}: must have length {arg}, has {len(value)}")
        elif op == "pattern" and not re.fullmatch(arg, str(value)):
            errors.append(f"input {name}: {value!r} does not match {arg}")
    return errors


def check_inputs(template: str | Path, inputs: Mapping[str, Any] | None) -> dict[str, Any]:
    """The template's inputs with defaults filled in; raises ToscaError listing every violation:
    unknown inputs, missing required ones, wrong types, and each constraint (valid_values, in_range,
    greater_or_equal, min_length, pattern, ...)."""
    declared = _read(Path(template)).get("topology_template", {}).get("inputs", {}) or {}
    inputs = dict(inputs or {})
    errors = [
        f"input {name}: the template has no such input (it has: {', '.join(sorted(declared))})"
        for name in sorted(set(inputs) - set(declared))
    ]
    values = {}
    for name, spec in declared.items():
        if name in inputs:
            value = inputs[name]
        elif "default" in spec:
            value = spec["default"]
        else:
            if spec.get("required", True):
                errors.append(f"input {name}: required ({spec.get('description', 'no default')})")
            continue
        try:
            value = _typed(name, spec, value)
        except ToscaError as err:
            errors.append(str(err))
            continue
        errors += _constraint_errors(name, spec.get("type", "string"), value, spec.get("constraints"))
        entry = spec.get("entry_schema") or {}
        if entry.get("constraints"):
            items = value.values() if isinstance(value, dict) else value
            for item in items:
                errors += _constraint_errors(f"{name} entry", entry.get("type", "string"), item, entry["constraints"])
        values[name] = value
    if errors:
        raise ToscaError(f"{template}: " + "; ".join(errors))
    return values


def load(template: str | Path, inputs: Mapping[str, Any] | None = None):
    """Check the inputs (see :func:`check_inputs`), then parse and validate the template with tosca-parser."""
    values = check_inputs(template, inputs)
    # tosca-parser logs every "Minor version assumed" at WARNING; keep the command's output readable.
    logging.getLogger("tosca").setLevel(logging.ERROR)
    from toscaparser.common.exception import ExceptionCollector, TOSCAException
    from toscaparser.tosca_template import ToscaTemplate

    try:
        return ToscaTemplate(str(template), parsed_params=values), values
    except (TOSCAException, ValueError) as err:
        raise ToscaError(f"{template}: tosca-parser: {err}") from None
    finally:
        ExceptionCollector.stop()


# ------------------------------------------------------------------------------------- inventory


def _condorhub_nodes(tosca) -> list:
    return [n for n in tosca.nodetemplates if n.type.startswith("tosca.nodes.condorhub.")]


def _host_of(node) -> str:
    for req in node.requirements:
        if "host" in req:
            target = req["host"]
            return target if isinstance(target, str) else target.get("node")
    raise ToscaError(f"node {node.name} has no host requirement")


def _metadata(node) -> dict:
    typedef = node.type_definition
    while typedef is not None:
        meta = (typedef.defs or {}).get("metadata")
        if meta and "condorhub_groups" in meta:
            return meta
        typedef = typedef.parent_type
    raise ToscaError(f"type {node.type} has no condorhub_groups metadata")


def operation_inputs(
    tosca, node, addresses: Mapping[str, Sequence[str]], public: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """What Standard.configure of ``node`` passes to its playbook: the operation's inputs evaluated (get_input
    from the inputs, get_property of SELF, get_attribute of a compute node's addresses from ``addresses``)."""
    public = public or {}
    ops = node.type_definition.get_value("interfaces", parent=True) or {}
    raw_inputs = ((ops.get("Standard") or {}).get("configure") or {}).get("inputs") or {}

    def evaluate(value: Any) -> Any:
        if isinstance(value, dict) and len(value) == 1:
            ((fn, args),) = value.items()
            if fn == "get_input":
                return tosca.parsed_params[args] if args in tosca.parsed_params else _input_default(tosca, args)
            if fn == "get_property":
                owner, prop = args[0], args[1]
                target = node if owner == "SELF" else next(n for n in tosca.nodetemplates if n.name == owner)
                return evaluate(_property(target, prop))
            if fn == "get_attribute":
                compute, attr = args[0], args[1]
                index = args[2] if len(args) > 2 else None
                if attr == "public_address":
                    addrs = [public[compute]] if compute in public else list(addresses.get(compute, []))
                elif attr == "private_address":
                    addrs = list(addresses.get(compute, []))
                else:
                    raise ToscaError(f"cannot evaluate get_attribute {args} without a cloud")
                if not addrs:
                    raise ToscaError(f"no address given for {compute} (use --host {compute}=ADDRESS)")
                return addrs[index] if index is not None else addrs
            if fn == "concat":
                return "".join(str(evaluate(part)) for part in args)
        if isinstance(value, dict):
            return {k: evaluate(v) for k, v in value.items()}
        if isinstance(value, list):
            return [evaluate(v) for v in value]
        return value

    return {name: evaluate(value) for name, value in raw_inputs.items()}


def _input_default(tosca, name: str) -> Any:
    for inp in tosca.inputs:
        if inp.name == name:
            return inp.default
    raise ToscaError(f"unknown input {name}")


def _property(node, name: str) -> Any:
    raw = node.entity_tpl.get("properties") or {}
    if name in raw:
        return raw[name]
    props = node.type_definition.get_properties_def()
    if name in props:
        return props[name].default
    raise ToscaError(f"node {node.name} has no property {name}")


def _scalable_count(tosca, compute: str) -> int:
    node = next(n for n in tosca.nodetemplates if n.name == compute)
    scalable = ((node.entity_tpl.get("capabilities") or {}).get("scalable") or {}).get("properties") or {}
    count = scalable.get("count", 1)
    if isinstance(count, dict) and "get_input" in count:
        count = tosca.parsed_params.get(count["get_input"], _input_default(tosca, count["get_input"]))
    return int(count)


def inventory(
    template: str | Path,
    inputs: Mapping[str, Any],
    addresses: Mapping[str, Sequence[str]],
    public: Mapping[str, str] | None = None,
) -> dict:
    """The Ansible inventory (YAML-able dict) for ``ansible/site.yml`` equivalent to deploying ``template``.

    ``addresses``: compute node name → the addresses of its machine(s) (a scalable node needs as many as its
    count). Hosts are named ``<node>-<n>`` and reached at those addresses (ansible_host).
    """
    tosca, _ = load(template, inputs)
    groups: dict[str, dict] = {}
    hostvars: dict[str, dict] = {}
    nfs_server_nodes = [n for n in _condorhub_nodes(tosca) if "nfs_server" in _metadata(n)["condorhub_groups"].split()]
    computes = {n.name for n in tosca.nodetemplates if n.type == "tosca.nodes.indigo.Compute"}
    unknown = sorted(set(addresses) - computes)
    if unknown:
        raise ToscaError(
            f"--host names {', '.join(unknown)}, which the template does not have "
            f"(its machines: {', '.join(sorted(computes))})"
        )
    for node in _condorhub_nodes(tosca):
        compute = _host_of(node)
        count = _scalable_count(tosca, compute)
        addrs = list(addresses.get(compute, []))
        if len(addrs) != count:
            raise ToscaError(
                f"{compute} has {count} machine(s) with these inputs, but {len(addrs)} address(es) "
                f"were given (--host {compute}=ADDR1,ADDR2,...)"
            )
        variables = operation_inputs(tosca, node, addresses, public)
        names = _metadata(node)["condorhub_groups"].split()
        if nfs_server_nodes and variables.get("condorhub_nfs_server") and "nfs_server" not in names:
            names = [*names, "nfs_client"]
        for i, addr in enumerate(addrs):
            host = f"{node.name}-{i + 1}" if count > 1 else node.name
            hostvars[host] = {"ansible_host": addr, **variables}
            for group in names:
                groups.setdefault(group, {"hosts": {}})["hosts"][host] = None
    return {"all": {"hosts": hostvars, "children": groups}}


# ------------------------------------------------------------------------------------- bundle


def bundle(template: str | Path, artifacts_url: str, inputs: Mapping[str, Any] | None = None) -> dict:
    """One self-contained template for the IM: imported local type files inlined (recursively), relative
    playbook paths turned into URLs under ``artifacts_url`` (the repository at the release's tag), and so are
    the INDIGO playbooks vendored in tosca/types/artifacts/ (the IM then downloads nothing from GitHub).

    With ``inputs``, they are checked (:func:`check_inputs`, which the IM does not do: it takes
    ``num_workers: 100`` against ``in_range: [1, 50]``) and written as the inputs' ``default``: the IM
    deploys a template with its inputs' defaults, which is how the IM dashboard passes what users chose."""
    template = Path(template).resolve()
    repo = template.parent.parent
    doc = _read(template)
    if inputs is not None:
        for name, value in check_inputs(template, inputs).items():
            doc["topology_template"]["inputs"][name]["default"] = value
    merged: dict[str, dict] = {}

    def absorb(path: Path) -> None:
        types = _read(path)
        for imp in types.get("imports") or []:
            ref = next(iter(imp.values())) if isinstance(imp, dict) else imp
            if "://" not in str(ref):
                absorb((path.parent / ref).resolve())
        for section in (
            "data_types",
            "artifact_types",
            "capability_types",
            "relationship_types",
            "interface_types",
            "node_types",
            "policy_types",
            "group_types",
        ):
            for name, definition in (types.get(section) or {}).items():
                definition = copy.deepcopy(definition)
                if section == "node_types":
                    for ops in (definition.get("interfaces") or {}).values():
                        for op in ops.values():
                            impl = op.get("implementation") if isinstance(op, dict) else None
                            local = None
                            if impl and "://" not in impl:
                                local = (path.parent / impl).resolve()
                            elif impl and impl.startswith(INDIGO_ARTIFACTS):
                                # the vendored copy, at the commit the vendored types come from
                                vendored = repo / "tosca" / "types" / "artifacts" / impl[len(INDIGO_ARTIFACTS) :]
                                local = vendored if vendored.is_file() else None
                            if local is not None:
                                rel = local.relative_to(repo)
                                op["implementation"] = f"{artifacts_url.rstrip('/')}/{rel.as_posix()}"
                merged.setdefault(section, {})[name] = definition

    remaining = []
    for imp in doc.get("imports") or []:
        ref = next(iter(imp.values())) if isinstance(imp, dict) else imp
        if "://" in str(ref):
            remaining.append(imp)
        else:
            absorb((template.parent / ref).resolve())
    out = {k: v for k, v in doc.items() if k != "imports"}
    if remaining:
        out["imports"] = remaining
    for section, definitions in merged.items():
        out.setdefault(section, {}).update(definitions)
    # topology_template last, as people read it
    topology = out.pop("topology_template")
    out["topology_template"] = topology
    return out


# ------------------------------------------------------------------------------------- CLI


def _pairs(values: Sequence[str], option: str) -> dict[str, list[str]]:
    out = {}
    for value in values or []:
        name, sep, addrs = value.partition("=")
        if not sep or not addrs:
            raise ToscaError(f"{option} {value!r}: write NODE=ADDRESS[,ADDRESS...]")
        out[name] = [a.strip() for a in addrs.split(",") if a.strip()]
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="condorhub-deploy tosca", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    p_check = sub.add_parser("check", help="check inputs (constraints included) and validate with tosca-parser")
    p_inv = sub.add_parser("inventory", help="the Ansible inventory for ansible/site.yml")
    for p in (p_check, p_inv):
        p.add_argument("template")
        p.add_argument("--inputs", help="YAML file with the template's inputs")
    p_inv.add_argument(
        "--host",
        action="append",
        default=[],
        metavar="NODE=ADDR[,ADDR...]",
        help="addresses of a compute node's machine(s), e.g. gpu_worker_server=10.0.0.11,10.0.0.12",
    )
    p_inv.add_argument(
        "--public",
        action="append",
        default=[],
        metavar="NODE=ADDR",
        help="public address of a compute node (default: its first address)",
    )
    p_bundle = sub.add_parser("bundle", help="a self-contained template for the IM client")
    p_bundle.add_argument("template")
    p_bundle.add_argument(
        "--artifacts-url",
        required=True,
        help="where the IM downloads ansible/im/*.yml, e.g. the repository's raw URL at a tag",
    )
    p_bundle.add_argument(
        "--inputs",
        help="YAML file with the template's inputs: checked, then written as the "
        "inputs' defaults (what the IM deploys with)",
    )
    p_bundle.add_argument("-o", "--output", help="file to write (default: standard output)")
    args = parser.parse_args(argv)
    try:
        if args.cmd == "bundle":
            inputs = _read(Path(args.inputs)) if args.inputs else None
            text = yaml.safe_dump(bundle(args.template, args.artifacts_url, inputs), sort_keys=False)
            if args.output:
                Path(args.output).write_text(text)
            else:
                sys.stdout.write(text)
            return 0
        inputs = _read(Path(args.inputs)) if args.inputs else {}
        if args.cmd == "check":
            _, values = load(args.template, inputs)
            shown = (f"{k}={v!r}" for k, v in sorted(values.items()) if "key" not in k and "password" not in k)
            print(f"{args.template}: valid; inputs: {', '.join(shown)}")
            return 0
        public = {k: v[0] for k, v in _pairs(args.public, "--public").items()}
        inv = inventory(args.template, inputs, _pairs(args.host, "--host"), public)
        sys.stdout.write(
            "# generated by condorhub-deploy tosca inventory from "
            f"{args.template}; contains the inputs' secrets: keep it private\n"
        )
        sys.stdout.write(yaml.safe_dump(inv, sort_keys=False))
        return 0
    except ToscaError as err:
        print(f"condorhub-deploy: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
