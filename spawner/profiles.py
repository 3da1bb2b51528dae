"""ProfileSpawner: the spawner JupyterHub sees; it runs the chosen profile's own spawner inside.

Each profile kind has its own spawner class (login node → :class:`LoginNodeSpawner`; the HTCondor kinds
follow). Like wrapspawner's ProfilesSpawner, the child is built when the server starts or when state is
reloaded after a hub restart, and JupyterHub's calls are forwarded to it. Unlike it, the profiles come from
the validated site file, the choice is checked against the user's roles on the server side, and the chosen
profile is persisted with the child's state so a restarted hub rebuilds the same child.
"""

from __future__ import annotations

from importlib import import_module

from jupyterhub.spawner import Spawner
from traitlets import Any, Dict, Instance, List, Unicode, default, directional_link

from .choice import (
    ProfileChoiceError,
    allowed_profiles,
    choose_profile,
    options_from_form,
    render_form,
    render_notice,
)

# What JupyterHub sets on a spawner between construction and start, and the child must see.
_RUNTIME_TRAITS = {
    "api_token",
    "user_options",
    "cert_paths",
    "oauth_access_scopes",
    "admin_access",
    "handler",
    "public_url",
    "public_hub_url",
}


def condor_overrides(profile: dict) -> dict:
    """Traits of the HTCondor spawner that a `condor` profile sets (batchspawner's req_* vocabulary)."""
    from condorhub.schema import parse_duration

    overrides: dict[str, object] = {
        "req_nprocs": str(int(profile.get("cpus", 1))),
        "req_memory": str(profile.get("memory", "")),
        "req_ngpus": str(int(profile.get("gpus", 0))),
        "profile_roles": list(profile.get("roles", [])),
    }
    if profile.get("runtime") is not None:
        overrides["req_runtime"] = str(parse_duration(profile["runtime"]))
    if profile.get("gpus_minimum_capability") is not None:
        overrides["gpus_minimum_capability"] = float(profile["gpus_minimum_capability"])
    if profile.get("gpus_minimum_memory"):
        overrides["gpus_minimum_memory"] = str(profile["gpus_minimum_memory"])
    return overrides


def _import_class(dotted: str) -> type[Spawner]:
    module, _, name = dotted.rpartition(".")
    return getattr(import_module(module), name)


