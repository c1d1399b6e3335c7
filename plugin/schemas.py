"""JSON Schema validation of connections, inputs and outputs, with messages safe to show.

jsonschema's own messages echo the rejected value (a failed `oneOf` prints the whole
connection, client secret included), so messages here are built only from the field's
path, the failing keyword and the schema's own constants. A schema may word a message
itself with `errorMessage` (the ajv-errors convention): a string for every error raised by
keywords of that schema object, or an object mapping a keyword to its message.
"""

from __future__ import annotations

import functools
import json
import math
import re
from collections.abc import Iterable

from jsonschema import Draft202012Validator, validators
from jsonschema.exceptions import ValidationError, best_match
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from plugin import resources
from plugin.errors import PluginError

MAX_NAME_CHARS = 64

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

_TYPE_NAMES = {
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "true or false",
    "object": "an object",
    "array": "a list",
    "null": "null",
}

# Keywords whose message only needs the schema's limit; the limit is a schema constant.
_TEMPLATES = {
    "minimum": "must be at least {}",
    "maximum": "must be at most {}",
    "exclusiveMinimum": "must be greater than {}",
    "exclusiveMaximum": "must be less than {}",
    "multipleOf": "must be a multiple of {}",
    "minLength": "must be at least {} characters long",
    "maxLength": "must be at most {} characters long",
    "minItems": "must have at least {} items",
    "maxItems": "must have at most {} items",
    "minProperties": "must have at least {} fields",
    "maxProperties": "must have at most {} fields",
    "uniqueItems": "must not contain duplicates",
    "pattern": "has an invalid format",
    "format": "must be a valid {}",
    "anyOf": "does not match any allowed form",
    "oneOf": "must match exactly one allowed form",
    "not": "is not allowed",
}


def _is_finite_number(checker, instance) -> bool:
    """Python's json accepts NaN and Infinity; NaN passes every minimum/maximum, so refuse both."""
    return Draft202012Validator.TYPE_CHECKER.is_type(instance, "number") and math.isfinite(instance)


# Draft 2020-12 with one change: "number" means a finite number. Formats stay annotations
# (no format_checker), so no format check can reach the network or a slow parser.
SchemaValidator = validators.extend(
    Draft202012Validator,
    type_checker=Draft202012Validator.TYPE_CHECKER.redefine("number", _is_finite_number),
)


@functools.cache
def registry() -> Registry:
    """Every schema in schemas/, keyed by its $id, so cross-file $refs never touch the network."""
    found: dict[str, Resource] = {}
    for relpath in resources.schema_paths():
        contents = resources.load_schema(relpath)
        resource = Resource.from_contents(contents, default_specification=DRAFT202012)
        uri = resource.id()
        if not uri or uri in found:
            raise RuntimeError(f"{relpath}: missing or duplicate $id")
        found[uri] = resource
    # No `retrieve` hook: a $ref outside these files fails loudly instead of fetching a URL.
    return Registry().with_resources(found.items()).crawl()


@functools.cache
def validator(relpath: str) -> SchemaValidator:
    """A cached draft 2020-12 validator for the schema at `relpath` ("schemas/x.json")."""
    schema_id = resources.load_schema(relpath)["$id"]
    return SchemaValidator(registry().contents(schema_id), registry=registry())


def validate(instance: object, relpath: str, *, error_cls: type[PluginError], root: str) -> None:
    """Raise `error_cls` naming the most relevant problem of `instance`, never its values."""
    errors = list(validator(relpath).iter_errors(instance))
    if errors:
        raise error_cls(_summarise(errors, root))


def validate_output(instance: object, relpath: str) -> None:
    """Raise PluginError `output_invalid` when an action's output breaks its schema (a bug guard)."""
    errors = list(validator(relpath).iter_errors(instance))
    if errors:
        raise PluginError(_summarise(errors, "output"), code="output_invalid")


