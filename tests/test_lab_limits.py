"""condorhub.lab.limits in a real jupyter-server with a real Python kernel: the Lab learns the server's
runtime limit, and a kernel busy with one silent cell keeps the server's last activity (what the hub's idle
culler judges by) current, which jupyter-server alone does not."""

from __future__ import annotations

import asyncio
import time

import pytest


@pytest.fixture
def limits_env(monkeypatch):
    # What the hub's ProfileSpawner puts in a batch server's environment (the deadline set directly here).
    monkeypatch.setenv("CONDORHUB_SERVER_DEADLINE", "2000000000")
    monkeypatch.setenv("CONDORHUB_LIMIT_WARNINGS", "900,300")
    monkeypatch.setenv("JUPYTERHUB_ACTIVITY_INTERVAL", "2")  # the busy check runs every second


@pytest.fixture
def jp_server_config(limits_env, jp_data_dir):
    return {"ServerApp": {"jpserver_extensions": {"condorhub.lab": True, "condorhub.lab.limits": True}}}


def test_the_lab_learns_when_the_runtime_limit_ends_the_server(api):
    reply = api("GET", "condorhub/api/limits")
    assert reply.code == 200, reply
    assert reply.json["deadline"] == 2_000_000_000 and reply.json["warnings"] == [900, 300]
    assert abs(reply.json["now"] - time.time()) < 60


def test_a_kernel_busy_with_a_silent_cell_keeps_the_server_active(jp_serverapp, run):
    manager = jp_serverapp.kernel_manager
    web_app = jp_serverapp.web_app
    # What a started server does once its loop runs (pytest-jupyter's server is never started as a whole).
    run(jp_serverapp.extension_manager.start_all_extensions())

    async def busy_for_a_while() -> tuple:
        kernel_id = await manager.start_kernel(kernel_name="python3")
        client = manager.get_kernel(kernel_id).client()
        client.start_channels()
        try:
            await client.wait_for_ready(timeout=60)
            client.execute("import time; time.sleep(8)")
            deadline = time.monotonic() + 30
            while manager.get_kernel(kernel_id).execution_state != "busy":
                assert time.monotonic() < deadline, "the kernel never said it was busy"
                await asyncio.sleep(0.1)
            await asyncio.sleep(1.5)  # its last messages (busy, execute_input) are behind us
            kernel_quiet_since = manager.last_kernel_activity
            server_before = web_app.last_activity()
            await asyncio.sleep(4)  # the cell still sleeps: no message from the kernel
            return kernel_quiet_since, manager.last_kernel_activity, server_before, web_app.last_activity()
        finally:
            client.stop_channels()
            await manager.shutdown_kernel(kernel_id, now=True)

    kernel_before, kernel_after, server_before, server_after = run(busy_for_a_while())
    assert kernel_after == kernel_before  # jupyter-server's own view: the kernel has been silent
    assert (server_after - server_before).total_seconds() >= 2  # condorhub's: the server is in use
