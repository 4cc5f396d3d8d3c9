"""Role definitions: which agent plays a role and through which driver.

Defaults come from the plan (lead → claude, quality → codex, execution →
cursor); a workspace's ``coord.yaml`` may rebind any role.
"""

from __future__ import annotations

import difflib
import logging
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from coordinator.core.errors import ConfigError
from coordinator.core.plan import CompiledPlan, DriverName, RoleBinding
from coordinator.core.ports import DRIVERS
from coordinator.core.roles import RoleDefinition
from coordinator.core.workspace import Workspace
from coordinator.core.yaml_io import Loc, format_loc, load_file
from roles.providers.config import key_available, provider_config
from roles.providers.errors import ProviderConfigError

log = logging.getLogger(__name__)

def _auto_driver(binding: RoleBinding) -> tuple[str, str]:
    if binding.provider not in (None, "offline"):  # llm hook: a provider whose key is set plays the role
        if key_available(provider_config(binding)):
            return "llm", f"provider {binding.provider!r} configured and its key is set"
        return "offline", (f"provider {binding.provider!r} configured but no key in "
                           f"{provider_config(binding).key_env}: offline stand-in")
    return "offline", "no LLM or CLI driver configured: offline stand-in"


def _check_llm(name: str, binding: RoleBinding, driver: str, config_file: str) -> None:
    """An llm-driven role needs a provider and a model, and a reachable key (named, never shown)."""
    if binding.provider is None:
        raise ConfigError("driver 'llm' needs a provider (anthropic, openai, openai_compatible, offline)",
                          file=config_file, path=f"roles.{name}.provider")
    if binding.model is None:
        raise ConfigError(f"provider {binding.provider!r} needs a model", file=config_file,
                          path=f"roles.{name}.model")
    try:
        config = provider_config(binding)
    except ProviderConfigError as e:
        raise ConfigError(e.message, file=config_file, path=f"roles.{name}") from None
    if driver == "llm" and not key_available(config):
        raise ConfigError(f"provider {binding.provider!r} needs an API key: set {config.key_env} "
                          "(read from the environment only, never stored)", file=config_file,
                          path=f"roles.{name}.api_key_env")


SETTINGS_KEYS = ("roles", "notify", "workers", "database", "workspace_id")
"""What a workspace's ``coord.yaml`` may set (each read where it is used)."""


def load_workspace_roles(config: Path) -> dict[str, dict[str, Any]]:
    """Role overrides from a workspace's ``coord.yaml`` (``roles:`` section)."""
    if not config.exists():
        return {}
    located = load_file(config)
    data = located.data or {}
    if not isinstance(data, dict):
        raise ConfigError("expected a mapping", file=str(config))
    for key in data:
        if key not in SETTINGS_KEYS:
            close = difflib.get_close_matches(str(key), SETTINGS_KEYS, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise ConfigError(f"unknown setting {key!r}: {hint}(coord.yaml holds {', '.join(SETTINGS_KEYS)}; a plan's "
                              "settings go in the plan)", file=str(config), path=str(key), line=located.line_of((key,)))
    roles = data.get("roles") or {}
    if not isinstance(roles, dict):
        raise ConfigError("'roles' must be a mapping of role → {agent, driver, model}",
                          file=str(config), path="roles")
    return roles


def resolve_roles(plan_roles: dict[str, RoleBinding], overrides: dict[str, dict[str, Any]],
                  config_file: str = "coord.yaml") -> dict[str, RoleDefinition]:
    """Combine plan bindings with workspace overrides and pick each role's driver."""
    out: dict[str, RoleDefinition] = {}
    for name, binding in plan_roles.items():
        if name in overrides:
            try:
                binding = RoleBinding.model_validate({**binding.model_dump(), **overrides[name]})
            except ValidationError as e:
                err = e.errors()[0]
                where: Loc = ("roles", name, *(str(part) for part in err["loc"]))
                message = "unknown field" if err["type"] == "extra_forbidden" else \
                    str(err["msg"]).removeprefix("Value error, ")
                raise ConfigError(message, file=config_file, path=format_loc(where),
                                  line=_line_of(config_file, where)) from None
        if binding.driver == "auto":
            driver, reason = _auto_driver(binding)
        else:
            driver, reason = binding.driver, f"set to {binding.driver!r}"
        if driver == "llm" or (binding.provider is not None and binding.driver == "auto"):
            _check_llm(name, binding, driver, config_file)
        if driver not in DRIVERS:
            raise ConfigError(f"driver {driver!r} is not available in this version "
                              f"(available: {', '.join(DRIVERS.names())})", file=config_file,
                              path=f"roles.{name}.driver")
        agents = DRIVERS.get(driver).traits.agents
        if agents is not None and binding.agent not in agents:
            raise ConfigError(f"driver {driver!r} runs {', '.join(agents)}; role {name!r} is played by "
                              f"{binding.agent!r}", file=config_file, path=f"roles.{name}.agent")
        out[name] = RoleDefinition(name, binding.agent, DriverName(driver), binding.model, binding.budget_usd, reason,
                                   executable=binding.executable, flags=tuple(binding.flags),
                                   permissions=binding.permissions, binding=binding)
    unknown = sorted(set(overrides) - set(plan_roles))
    if unknown:
        log.info("%s binds roles the plan does not declare (ignored): %s", config_file, ", ".join(unknown))
    return out


def roles_for(ws: Workspace, plan: CompiledPlan) -> dict[str, RoleDefinition]:
    """The plan's roles as the workspace's ``coord.yaml`` binds them."""
    return resolve_roles(plan.roles, load_workspace_roles(ws.config), str(ws.config))


def _line_of(config_file: str, where: Loc) -> int | None:
    """The line of ``where`` in the workspace settings file, when it can be read."""
    try:
        return load_file(Path(config_file)).line_of(where)
    except ConfigError:
        return None
