"""Reading the planning configuration files: packaged YAML/CSV and user files.

One place for what the rules, fee and patient-context loaders share: finding a
packaged file in ``odontoscan.configs`` (importlib.resources, so it works from a
wheel), reading a YAML mapping, and turning a pydantic ``ValidationError`` into a
:class:`ConfigError` whose message names the file and every bad key.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from odontoscan.datasets.errors import ConfigError, describe_validation_error

try:
    from importlib.resources.abc import Traversable
except ImportError:  # Python 3.10
    from importlib.abc import Traversable

ModelT = TypeVar("ModelT", bound=BaseModel)


def packaged(*parts: str) -> Traversable:
    """A file shipped in ``odontoscan.configs``, e.g. ``packaged("fees", "example_usd.yaml")``."""
    node = resources.files("odontoscan.configs")
    for part in parts:
        node = node / part
    return node


def read_text(source: Path | Traversable, what: str, name: str | None = None) -> str:
    """The text of ``source``; a ConfigError naming ``what`` (and ``name``, default the
    path) when it cannot be read."""
    shown = f"'{source}'" if name is None else name
    if not source.is_file():
        raise ConfigError(f"{what} {shown} does not exist.")
    try:
        return source.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{what} {shown} cannot be read ({type(exc).__name__}).") from None


def read_yaml_mapping(source: Path | Traversable, what: str, name: str | None = None) -> dict[str, Any]:
    """Parse ``source`` as a YAML mapping (``what`` names the kind of file in errors).

    Syntax errors give the line and column only, never the offending text, so no
    file content reaches a message.
    """
    shown = f"'{source}'" if name is None else name
    text = read_text(source, what, name)
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "syntax error"
        raise ConfigError(f"{what} {shown} is not valid YAML{where}: {problem}.") from None
    if not isinstance(document, dict):
        raise ConfigError(f"{what} {shown} must be a YAML mapping of keys to values.")
    return document


def validate(model: type[ModelT], document: Any, what: str, source: str) -> ModelT:
    """``model.model_validate(document)``, with a ConfigError that names the bad keys;
    ``source`` is how the file is named in the message (e.g. "'plan_rules.yaml'")."""
    try:
        return model.model_validate(document)
    except ValidationError as exc:
        raise ConfigError(describe_validation_error(exc, what, source)) from None


__all__ = ["Traversable", "packaged", "read_text", "read_yaml_mapping", "validate"]
