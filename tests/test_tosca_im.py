"""tosca/ on a real Infrastructure Manager (IM 2.0.0 with its Dummy cloud, tests/support/im.py), the way ops
deploy on INFN Cloud: ``condorhub-deploy tosca bundle --inputs`` makes the template IM takes (types inlined,
playbooks under --artifacts-url, input values as the inputs' defaults), then IM's REST API or ``im_client``
creates, scales and destroys the infrastructure.

What IM does with the templates is checked where an operator would look: the VMs it launches (one per
machine, ``num_workers`` GPU workers), the RADL it derives (sizes, GPUs; each VM's ``configure`` is the node
type's playbook of ansible/im/ with the operation inputs as variables, the same ones ``tosca inventory``
gives ansible/site.yml), the contextualization order, the outputs. The Dummy cloud boots nothing: nothing is
configured and its VMs have no public address, so ``hub_url`` reads ``https://None`` here.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time

import pytest
import yaml

from condorhub.deploy import tosca as deploy
from tests.support.im import IMServer
from tests.support.tosca import ALL_IN_ONE_INPUTS, CLUSTER_INPUTS, REPO, TOSCA

pytestmark = [pytest.mark.tosca]

CLUSTER = TOSCA / "condorhub-cluster.yaml"
ALL_IN_ONE = TOSCA / "condorhub-all-in-one.yaml"
TIMES: dict[str, float] = {}


def _bundle(im: IMServer, template, inputs) -> str:
    return yaml.safe_dump(deploy.bundle(template, im.artifacts_url, inputs), sort_keys=False)


def _create(im: IMServer, text: str) -> str:
    start = time.monotonic()
    resp = im.call("POST", "/infrastructures", data=text,
                   headers={"Content-Type": "text/yaml", "Accept": "application/json"})
    TIMES.setdefault("create", time.monotonic() - start)
    assert resp.status_code == 200, resp.text
    return resp.headers["InfID"]


def _vms(im: IMServer, inf: str) -> list[str]:
    resp = im.call("GET", f"/infrastructures/{inf}", headers={"Accept": "application/json"})
    assert resp.status_code == 200, resp.text
    return [u["uri"].rsplit("/", 1)[1] for u in resp.json()["uri-list"]]


def _vm_systems(im: IMServer, inf: str) -> list[str]:
    """The system (TOSCA compute node) of each VM, in IM's VM order."""
    names = []
    for vm in _vms(im, inf):
        radl = im.call("GET", f"/infrastructures/{inf}/vms/{vm}").text
        names.append(re.search(r"^system (\S+) \(", radl, re.M).group(1))
    return names


def _destroy(im: IMServer, inf: str) -> None:
    start = time.monotonic()
    resp = im.call("DELETE", f"/infrastructures/{inf}")
    TIMES.setdefault("destroy", time.monotonic() - start)
    assert resp.status_code == 200, resp.text
    assert im.call("GET", f"/infrastructures/{inf}/state").status_code == 404


def _radl(text: str) -> tuple[dict[str, str], dict[str, dict], list[tuple[str, str, int]], dict[str, int]]:
    """IM's RADL: systems (name -> their feature text), configures (name -> the recipe, a playbook),
    contextualize items (system, configure, step) and deploys (system -> count)."""
    systems = dict(re.findall(r"^system (\S+) \(\n(.*?)\n\)", text, re.M | re.S))
    configures = {name: yaml.safe_load(body)
                  for name, body in re.findall(r"^configure (\S+) \(\n@begin\n(.*?)@end\n\)", text, re.M | re.S)}
    ctxt = [(s, c, int(n)) for s, c, n in re.findall(r"^system (\S+) configure (\S+) step (\d+)", text, re.M)]
    deploys = {s: int(n) for s, n in re.findall(r"^deploy (\S+) (\d+)", text, re.M)}
    return systems, configures, ctxt, deploys


def _check_configures(template, inputs, configures, ctxt):
    """Each condorhub node's configure is its ansible/im/ playbook (roles, fixed vars) with the operation's
    inputs as variables: addresses as IM's Jinja lookups of the machines' IPs, everything else as the
    inventory path (condorhub.deploy.tosca.operation_inputs) evaluates it."""
    tosca, _ = deploy.load(template, inputs)
    computes = [n.name for n in tosca.nodetemplates if n.type == "tosca.nodes.indigo.Compute"]
    private = {c: [f"{{{{ hostvars[groups['{c}'][0]]['IM_NODE_PRIVATE_IP'] }}}}"] for c in computes}
    public = {c: f"{{{{ hostvars[groups['{c}'][0]]['IM_NODE_PUBLIC_IP'] }}}}" for c in computes}
    nodes = [n for n in tosca.nodetemplates if n.type.startswith("tosca.nodes.condorhub.")]
    for node in nodes:
        compute = deploy._host_of(node)
        name = f"{node.name}_{compute}_conf"
        assert name in configures, f"no configure for {node.name} in IM's RADL: {sorted(configures)}"
        play = yaml.safe_load((REPO / deploy._metadata(node)["condorhub_playbook"]).read_text())[0]
        (got,) = configures[name]
        assert got["roles"] == play["roles"], node.name
        assert got.get("become") == play.get("become"), node.name
        expected = {**play.get("vars", {}), **deploy.operation_inputs(tosca, node, private, public)}
        assert got["vars"] == expected, node.name
        # after the INDIGO Compute's own configure (step 1: its os_users role)
        assert (compute, name, 2) in ctxt and (compute, f"{compute}_conf", 1) in ctxt, ctxt
        assert configures[f"{compute}_conf"][0]["roles"] == [{"role": "indigo-dc.os_users"}]
    return nodes