class ProfileSpawner(Spawner):
    """Offer the site's resource profiles that the user's roles allow and start the chosen one."""

    profiles = List(
        Dict(),
        config=True,
        help="""
        Resource profiles, as validated from the site file's `profiles` section (a list of dicts with at
        least `slug`, `kind`, `display_name` and `roles`). condorhub's jupyterhub_config.py sets this; set
        it by hand only for tests.
        """,
    )

    kind_spawners = Dict(
        {
            "login_node": "condorhub.spawner.loginnode.LoginNodeSpawner",
            "condor": "condorhub.spawner.condor.spawner.HTCondorSpawner",
        },
        config=True,
        help="""
        Spawner class (dotted import path) that runs each profile `kind`. A class is imported only when
        a server of its kind is started (or reloaded after a hub restart), so a hub without an HTCondor
        pool never imports the HTCondor bindings.
        """,
    )

    last_stop_reason = Unicode(
        "",
        help="""
        Why the last server stopped or failed to start, as the child spawner put it (e.g. HTCondor's hold
        reason). Shown on the spawn form and kept in the state (admins see it in the REST API).
        """,
    )

    profile = Dict(help="The profile this server was started with (persisted in the spawner state).")
    child_spawner = Instance(Spawner, allow_none=True)
    child_state = Dict()
    auth_state = Any(None, help="The user's auth state, as handed to run_auth_state_hook before start.")

    def __init__(self, **kwargs):
        # JupyterHub builds spawners with a dozen keyword arguments (user, orm_spawner, hub, cookie
        # options, ...); the child needs exactly the same ones, so keep them instead of listing them.
        self._construct_kwargs = dict(kwargs)
        super().__init__(**kwargs)

    # -- the form and the choice ----------------------------------------------------------------------

    async def _roles(self) -> list[str]:
        auth_state = self.auth_state
        if auth_state is None:
            auth_state = await self.user.get_auth_state()
        return list((auth_state or {}).get("roles", []))

    @default("options_form")
    def _options_form_default(self):
        async def form(spawner: ProfileSpawner) -> str:
            mine = allowed_profiles(spawner.profiles, await spawner._roles())
            # One choice is no choice: skip the form and start it directly.
            if len(mine) <= 1:
                return ""
            return render_notice(spawner.last_stop_reason) + render_form(mine)

        return form

    async def options_from_form(self, formdata):
        # Checked here already so a crafted form is answered on the form itself, before any spawn
        # starts; apply_user_options checks again for requests through the REST API.
        options = options_from_form(formdata)
        profile = choose_profile(self.profiles, await self._roles(), options)
        return {"profile": profile["slug"]}

    @default("apply_user_options")
    def _apply_user_options_default(self):
        async def apply(spawner: ProfileSpawner, user_options: dict) -> None:
            spawner.profile = dict(choose_profile(spawner.profiles, await spawner._roles(), user_options))
            # Build the child now, before JupyterHub reads start_timeout to wrap start(): an HTCondor
            # server's own timeouts (queue, startup) need a longer outer limit than a login-node server.
            spawner._adopt_timeouts(spawner._construct_child())

        return apply

    def _adopt_timeouts(self, child: Spawner) -> None:
        self.start_timeout = child.start_timeout
        self.http_timeout = child.http_timeout
        self.poll_interval = child.poll_interval

    async def run_auth_state_hook(self, auth_state):
        self.auth_state = auth_state
        await super().run_auth_state_hook(auth_state)
        # The child gets it in start(): it is only built once apply_user_options has chosen the profile.

    # -- the child ------------------------------------------------------------------------------------

    def _child_overrides(self, profile: dict) -> dict:
        """Traits of the child that the profile sets."""
        from condorhub.schema import parse_memory

        overrides: dict = {}
        if "cpus" in profile:
            overrides["cpu_limit"] = float(profile["cpus"])
        if "memory" in profile:
            overrides["mem_limit"] = parse_memory(profile["memory"])
        if profile.get("kind") == "condor":
            overrides.update(condor_overrides(profile))
        overrides.update(profile.get("spawner_overrides", {}))
        return overrides

    def _construct_child(self) -> Spawner:
        if self.child_spawner is not None:
            return self.child_spawner
        if not self.profile:
            raise ProfileChoiceError(500, "No profile chosen for this server.")
        kind = self.profile.get("kind")
        if kind not in self.kind_spawners:
            raise ProfileChoiceError(500, f"Profile kind {kind!r} has no spawner configured.")
        child_class = _import_class(self.kind_spawners[kind])
        overrides = self._child_overrides(self.profile)
        kwargs = {k: v for k, v in self._construct_kwargs.items() if k != "config"}
        child = child_class(config=self.config, **kwargs, **overrides)
        child.clear_state()
        if self.child_state:
            child.load_state(self.child_state)
        # Keep the child in step with what JupyterHub sets on the wrapper at run time. Only these: the
        # configurable traits the child reads from its own config section (c.LoginNodeSpawner.cmd must not
        # be overwritten by the wrapper's default cmd).
        for name in _RUNTIME_TRAITS - set(overrides):
            directional_link((self, name), (child, name))
        self.child_spawner = child
        return child

    async def start(self):
        child = self._construct_child()
        self.last_stop_reason = ""
        await child.run_auth_state_hook(self.auth_state)
        try:
            return await child.start()
        except BaseException:
            self._keep_stop_reason(child)
            raise

    async def poll(self):
        if self.child_spawner is None:
            return 1  # never started, or state cleared: not running
        status = await self.child_spawner.poll()
        if status is not None:
            self._keep_stop_reason(self.child_spawner)
        return status

    def _keep_stop_reason(self, child: Spawner) -> None:
        reason = getattr(child, "stop_reason", "")
        if reason:
            self.last_stop_reason = reason

    async def stop(self, now=False):
        if self.child_spawner is not None:
            await self.child_spawner.stop(now=now)

    async def progress(self):
        if self.child_spawner is None:
            return
        async for event in self.child_spawner.progress():
            yield event

    # -- state ----------------------------------------------------------------------------------------

    def get_state(self):
        state = super().get_state()
        if self.last_stop_reason:
            state["last_stop_reason"] = self.last_stop_reason
        if self.profile:
            state["profile"] = self.profile
        if self.child_spawner is not None:
            self.child_state = self.child_spawner.get_state()
        if self.child_state:
            state["child_state"] = self.child_state
        return state

    def load_state(self, state):
        super().load_state(state)
        self.last_stop_reason = state.get("last_stop_reason", self.last_stop_reason)
        self.profile = state.get("profile", {})
        self.child_state = state.get("child_state", {})
        if self.profile and self.child_state:
            # After a hub restart: rebuild the child so poll() can see the running server.
            self._adopt_timeouts(self._construct_child())

    def clear_state(self):
        super().clear_state()
        if self.child_spawner is not None:
            self.child_spawner.clear_state()
        self.child_spawner = None
        self.child_state = {}
        self.profile = {}
