"""Secrets and SSM parameters for local mode, so a job whose headers say `{secret: NAME}` runs locally.

Values come from the environment (`--secret NAME=env:VAR`) or from `cronpilot --local secrets set`,
which keeps them between commands in a file beside the state file (owner-only permissions, plain text:
for development values). Never from a command-line argument: that would land in shell history and in
the process list. They are written into local mode's Secrets Manager and SSM (moto), which the executor
reads exactly as it reads AWS.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

Kind = Literal["secret", "parameter"]

SECRETS_FILE_NAME = "local-secrets.json"
# Secrets Manager's and SSM's own rules for names.
_NAME_RULES: dict[Kind, tuple[re.Pattern[str], str]] = {
    "secret": (re.compile(r"^[A-Za-z0-9/_+=.@-]{1,512}$"), "letters, digits and /_+=.@- (at most 512)"),
    "parameter": (re.compile(r"^[A-Za-z0-9/_.-]{1,1011}$"), "letters, digits and /_.- (at most 1011)"),
}


class LocalSecretsError(ValueError):
    """A secret given to local mode is unusable; the message is one line with the fix."""


@dataclass
class LocalSecrets:
    secrets: dict[str, str] = field(default_factory=dict)
    parameters: dict[str, str] = field(default_factory=dict)

    def of(self, kind: Kind) -> dict[str, str]:
        return self.secrets if kind == "secret" else self.parameters

    def put(self, kind: Kind, name: str, value: str) -> None:
        check_name(kind, name)
        if not value:
            raise LocalSecretsError(f"the value of {kind} {name!r} is empty: give a value")
        self.of(kind)[name] = value

    def overridden_by(self, other: LocalSecrets) -> LocalSecrets:
        return LocalSecrets({**self.secrets, **other.secrets}, {**self.parameters, **other.parameters})

    def __repr__(self) -> str:  # never the values, whoever prints this
        return f"LocalSecrets(secrets={sorted(self.secrets)}, parameters={sorted(self.parameters)})"


def check_name(kind: Kind, name: str) -> None:
    pattern, allowed = _NAME_RULES[kind]
    if not pattern.match(name):
        raise LocalSecretsError(f"{kind} name {name[:80]!r} is not valid: use {allowed}")


def from_environment(kind: Kind, specs: list[str], environ: dict[str, str] | None = None) -> LocalSecrets:
    """`NAME=env:VAR` options -> values read from the environment."""
    environ = dict(os.environ) if environ is None else environ
    given = LocalSecrets()
    for spec in specs:
        name, _, source = spec.partition("=")
        if not source.startswith("env:") or not source[4:]:
            raise LocalSecretsError(
                f"--{kind} {name[:80]}=...: give the value through an environment variable, as "
                f"--{kind} {name[:80] or 'NAME'}=env:VAR (a value on the command line would be kept in "
                "shell history)"
            )
        variable = source[4:]
        if variable not in environ:
            raise LocalSecretsError(f"--{kind} {name}=env:{variable}: {variable} is not set: export it first")
        given.put(kind, name, environ[variable])
    return given


def secrets_file(state_file: Path) -> Path:
    return state_file.parent / SECRETS_FILE_NAME


def load(path: Path) -> LocalSecrets:
    if not path.exists():
        return LocalSecrets()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return LocalSecrets(dict(data.get("secrets", {})), dict(data.get("parameters", {})))
    except (OSError, ValueError, AttributeError, TypeError):
        raise LocalSecretsError(
            f"{path}: not a local secrets file: remove it and set the secrets again"
        ) from None


def save(path: Path, secrets: LocalSecrets) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    # Created owner-only from the start (not chmod-ed after being written readable).
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        json.dump({"secrets": secrets.secrets, "parameters": secrets.parameters}, handle, indent=2)
    temporary.replace(path)


def install(cloud: Any, secrets: LocalSecrets) -> None:
    """Write the values into local mode's Secrets Manager and SSM (cloud: a started LocalCloud)."""
    if secrets.secrets:
        manager = cloud.client("secretsmanager")
        for name, value in secrets.secrets.items():
            manager.create_secret(Name=name, SecretString=value)
    if secrets.parameters:
        ssm = cloud.client("ssm")
        for name, value in secrets.parameters.items():
            ssm.put_parameter(Name=name, Value=value, Type="SecureString", Overwrite=True)
