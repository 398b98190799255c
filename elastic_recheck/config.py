"""Settings: one frozen object built at the CLI edge and passed down."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

import yaml

from .errors import ConfigError

BACKENDS = ("embedded",)


def default_data_dir(env: Mapping[str, str]) -> Path:
    base = env.get("XDG_DATA_HOME") or os.path.join(env.get("HOME", "."), ".local", "share")
    return Path(base) / "elastic-recheck"


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    backend: str = "embedded"

    @property
    def index_dir(self) -> Path:
        return self.data_dir / "index"


def load_settings(
    config_path: str | None = None,
    data_dir: str | None = None,
    env: Mapping[str, str] | None = None,
) -> Settings:
    """Defaults < config file (``--config`` / ``ER_CONFIG``) < ``ER_*`` environment < options."""
    env = os.environ if env is None else env
    values: dict[str, object] = {}
    config_path = config_path or env.get("ER_CONFIG")
    if config_path:
        try:
            with open(config_path, encoding="utf-8") as handle:
                loaded = yaml.safe_load(handle) or {}
        except OSError as exc:
            raise ConfigError(f"{config_path}: cannot read the config file: {exc.strerror}") from None
        except yaml.YAMLError as exc:
            raise ConfigError(f"{config_path}: not valid YAML: {exc}") from None
        if not isinstance(loaded, dict):
            raise ConfigError(f"{config_path}: the config file must be a mapping of settings")
        unknown = set(loaded) - {"data_dir", "backend"}
        if unknown:
            raise ConfigError(f"{config_path}: unknown setting(s): {', '.join(sorted(unknown))}")
        values.update(loaded)
    for key in ("data_dir", "backend"):
        env_value = env.get(f"ER_{key.upper()}")
        if env_value:
            values[key] = env_value
    if data_dir:
        values["data_dir"] = data_dir
    backend = str(values.get("backend", "embedded"))
    if backend not in BACKENDS:
        raise ConfigError(f"backend {backend!r} is not available (choose from: {', '.join(BACKENDS)})")
    directory = Path(str(values["data_dir"])).expanduser() if values.get("data_dir") else default_data_dir(env)
    return Settings(data_dir=directory, backend=backend)