def test_im_deploys_scales_and_destroys_the_cluster(im):
    text = _bundle(im, CLUSTER, CLUSTER_INPUTS)  # num_workers 3, gpus_per_worker 2
    fetched_before = len(im.fetched)
    inf = _create(im, text)
    try:
        # The IM fetched every playbook from --artifacts-url, the INDIGO Compute's from the vendored copy.
        assert set(im.fetched[fetched_before:]) >= {
            "/ansible/im/hub.yml", "/ansible/im/central_manager.yml", "/ansible/im/nfs_server.yml",
            "/ansible/im/gpu_worker.yml", "/tosca/types/artifacts/os/configure_users.yml"}, im.fetched
        # 1 hub + 1 central manager + 1 NFS server + 3 workers
        assert sorted(_vm_systems(im, inf)) == sorted(
            ["hub_server", "central_manager_server", "nfs_server_vm"] + ["gpu_worker_server"] * 3)
        radl = im.call("GET", f"/infrastructures/{inf}/radl")
        assert radl.status_code == 200, radl.text
        systems, configures, ctxt, deploys = _radl(radl.text)
        assert deploys == {"hub_server": 1, "central_manager_server": 1, "nfs_server_vm": 1, "gpu_worker_server": 3}
        workers = systems["gpu_worker_server"]
        for feature in ("cpu.count >= 8", "memory.size >= 32000000000B", "gpu.count >= 2", "gpu.vendor = 'NVIDIA'",
                        "disk.0.os.flavour = 'debian'", "disk.0.os.version = '13'"):
            assert feature in workers, workers
        assert "cpu.count >= 4" in systems["hub_server"] and "memory.size >= 8000000000B" in systems["hub_server"]
        assert "gpu.count" not in systems["hub_server"]
        # Only the hub is on the public network, with HTTPS open.
        assert re.search(r"^network public_net \( outbound = 'yes' and\noutports = '443/tcp-443/tcp' \)",
                         radl.text, re.M), radl.text[:400]
        assert "public_net" in systems["hub_server"] and "public_net" not in workers
        nodes = _check_configures(CLUSTER, CLUSTER_INPUTS, configures, ctxt)
        assert {n.name for n in nodes} == {"hub", "central_manager", "nfs", "gpu_worker"}

        state = im.call("GET", f"/infrastructures/{inf}/state").json()["state"]
        assert len(state["vm_states"]) == 6
        assert state["state"] in ("running", "unconfigured"), state  # Dummy VMs never get configured
        outputs = im.call("GET", f"/infrastructures/{inf}/outputs").json()["outputs"]
        # hub_url is https:// + the hub VM's public address; Dummy VMs have none.
        assert outputs == {"hub_url": "https://None", "hub_ip": None}

        # More workers: the same template with num_workers 5 through IM's "add resources" adds 2 VMs ...
        resp = im.call("POST", f"/infrastructures/{inf}", data=_bundle(im, CLUSTER, {**CLUSTER_INPUTS, "num_workers": 5}),
                       headers={"Content-Type": "text/yaml", "Accept": "application/json"})
        assert resp.status_code == 200, resp.text
        assert len(resp.json()["uri-list"]) == 2
        assert _vm_systems(im, inf).count("gpu_worker_server") == 5
        # ... and num_workers 1, with im_client addresource (README), removes 4 (the oldest), leaving the
        # other machines alone.
        smaller = im.workdir / "condorhub-cluster.im.yaml"
        smaller.write_text(_bundle(im, CLUSTER, {**CLUSTER_INPUTS, "num_workers": 1}))
        resp = im.im_client("addresource", inf, str(smaller))
        assert resp.returncode == 0, resp.stdout + resp.stderr
        assert sorted(_vm_systems(im, inf)) == sorted(
            ["hub_server", "central_manager_server", "nfs_server_vm", "gpu_worker_server"])
        # The template IM keeps is the last one submitted.
        kept = yaml.safe_load(im.call("GET", f"/infrastructures/{inf}/tosca").text)
        assert kept["topology_template"]["inputs"]["num_workers"]["default"] == 1
    finally:
        _destroy(im, inf)


