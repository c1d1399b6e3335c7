"""The host protocol: validate the call, run the action's entrypoint, validate what it returns."""

from __future__ import annotations

import importlib

from plugin import schemas
from plugin.config import load_connection
from plugin.errors import InputError
from plugin.resources import manifest_action


def run_action(action_id: str, inputs: dict, connection: dict) -> dict:
    """Run one manifest action; whole-call problems raise a PluginError subclass."""
    action = manifest_action(action_id)
    if not isinstance(inputs, dict):
        raise InputError("inputs: must be a JSON object")
    schemas.validate(inputs, action["input_schema"], error_cls=InputError, root="inputs")
    conn = load_connection(connection)
    output = _entrypoint(action["entrypoint"])(inputs, conn)
    schemas.validate_output(output, action["output_schema"])
    return output


def _entrypoint(spec: str):
    """The function a `module:function` entrypoint names."""
    module, _, function = spec.partition(":")
    return getattr(importlib.import_module(module), function)
