"""Where the manifest and the schemas live, and cached loaders for them.

The manifest and schemas/ sit at the top of the source tree (contract) and are copied into
the wheel as plugin/_data/, so the same relative paths work from a checkout and an install.
"""

from __future__ import annotations

import copy
import functools
import json
from pathlib import Path

import plugin
from plugin.errors import InputError

MANIFEST_FILE = "manifest.json"
SCHEMA_DIR = "schemas"


@functools.cache
def data_dir() -> Path:
    """The folder holding manifest.json and schemas/: plugin/_data when installed, else the checkout root."""
    installed = Path(plugin.__file__).resolve().parent / "_data"
    if installed.is_dir():
        return installed
    return Path(plugin.__file__).resolve().parent.parent


def resolve(relpath: str) -> Path:
    """The absolute path of a file named relative to data_dir(), refusing paths that leave it."""
    root = data_dir()
    path = (root / relpath).resolve()
    # Manifest paths are data, not code: never let one reach outside the plugin's own files.
    if not path.is_relative_to(root):
        raise ValueError(f"path {relpath!r} leaves the plugin's data folder")
    return path


@functools.cache
def _read_json(path: Path) -> dict:
    """Parse one JSON file once per process; callers get copies, so this stays pristine."""
    with path.open(encoding="utf-8") as handle:
        return json.load(handle)


def load_manifest() -> dict:
    """The parsed manifest.json (a fresh copy each time, so callers may change it freely)."""
    return copy.deepcopy(_read_json(resolve(MANIFEST_FILE)))


def load_schema(relpath: str) -> dict:
    """The parsed schema at `relpath`, relative to data_dir() as in the manifest ("schemas/x.json")."""
    return copy.deepcopy(_read_json(resolve(relpath)))


def schema_paths() -> list[str]:
    """Every schema file, as sorted paths relative to data_dir() ("schemas/x.json")."""
    folder = data_dir() / SCHEMA_DIR
    return sorted(f"{SCHEMA_DIR}/{path.name}" for path in folder.glob("*.json"))


def manifest_action(action_id: str) -> dict:
    """The manifest entry of one action; InputError (input_invalid) when no action has that id."""
    for action in load_manifest()["actions"]:
        if action["id"] == action_id:
            return action
    known = ", ".join(action["id"] for action in load_manifest()["actions"])
    # The id may come from a command line: show a tidy, bounded form of it, never raw bytes.
    shown = "".join(ch for ch in str(action_id)[:64] if ch.isprintable())
    raise InputError(f"unknown action '{shown}'; known actions: {known}")
