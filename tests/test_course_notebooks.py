"""The course notebooks run top to bottom with nbclient, as a student's "Run All" would, on small settings.

The settings cell of each notebook is tagged ``parameters``; CI adds a cell after it with smaller numbers
(what papermill does), so the notebooks keep course-sized defaults and CI stays within a few minutes.
Each test checks what the student sees: no error, the printed scores, the plots, the widgets, the files
written (TensorBoard logs, specs, the scan tree the scan browser reads).
"""

from __future__ import annotations

import base64
import json
import re
import shutil
import time
import warnings
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

COURSE = Path(__file__).resolve().parents[1] / "notebooks" / "course"
WIDGET = "application/vnd.jupyter.widget-view+json"

pytestmark = pytest.mark.notebooks


def run_notebook(name: str, workdir: Path, **overrides) -> nbformat.NotebookNode:
    nb = nbformat.read(COURSE / name, as_version=4)
    (index,) = [i for i, c in enumerate(nb.cells) if "parameters" in c.get("metadata", {}).get("tags", [])]
    settings = "\n".join(f"{key} = {value!r}" for key, value in overrides.items())
    nb.cells.insert(index + 1, nbformat.v4.new_code_cell("# CI settings\n" + settings, metadata={"tags": ["injected-parameters"]}))
    # where the time goes, kept so that a slow run says which phase was slow (a warning in the summary)
    marks: list[tuple[str, float]] = []
    mark = lambda what: (lambda **_: marks.append((what, time.monotonic())))  # noqa: E731
    client = NotebookClient(
        nb, timeout=180, kernel_name="python3", resources={"metadata": {"path": str(workdir)}},
        on_notebook_start=mark("kernel started"), on_cell_complete=mark("cell"),
        on_notebook_complete=mark("last cell done"),
    )
    start = time.monotonic()
    # MPLBACKEND: figures render inline as PNG outputs, as in JupyterLab
    client.execute(env={"MPLBACKEND": "module://matplotlib_inline.backend_inline", "TF_CPP_MIN_LOG_LEVEL": "2"})
    marks.append(("kernel shut down", time.monotonic()))
    if marks[-1][1] - start > 120:
        steps, last = [], start
        for i, (what, when) in enumerate(marks):
            steps.append(f"{what}{'' if what != 'cell' else f' {i}'} +{when - last:.0f}s")
            last = when
        warnings.warn(f"{name} took {marks[-1][1] - start:.0f} s: " + ", ".join(steps), stacklevel=2)
    return nb


def text_of(nb) -> str:
    out = []
    for cell in nb.cells:
        for o in cell.get("outputs", []):
            if o.get("output_type") == "stream":
                out.append(o["text"])
            elif "data" in o and "text/plain" in o["data"]:
                out.append(o["data"]["text/plain"])
    return "\n".join(out)


def images(nb) -> list[bytes]:
    return [base64.b64decode(o["data"]["image/png"]) for c in nb.cells for o in c.get("outputs", [])
            if "data" in o and "image/png" in o["data"]]


def widgets(nb) -> int:
    return sum(1 for c in nb.cells for o in c.get("outputs", []) if "data" in o and WIDGET in o["data"])


def errors(nb) -> list[str]:
    return [f"{o['ename']}: {o['evalue']}" for c in nb.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]


@pytest.fixture
def workdir(tmp_path):
    yield tmp_path
    shutil.rmtree(tmp_path, ignore_errors=True)


def test_hello_digits(workdir):
    nb = run_notebook("01_hello_digits.ipynb", workdir, EPOCHS=15)
    assert errors(nb) == []
    accuracy = float(re.search(r"test accuracy: ([0-9.]+)", text_of(nb)).group(1))
    assert accuracy > 0.9
    assert len(images(nb)) >= 3  # sample digits, learning curve, confusion matrix (+ the widget's first plot)
    assert widgets(nb) == 1  # the image browser


def test_root_to_tensorflow(workdir):
    nb = run_notebook("02_root_to_tensorflow.ipynb", workdir, EVENTS_PER_CLASS=8000, VALIDATION_PER_CLASS=3000,
                      CHUNK_SIZE=6000, EPOCHS=3)
    assert errors(nb) == []
    text = text_of(nb)
    assert "Jet_pt[3]" in text  # the padded jet columns are shown
    assert float(re.search(r"validation accuracy: ([0-9.]+)", text).group(1)) > 0.75
    aucs = {name: float(v) for name, v in re.findall(r"AUC (\w+)\s+vs rest: ([0-9.]+)", text)}
    assert set(aucs) == {"wjets", "qcd", "ttbar"} and min(aucs.values()) > 0.85
    assert len(images(nb)) >= 1  # ROC curves beside the confusion matrix (the working point draws inside its widget)
    assert widgets(nb) >= 1
    for topology in ("wjets", "qcd", "ttbar"):
        assert (workdir / "data/topology/train" / f"{topology}.root").stat().st_size > 0
    assert json.loads((workdir / "specs.json").read_text())["n_events"] == 3 * 8000
    event_files = list((workdir / "logs").rglob("events.out.tfevents.*"))
    assert {p.parent.name for p in event_files} >= {"train", "validation"}  # TensorBoard has both curves


def test_parameter_scan(workdir):
    nb = run_notebook("03_parameter_scan.ipynb", workdir, EVENTS_PER_CLASS=4000, VALIDATION_PER_CLASS=2000,
                      LEARNING_RATES=[0.01, 0.001], HIDDEN_LAYERS=[1, 3], EPOCHS=2)
    assert errors(nb) == []
    scan = workdir / "scan"
    leaves = sorted(p.relative_to(scan).as_posix() for p in scan.rglob("metrics.json"))
    assert leaves == [f"lr_{lr}/layers_{n}/metrics.json" for lr in ("0.001", "0.01") for n in (1, 3)]
    for leaf in leaves:
        folder = scan / Path(leaf).parent
        metrics = json.loads((folder / "metrics.json").read_text())
        assert {"lr", "layers", "auc", "accuracy", "val_loss", "epochs"} <= set(metrics)
        assert 0.5 < metrics["auc"] <= 1.0
        assert (folder / "roc.png").read_bytes().startswith(b"\x89PNG")
    assert widgets(nb) >= 1

    # the scan browser (condorhub.lab) finds the runs and proposes lr and layers as its axes
    from condorhub.lab.scan.match import scan as browse
    from condorhub.lab.scan.pattern import compile_pattern
    from condorhub.lab.scan.suggest import suggest

    proposal = suggest(scan)
    pattern = compile_pattern(r"lr_(?P<lr>[^/]+)/layers_(?P<layers>\d+)/roc\.png")
    found = browse(scan, scan, "scan", pattern, max_files=1000, regex_timeout=1.0, limit=100)
    assert found["total_matches"] == 4
    assert {a["name"] for a in found["axes"]} == {"lr", "layers"}
    assert "lr" in json.dumps(proposal) and "layers" in json.dumps(proposal)