def _summarise(errors: list[ValidationError], root: str) -> str:
    """One line for the best match, plus how many other fields have problems."""
    best = best_match(errors)
    where, what = _problems(best, root)[0]
    # Count each error where best_match would point for it (inside an anyOf, say), so one
    # field that fails several ways counts once.
    others = {place for error in errors for place, _ in _problems(best_match([error]), root)}
    others.discard(where)
    message = f"{where}: {what}"
    if others:
        message += f" (and {len(others)} more problem{'s' if len(others) > 1 else ''})"
    return message


def _problems(error: ValidationError, root: str) -> list[tuple[str, str]]:
    """(location, message) pairs for one error; a `required` error may name several fields."""
    path = list(error.absolute_path)
    custom = _custom_message(error)
    if custom is not None:
        return [(_location(root, path), custom)]
    if error.validator == "required":
        if missing := [name for name in error.validator_value if name not in error.instance]:
            return [(_location(root, [*path, name]), "required") for name in missing]
    if error.validator == "dependentRequired":
        if pairs := _missing_dependencies(error):
            return [
                (_location(root, [*path, needed]), f"required when {given} is given")
                for given, needed in pairs
            ]
    if error.validator == "additionalProperties":
        return [(_location(root, path), _unknown_fields(error))]
    return [(_location(root, path), _keyword_message(error))]


def _missing_dependencies(error: ValidationError) -> list[tuple[str, str]]:
    """(given field, missing field) pairs of a failed dependentRequired; both are schema names."""
    return [
        (given, needed)
        for given, needs in error.validator_value.items()
        if given in error.instance
        for needed in needs
        if needed not in error.instance
    ]


def _custom_message(error: ValidationError) -> str | None:
    """The schema's own wording (`errorMessage`) for this error's keyword, if it has one."""
    custom = error.schema.get("errorMessage") if isinstance(error.schema, dict) else None
    if isinstance(custom, dict):
        return custom.get(error.validator)
    return custom if isinstance(custom, str) else None


def _keyword_message(error: ValidationError) -> str:
    """A message from the failing keyword and the schema's constants only."""
    keyword, expected = error.validator, error.validator_value
    if keyword == "type":
        names = [_TYPE_NAMES.get(name, name) for name in _as_list(expected)]
        return "must be " + " or ".join(names)
    if keyword == "enum":
        return "must be one of " + ", ".join(_constant(value) for value in expected)
    if keyword == "const":
        return "must be " + _constant(expected)
    if keyword in ("minLength", "minItems") and expected == 1:
        return "must not be empty"
    if keyword in _TEMPLATES:
        return _TEMPLATES[keyword].format(_constant(expected))
    if keyword is None:  # a `false` schema: nothing is allowed here
        return "is not allowed"
    return f"fails the '{keyword}' rule"


def _unknown_fields(error: ValidationError) -> str:
    """Name the unknown keys (bounded, printable) of an object with additionalProperties false."""
    known = error.schema.get("properties", {})
    patterns = error.schema.get("patternProperties", {})
    unknown = [
        key
        for key in error.instance
        if key not in known and not any(re.search(pattern, str(key)) for pattern in patterns)
    ]
    shown = ", ".join(_quote(key) for key in unknown[:3]) + (", ..." if len(unknown) > 3 else "")
    return f"unknown field{'s' if len(unknown) > 1 else ''} {shown}"


def _location(root: str, path: Iterable[str | int]) -> str:
    """`root.field[3].sub`, quoting any part that is not a plain identifier."""
    text = root
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        elif _IDENTIFIER.fullmatch(part) and len(part) <= MAX_NAME_CHARS:
            text += f".{part}"
        else:
            text += f"[{_quote(part)}]"
    return text


def _quote(name: object) -> str:
    """A key name the caller chose, made safe to print: printable characters only, 64 at most."""
    printable = "".join(ch for ch in str(name) if ch.isprintable())
    if len(printable) > MAX_NAME_CHARS:
        printable = printable[: MAX_NAME_CHARS - 3] + "..."
    return f"'{printable}'"


def _constant(value: object) -> str:
    """A schema constant as text: strings bare, everything else as JSON."""
    return value if isinstance(value, str) else json.dumps(value)


def _as_list(value: object) -> list:
    """A keyword value that may be one item or a list, as a list."""
    return value if isinstance(value, list) else [value]
