"""The TOSCA templates of tosca/: validated by OpenStack's tosca-parser offline (the INDIGO and condorhub
types are local files), input constraints checked where tosca-parser does not, and the two deployment
paths compared: the template's node types run playbooks of ansible/im/ with their operation inputs as
variables (the Infrastructure Manager's way), ``condorhub-deploy tosca inventory`` makes an inventory for
ansible/site.yml. Both must apply the same roles with the same variables to each machine, and the
generated inventory must pass every role's argument specs (a real ansible-playbook run, checks only).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from condorhub.deploy import tosca as deploy
from tests.support.tosca import ALL_IN_ONE_INPUTS, CLUSTER_INPUTS, REPO, TOSCA

pytestmark = [pytest.mark.tosca]

ANSIBLE = REPO / "ansible"
TEMPLATES = sorted(TOSCA.glob("*.yaml"))

ADDRESSES = {
    "hub_server": ["10.0.0.2"],
    "central_manager_server": ["10.0.0.3"],
    "nfs_server_vm": ["10.0.0.4"],
    "gpu_worker_server": ["10.0.0.11", "10.0.0.12", "10.0.0.13"],
}


def test_there_are_both_templates():
    assert {t.name for t in TEMPLATES} == {"condorhub-all-in-one.yaml", "condorhub-cluster.yaml"}


@pytest.mark.parametrize("template, inputs", [
    (TOSCA / "condorhub-cluster.yaml", CLUSTER_INPUTS),
    (TOSCA / "condorhub-all-in-one.yaml", ALL_IN_ONE_INPUTS),
], ids=["cluster", "all-in-one"])
def test_tosca_parser_accepts_the_template(template, inputs):
    tosca, values = deploy.load(template, inputs)
    types = {n.name: n.type for n in tosca.nodetemplates}
    # INDIGO/IM conventions: the machines are tosca.nodes.indigo.Compute with sizes and GPUs.
    computes = [n for n in tosca.nodetemplates if n.type == "tosca.nodes.indigo.Compute"]
    assert computes, types
    for node in computes:
        host = node.get_capability("host")
        assert host.get_property_value("num_cpus") is not None, f"{node.name}: no num_cpus"
        assert host.get_property_value("mem_size") is not None, f"{node.name}: no mem_size"
    assert [o.name for o in tosca.outputs][0] == "hub_url"
    # Every condorhub node's playbook exists in the repository.
    for node in tosca.nodetemplates:
        if node.type.startswith("tosca.nodes.condorhub."):
            ops = node.type_definition.get_value("interfaces", parent=True)
            impl = ops["Standard"]["configure"]["implementation"]
            assert (TOSCA / "types" / impl).resolve().is_file(), f"{node.type}: {impl} is missing"


def test_cluster_has_scalable_gpu_workers():
    tosca, _ = deploy.load(TOSCA / "condorhub-cluster.yaml", CLUSTER_INPUTS)
    workers = next(n for n in tosca.nodetemplates if n.name == "gpu_worker_server")
    host = workers.entity_tpl["capabilities"]["host"]["properties"]
    assert host["num_gpus"] == {"get_input": "gpus_per_worker"}
    assert host["gpu_vendor"] == {"get_input": "gpu_vendor"}
    assert workers.entity_tpl["capabilities"]["scalable"]["properties"]["count"] == {"get_input": "num_workers"}


@pytest.mark.parametrize("change, message", [
    ({"num_workers": 100}, "num_workers: 100 is not in the range 1 to 50"),
    ({"num_workers": 0}, "not in the range 1 to 50"),
    ({"gpus_per_worker": 3}, "gpus_per_worker: 3 is not one of [1, 2, 4, 8]"),
    ({"gpu_vendor": "Intel"}, "gpu_vendor: 'Intel' is not one of ['NVIDIA', 'AMD']"),
    ({"worker_mem_size": "4 GB"}, "worker_mem_size: '4 GB' is less than 8 GB"),
    ({"condor_signing_key": "short"}, "condor_signing_key: needs at least 16 characters"),
    ({"ldap_url": None}, "ldap_url: required"),
    ({"num_workers": "three"}, "num_workers: 'three' is not of type integer"),
    ({"num_wrokers": 2}, "num_wrokers: the template has no such input"),
])
def test_bad_cluster_inputs_are_refused_with_the_rule_named(change, message):
    inputs = {**CLUSTER_INPUTS, **change}
    inputs = {k: v for k, v in inputs.items() if v is not None}
    with pytest.raises(deploy.ToscaError) as err:
        deploy.check_inputs(TOSCA / "condorhub-cluster.yaml", inputs)
    assert message in str(err.value)


def test_role_groups_must_name_real_roles():
    # The map's entry_schema constrains each value to the roles the site file's roles.groups allows.
    for template, inputs in ((TOSCA / "condorhub-cluster.yaml", CLUSTER_INPUTS),
                             (TOSCA / "condorhub-all-in-one.yaml", ALL_IN_ONE_INPUTS)):
        with pytest.raises(deploy.ToscaError, match="role_groups entry: 'pupil' is not one of"):
            deploy.check_inputs(template, {**inputs, "role_groups": {"students": "pupil"}})


# ------------------------------------------------------------------------ the two deployment paths


PROMETHEUS_WHEN = "condorhub_prometheus | default(false) | bool"


def _site_roles(groups: set[str], variables: dict) -> list[str]:
    """The roles ansible/site.yml applies to a host in ``groups`` (plays in order, duplicates dropped; the
    prometheus role's `when` evaluated on the variables)."""
    plays = yaml.safe_load((ANSIBLE / "site.yml").read_text())
    roles: list[str] = []
    for play in plays:
        if "roles" not in play:
            continue
        patterns = set(play["hosts"].split(":"))
        if "all" in patterns or patterns & groups:
            for role in play["roles"]:
                when = role.get("when") if isinstance(role, dict) else None
                if when == PROMETHEUS_WHEN and not variables.get("condorhub_prometheus"):
                    continue
                roles.append(role["role"] if isinstance(role, dict) else role)
    return list(dict.fromkeys(roles))


def _im_roles(playbook: Path, variables: dict) -> list[str]:
    """The roles the IM runs with the node's playbook (a role's `when` evaluated on the variables)."""
    play = yaml.safe_load(playbook.read_text())[0]
    roles = []
    for role in play["roles"]:
        name = role["role"] if isinstance(role, dict) else role
        when = role.get("when") if isinstance(role, dict) else None
        if when == "condorhub_nfs_server | default('') | length > 0" and not variables.get("condorhub_nfs_server"):
            continue
        if when == PROMETHEUS_WHEN and not variables.get("condorhub_prometheus"):
            continue
        assert when in (None, "condorhub_nfs_server | default('') | length > 0", PROMETHEUS_WHEN), f"unknown condition {when}"
        roles.append(name)
    return roles


def _htcondor_roles(groups: set[str]) -> list[str]:
    """What the htcondor role's default derives from the inventory groups (roles/htcondor/defaults)."""
    return ([r for g, r in (("condor_central_manager", "central_manager"), ("condor_submit", "submit"),
                            ("condor_execute", "execute")) if g in groups])


@pytest.mark.parametrize("template, inputs, addresses", [
    (TOSCA / "condorhub-cluster.yaml", CLUSTER_INPUTS, ADDRESSES),
    (TOSCA / "condorhub-all-in-one.yaml", ALL_IN_ONE_INPUTS, {"condorhub_server": ["192.0.2.10"]}),
], ids=["cluster", "all-in-one"])
def test_inventory_and_tosca_paths_apply_the_same_roles_with_the_same_variables(template, inputs, addresses):
    tosca, _ = deploy.load(template, inputs)
    inv = deploy.inventory(template, inputs, addresses)
    hosts = inv["all"]["hosts"]
    groups_of = {h: {g for g, members in inv["all"]["children"].items() if h in members["hosts"]} for h in hosts}
    nodes = [n for n in tosca.nodetemplates if n.type.startswith("tosca.nodes.condorhub.")]
    # Every machine of the template is a host (3 workers for num_workers=3).
    assert len(hosts) == sum(len(a) for a in addresses.values())
    for node in nodes:
        node_hosts = [h for h in hosts if h == node.name or h.startswith(f"{node.name}-")]
        assert node_hosts, f"{node.name} has no host in the inventory"
        im_vars = deploy.operation_inputs(tosca, node, addresses)
        playbook = REPO / deploy._metadata(node)["condorhub_playbook"]
        play = yaml.safe_load(playbook.read_text())[0]
        for host in node_hosts:
            inv_vars = {k: v for k, v in hosts[host].items() if k != "ansible_host"}
            # The same variables ...
            assert inv_vars == im_vars, f"{host}: the inventory's variables differ from the IM's"
            # ... the same roles ...
            assert _site_roles(groups_of[host], inv_vars) == _im_roles(playbook, im_vars), host
            # ... and what the IM playbook fixes equals what the groups imply on the inventory path.
            assert play.get("vars", {}).get("htcondor_roles", []) == _htcondor_roles(groups_of[host]), host
            if "jupyterhub" in _site_roles(groups_of[host], inv_vars):
                assert play["vars"]["jupyterhub_htcondor"] == ("condor_submit" in groups_of[host])
    if "cluster" in template.name:
        worker = hosts["gpu_worker-2"]
        assert worker["ansible_host"] == "10.0.0.12"
        assert worker["condorhub_condor_central_manager"] == "10.0.0.3"
        assert hosts["hub"]["jupyterhub_public_url"] == "https://10.0.0.2"
        assert "nfs_client" in groups_of["gpu_worker-2"] and "nfs_client" not in groups_of["nfs"]


def test_generated_inventory_passes_every_roles_argument_specs(tmp_path):
    """The real ansible-playbook checks the generated cluster inventory against the roles' argument specs
    (only the checks run: --tags validate, no fact gathering, no host contacted)."""
    out = subprocess.run(
        [sys.executable, "-m", "condorhub.deploy", "tosca", "inventory", str(TOSCA / "condorhub-cluster.yaml"),
         "--inputs", str(_write(tmp_path / "inputs.yaml", CLUSTER_INPUTS)),
         *[f"--host={k}={','.join(v)}" for k, v in ADDRESSES.items()]],
        capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    inventory = tmp_path / "inventory.yml"
    inventory.write_text(out.stdout)
    # The generated inventory carries what the template decides; the wheel is the operator's (README).
    extra = _write(tmp_path / "site-vars.yaml", {"condorhub_wheel": "/tmp/condorhub.whl",
                                                  "ansible_connection": "local"})
    proc = _validate(inventory, extra, tmp_path)
    assert proc.returncode == 0, proc.stdout[-4000:]
    assert "failed=0" in proc.stdout and "gpu_worker-3" in proc.stdout
    # And a wrong value in the inventory is caught there, naming the variable.
    bad = _write(tmp_path / "bad.yaml", {**yaml.safe_load(extra.read_text()), "htcondor_port": "ninety"})
    proc = _validate(inventory, bad, tmp_path)
    assert proc.returncode != 0 and "htcondor_port" in proc.stdout, proc.stdout[-3000:]


def test_bundle_is_self_contained_for_the_im(tmp_path):
    out = tmp_path / "cluster.im.yaml"
    proc = subprocess.run(
        [sys.executable, "-m", "condorhub.deploy", "tosca", "bundle", str(TOSCA / "condorhub-cluster.yaml"),
         "--artifacts-url", "https://git.example.org/condorhub/raw/v0.1.0", "-o", str(out)],
        capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    doc = yaml.safe_load(out.read_text())
    assert "imports" not in doc, "the bundle still imports local files the IM cannot read"
    hub = doc["node_types"]["tosca.nodes.condorhub.Hub"]
    assert hub["interfaces"]["Standard"]["configure"]["implementation"] == \
        "https://git.example.org/condorhub/raw/v0.1.0/ansible/im/hub.yml"
    assert "tosca.nodes.indigo.Compute" in doc["node_types"]
    # The INDIGO Compute's playbook from the vendored copy, at the commit of the vendored types.
    assert doc["node_types"]["tosca.nodes.indigo.Compute"]["interfaces"]["Standard"]["configure"]["implementation"] == \
        "https://git.example.org/condorhub/raw/v0.1.0/tosca/types/artifacts/os/configure_users.yml"
    # tosca-parser still accepts it, on its own.
    tosca, _ = deploy.load(out, CLUSTER_INPUTS)
    assert any(n.type == "tosca.nodes.condorhub.Hub" for n in tosca.nodetemplates)


def _write(path: Path, data: dict) -> Path:
    path.write_text(yaml.safe_dump(data))
    return path


def _validate(inventory: Path, extra: Path, tmp: Path) -> subprocess.CompletedProcess:
    env = {"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", "HOME": str(tmp), "LANG": "C.UTF-8",
           "ANSIBLE_CONFIG": str(ANSIBLE / "ansible.cfg"), "ANSIBLE_HOME": str(tmp / ".ansible"),
           "ANSIBLE_LOCAL_TEMP": str(tmp / ".ansible-tmp"), "ANSIBLE_GATHERING": "explicit",
           "ANSIBLE_NOCOLOR": "1"}
    return subprocess.run([str(Path(sys.executable).parent / "ansible-playbook"), "-i", str(inventory), "site.yml",
                           "--tags", "validate", "-e", f"@{extra}"],
                          cwd=ANSIBLE, env=env, capture_output=True, text=True, timeout=300)