def test_all_in_one_with_im_client(im):
    """The README's commands: im_client create, getoutputs, destroy."""
    bundle = im.workdir / "condorhub-all-in-one.im.yaml"
    bundle.write_text(_bundle(im, ALL_IN_ONE, {**ALL_IN_ONE_INPUTS, "num_gpus": 2, "gpu_vendor": "AMD"}))
    start = time.monotonic()
    created = im.im_client("create", str(bundle))
    TIMES["im_client create"] = time.monotonic() - start
    assert created.returncode == 0, created.stdout + created.stderr
    inf = re.search(r"ID: (\S+)", created.stdout).group(1)
    try:
        # Through the REST API, im_client creates asynchronously: the VM appears a moment later.
        deadline = time.monotonic() + 30
        while not _vms(im, inf) and time.monotonic() < deadline:
            time.sleep(0.2)
        TIMES["im_client create, until the VM is there"] = time.monotonic() - start
        assert _vm_systems(im, inf) == ["condorhub_server"]
        systems, configures, ctxt, deploys = _radl(im.call("GET", f"/infrastructures/{inf}/radl").text)
        assert deploys == {"condorhub_server": 1}
        for feature in ("cpu.count >= 8", "memory.size >= 32000000000B", "gpu.count >= 2", "gpu.vendor = 'AMD'"):
            assert feature in systems["condorhub_server"]
        _check_configures(ALL_IN_ONE, {**ALL_IN_ONE_INPUTS, "num_gpus": 2, "gpu_vendor": "AMD"}, configures, ctxt)
        state = im.im_client("getstate", inf)
        assert state.returncode == 0 and re.search(r"state: (running|unconfigured)", state.stdout), state.stdout
        outputs = im.im_client("getoutputs", inf)
        assert outputs.returncode == 0, outputs.stdout + outputs.stderr
        assert "hub_url = https://None" in outputs.stdout, outputs.stdout
    finally:
        start = time.monotonic()
        gone = im.im_client("-y", "destroy", inf)
        TIMES["im_client destroy"] = time.monotonic() - start
        assert gone.returncode == 0, gone.stdout + gone.stderr
    assert im.call("GET", f"/infrastructures/{inf}/state").status_code == 404


def test_bad_inputs_are_refused_before_the_im(im, tmp_path):
    before = im.call("GET", "/infrastructures", headers={"Accept": "application/json"}).json()
    # IM does not check TOSCA input constraints: it would deploy num_workers 51 against in_range [1, 50]
    # (a dry run estimates 54 machines) ...
    doc = deploy.bundle(CLUSTER, im.artifacts_url, CLUSTER_INPUTS)
    doc["topology_template"]["inputs"]["num_workers"]["default"] = 51
    estimate = im.call("POST", "/infrastructures", params={"dry_run": "true"}, data=yaml.safe_dump(doc),
                       headers={"Content-Type": "text/yaml", "Accept": "application/json"})
    assert estimate.status_code == 200, estimate.text
    assert len(estimate.json()["dummy"]["compute"]) == 54
    # ... so the bundle refuses it, naming the input and the rule, and no template reaches the IM.
    with pytest.raises(deploy.ToscaError, match="num_workers: 51 is not in the range 1 to 50"):
        deploy.bundle(CLUSTER, im.artifacts_url, {**CLUSTER_INPUTS, "num_workers": 51})
    inputs = tmp_path / "inputs.yaml"
    inputs.write_text(yaml.safe_dump({k: v for k, v in CLUSTER_INPUTS.items() if k != "ldap_url"}))
    proc = deploy_cli("bundle", str(CLUSTER), "--artifacts-url", im.artifacts_url, "--inputs", str(inputs))
    assert proc.returncode == 2 and "input ldap_url: required" in proc.stderr, proc.stderr
    # A missing required input reaches the IM only as an unset default, which it refuses less clearly.
    doc = deploy.bundle(CLUSTER, im.artifacts_url)
    resp = im.call("POST", "/infrastructures", data=yaml.safe_dump(doc),
                   headers={"Content-Type": "text/yaml", "Accept": "application/json"})
    assert resp.status_code == 400 and "input value for condorhub_" in resp.json()["message"], resp.text
    assert im.call("GET", "/infrastructures", headers={"Accept": "application/json"}).json() == before


def deploy_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "condorhub.deploy", "tosca", *args],
                          capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module", autouse=True)
def _report_times(im):
    yield
    TIMES["IM start"] = im.started_in
    # what IM took (README, "Operate"); shown with -s
    print("\nIM times: " + ", ".join(f"{k} {v:.2f} s" for k, v in TIMES.items()))
