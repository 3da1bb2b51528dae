"""ProfileSpawner: the spawner JupyterHub sees; it runs the chosen profile's own spawner inside.

Each profile kind has its own spawner class (login node → :class:`LoginNodeSpawner`; the HTCondor kinds
follow). Like wrapspawner's ProfilesSpawner, the child is built when the server starts or when state is
reloaded after a hub restart, and JupyterHub's calls are forwarded to it. Unlike it, the profiles come from
the validated site file, the choice is checked against the user's roles on the server side, and the chosen
profile is persisted with the child's state so a restarted hub rebuilds the same child.
"""

from __future__ import annotations

import json
import time
from importlib import import_module
from typing import cast

from jupyterhub.spawner import Spawner
from pydantic import TypeAdapter, ValidationError
from traitlets import (
    Any,
    Dict,
    Float,
    Instance,
    Integer,
    List,
    TraitError,
    Unicode,
    default,
    directional_link,
    validate,
)

from condorhub.schema import CondorProfile, LoginNodeProfile, Profile

from .choice import (
    JOB_PROFILES_ENV,
    ProfileChoiceError,
    ProfileLoad,
    allowed_profiles,
    choose_profile,
    job_profiles,
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


#: A site-file profile as the schema validates it (a LoginNodeProfile or a CondorProfile, by `kind`).
PROFILE = TypeAdapter(Profile)


def as_profile(value: object) -> LoginNodeProfile | CondorProfile:
    """A profile object from a schema model or a plain dict (a hand-written config or a saved state)."""
    if isinstance(value, (LoginNodeProfile, CondorProfile)):
        return value
    return PROFILE.validate_python(value)


def child_traits(profile: LoginNodeProfile | CondorProfile) -> dict[str, object]:
    """Traits of the child spawner that the profile sets: the schema's typed values, converted nowhere else."""
    traits: dict[str, object] = {"cpu_limit": float(profile.cpus), "mem_limit": profile.memory}
    if isinstance(profile, CondorProfile):
        traits["profile"] = profile  # HTCondorSpawner builds its one Request from it
    return traits


def _import_class(dotted: str) -> type[Spawner]:
    module, _, name = dotted.rpartition(".")
    return getattr(import_module(module), name)


class ProfileSpawner(Spawner):
    """Offer the site's resource profiles that the user's roles allow and start the chosen one."""

    profiles = List(
        Any(),
        config=True,
        help="""
        Resource profiles: the site file's `profiles` section as the schema validated it
        (`condorhub.schema.LoginNodeProfile` / `CondorProfile` objects; condorhub's jupyterhub_config.py
        sets this). Plain dicts with the site file's keys are accepted and validated the same way.
        """,
    )

    @validate("profiles")
    def _typed_profiles(self, proposal):
        try:
            return [as_profile(p) for p in proposal["value"]]
        except ValidationError as err:
            raise TraitError(f"ProfileSpawner.profiles: not a valid profile: {err}") from None

    @property
    def site_profiles(self) -> list[LoginNodeProfile | CondorProfile]:
        """`profiles`, typed: the validator above made every entry a schema object."""
        return cast("list[LoginNodeProfile | CondorProfile]", self.profiles)

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

    limit_warning = Float(
        900.0,
        config=True,
        help="""
        Seconds before a batch server's runtime limit (its profile's `runtime`, after which HTCondor ends
        the job) from which the hub's home page warns that the server will stop, counting down to it.
        0: no warning (the time left is still shown).
        """,
    )

    limit_last_warning = Float(
        300.0,
        config=True,
        help="""
        Seconds before a batch server's runtime limit at which the Lab warns a second time, with the time
        left (the first warning comes `limit_warning` before it). 0: one warning only.
        """,
    )

    activity_interval = Integer(
        300,
        config=True,
        help="""
        Seconds between a server's activity reports to the hub (JUPYTERHUB_ACTIVITY_INTERVAL of
        jupyterhub-singleuser). The idle culler judges by them, so condorhub's site file sets a third of the
        shortest idle timeout (at most JupyterHub's 300).
        """,
    )

    expected_stop_lifetime = Float(
        300.0,
        help="Seconds a reason given by expect_stop() waits for the stop it announces, then it is forgotten.",
    )

    profile = Any(
        None,
        allow_none=True,
        help="The profile this server was started with, a schema object (persisted in the spawner state).",
    )
    child_spawner = Instance(Spawner, allow_none=True)
    child_state = Dict()
    auth_state = Any(None, help="The user's auth state, as handed to run_auth_state_hook before start.")

    def __init__(self, **kwargs):
        # JupyterHub builds spawners with a dozen keyword arguments (user, orm_spawner, hub, cookie
        # options, ...); the child needs exactly the same ones, so keep them instead of listing them.
        self._construct_kwargs = dict(kwargs)
        super().__init__(**kwargs)
        # (reason, when) from expect_stop(): why the next stop happens, when whoever asks for it knows.
        self._expected_stop: tuple[str, float] | None = None

    # -- the form and the choice ----------------------------------------------------------------------

    async def _roles(self) -> list[str]:
        auth_state = self.auth_state
        if auth_state is None:
            auth_state = await self.user.get_auth_state()
        return list((auth_state or {}).get("roles", []))

    @default("options_form")
    def _options_form_default(self):
        async def form(spawner: ProfileSpawner) -> str:
            mine = allowed_profiles(spawner.site_profiles, await spawner._roles())
            # One choice is no choice: skip the form and start it directly.
            if len(mine) <= 1:
                return ""
            return render_notice(spawner.last_stop_reason) + render_form(mine, await spawner._pool_load(mine))

        return form

    async def _pool_load(self, mine: list[LoginNodeProfile | CondorProfile]) -> dict[str, ProfileLoad | None]:
        """How busy the pool is for each batch profile in ``mine`` (None each: the pool did not answer).

        Only a form with batch profiles asks the pool (so a hub without one never imports the bindings'
        client), and through the cached :class:`~condorhub.spawner.condor.pool_status.PoolStatus`: one
        pair of queries per few seconds however many people open the form.
        """
        batch = [p for p in mine if isinstance(p, CondorProfile)]
        if not batch:
            return {}
        from .condor.jobs import Request
        from .condor.pool_status import PoolStatus, busyness

        try:
            snapshot = await PoolStatus.instance(config=self.config).snapshot()
        except Exception:  # the form must work whatever the pool does
            self.log.exception("Pool status for the spawn form failed")
            snapshot = None
        load: dict[str, ProfileLoad | None] = {}
        for profile in batch:
            if snapshot is None:
                load[profile.slug] = None
            else:
                busy = busyness(Request.from_profile(profile), snapshot)
                load[profile.slug] = ProfileLoad(busy.message, busy.would_wait)
        return load

    async def options_from_form(self, formdata):
        # Checked here already so a crafted form is answered on the form itself, before any spawn
        # starts; apply_user_options checks again for requests through the REST API.
        options = options_from_form(formdata)
        profile = choose_profile(self.site_profiles, await self._roles(), options)
        return {"profile": profile.slug}

    @default("apply_user_options")
    def _apply_user_options_default(self):
        async def apply(spawner: ProfileSpawner, user_options: dict) -> None:
            spawner.profile = choose_profile(spawner.site_profiles, await spawner._roles(), user_options)
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

    def _construct_child(self) -> Spawner:
        if self.child_spawner is not None:
            return self.child_spawner
        if self.profile is None:
            raise ProfileChoiceError(500, "No profile chosen for this server.")
        kind = self.profile.kind
        if kind not in self.kind_spawners:
            raise ProfileChoiceError(500, f"Profile kind {kind!r} has no spawner configured.")
        child_class = _import_class(self.kind_spawners[kind])
        overrides = child_traits(self.profile)
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
        # What the Lab may submit jobs with: the user's batch profiles (the pool enforces them again).
        offered = job_profiles(self.site_profiles, await self._roles())
        child.environment = {**child.environment, JOB_PROFILES_ENV: json.dumps(offered), **self._limits_env()}
        self._expected_stop = None
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

    def _limits_env(self) -> dict[str, str]:
        """How often the server reports activity (the idle culler judges by it), and for the Lab's warnings
        before a batch server's runtime limit: the limit and when to warn (condorhub.lab.limits)."""
        env = {"JUPYTERHUB_ACTIVITY_INTERVAL": str(self.activity_interval)}
        runtime = getattr(self.profile, "runtime", None)
        if runtime:
            env["CONDORHUB_SERVER_RUNTIME"] = str(round(runtime))
            warnings = sorted({round(w) for w in (self.limit_warning, self.limit_last_warning) if w > 0}, reverse=True)
            env["CONDORHUB_LIMIT_WARNINGS"] = ",".join(map(str, warnings))
        return env

    def expect_stop(self, reason: str) -> None:
        """Whoever is about to stop this server says why (the idle culler through condorhub.culling); the
        stop that follows within `expected_stop_lifetime` records it as the reason users see."""
        self._expected_stop = (reason, time.monotonic())

    def _keep_stop_reason(self, child: Spawner) -> None:
        reason = getattr(child, "stop_reason", "")
        if reason:
            self.last_stop_reason = reason

    async def stop(self, now=False):
        expected, self._expected_stop = self._expected_stop, None
        if expected and time.monotonic() - expected[1] < self.expected_stop_lifetime:
            self.last_stop_reason = expected[0]
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
        if self.profile is not None:
            state["profile"] = self.profile.model_dump(mode="json")
        if self.child_spawner is not None:
            self.child_state = self.child_spawner.get_state()
        if self.child_state:
            state["child_state"] = self.child_state
        return state

    def load_state(self, state):
        super().load_state(state)
        self.last_stop_reason = state.get("last_stop_reason", self.last_stop_reason)
        self.profile = self._saved_profile(state.get("profile"))
        self.child_state = state.get("child_state", {})
        if self.profile is not None and self.child_state:
            # After a hub restart: rebuild the child so poll() can see the running server.
            self._adopt_timeouts(self._construct_child())

    def _saved_profile(self, saved: dict | None) -> LoginNodeProfile | CondorProfile | None:
        """The profile a server was started with, from its saved state.

        The saved copy is what the running job asked for, so it is kept even when the site file has changed
        that profile since. If it no longer validates (a newer condorhub renamed a key), the site's current
        profile of the same slug stands in, so a hub restart never loses a running server.
        """
        if not saved:
            return None
        try:
            return as_profile(saved)
        except ValidationError as err:
            current = next((p for p in self.site_profiles if p.slug == saved.get("slug")), None)
            self.log.warning(
                "Saved profile %r of %s no longer validates (%s); using the site's current one: %s",
                saved.get("slug"),
                self._log_name,
                err.errors()[0].get("msg"),
                current is not None,
            )
            return current

    def clear_state(self):
        super().clear_state()
        if self.child_spawner is not None:
            self.child_spawner.clear_state()
        self.child_spawner = None
        self.child_state = {}
        self.profile = None
