"""The configuration reader: ``ovirt-cloud.conf`` and the environment → the records of
:mod:`ovirt_cloudprovider.core.settings`.

- :mod:`.schema`: every section and key and how its value is parsed (pure).
- :mod:`.reader`: reading the file, the environment overrides and the files it names; the one place that reads
  the password
  and the autoscaler's mark key.
"""

from ..core.settings import DEFAULT_CONFIG_PATH, Config, ConfigError, ConnectionConfig, Notice
from .reader import ENV_PASSWORD, ENV_PASSWORD_FILE, ENV_URL, ENV_USERNAME, load_config, read_mark_key, resolve_password
from .schema import parse_bind_address, rewrite_legacy_query, schema_keys

__all__ = [
    "DEFAULT_CONFIG_PATH",
    "ENV_PASSWORD",
    "ENV_PASSWORD_FILE",
    "ENV_URL",
    "ENV_USERNAME",
    "Config",
    "ConfigError",
    "ConnectionConfig",
    "Notice",
    "load_config",
    "parse_bind_address",
    "read_mark_key",
    "resolve_password",
    "rewrite_legacy_query",
    "schema_keys",
]
