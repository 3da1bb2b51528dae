"""docs/configuration.md is rendered from the schema and the traits' help; it must match what the code says."""

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "docs" / "render_config_reference.py"


def _renderer():
    spec = importlib.util.spec_from_file_location("render_config_reference", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_configuration_reference_is_up_to_date():
    rendered = _renderer().render()
    committed = (ROOT / "docs" / "configuration.md").read_text()
    assert committed == rendered, (
        "docs/configuration.md is out of date with the schema or the traits' help: "
        "run `python docs/render_config_reference.py` and commit the result"
    )


def test_reference_lists_every_condorhub_trait_and_site_key():
    # The renderer's own filters must not silently drop things: every configurable trait condorhub declares
    # on the listed classes, and a sample of nested site keys (sections, lists of sections), appears in the text.
    renderer = _renderer()
    text = renderer.render()
    import importlib as il

    for module_name, class_name in renderer.CONFIGURABLES:
        cls = getattr(il.import_module(module_name), class_name)
        own = renderer._own_traits(cls)
        assert own, f"{class_name}: no condorhub traits found (the filter by defining module broke?)"
        for name in own:
            assert f"#### `{class_name}.{name}`" in text
    for key in (
        "hub.bind_url",
        "ldap.tls.ca_file",
        "login_throttle.trusted_proxies",
        "htcondor.server_venv",
        "profiles[].gpus",
        "courses[].slug",
        "course_publishing.account",
    ):
        assert f"| `{key}` |" in text, key


def test_every_configurable_class_is_rendered():
    # A new configurable class in product code must be added to CONFIGURABLES, or it goes undocumented.
    import importlib as il
    import inspect

    from traitlets.config import Configurable

    folders = {
        "hub_config": "condorhub",
        "spawner": "condorhub.spawner",
        "labextension": "condorhub.lab",
        "notebooks/condorhub_data": "condorhub.data",
    }
    declared = set()
    for folder, package in folders.items():
        for path in (ROOT / folder).rglob("*.py"):
            if "node_modules" in path.parts or "config=True" not in path.read_text():
                continue
            relative = path.relative_to(ROOT / folder).with_suffix("")
            module = il.import_module(".".join([package, *relative.parts]))
            for name, cls in inspect.getmembers(module, inspect.isclass):
                if (
                    issubclass(cls, Configurable)
                    and cls.__module__ == module.__name__
                    and cls.class_own_traits(config=True)
                ):
                    declared.add(name)
    rendered = {class_name for _, class_name in _renderer().CONFIGURABLES}
    assert "CondorhubLab" in declared and "HTCondorSpawner" in declared  # the scan itself works
    assert declared <= rendered, (
        f"configurable classes missing from docs/render_config_reference.py: {declared - rendered}"
    )
