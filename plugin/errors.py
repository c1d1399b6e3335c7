"""The whole-call errors of the plugin: one root, a few leaves, each with a stable code.

Messages never hold a secret, a token, or a rejected input value; they name the field instead.
"""


class PluginError(Exception):
    """Root of every error that concerns a whole call; `.code` is stable for hosts to match on."""

    code = "plugin_error"

    def __init__(self, message: str, *, code: str | None = None):
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code

    def to_dict(self) -> dict:
        """The `{"code", "message"}` object printed by the CLI and returned to hosts."""
        return {"code": self.code, "message": self.message}


class InputError(PluginError):
    """The action's inputs are malformed (wrong type, out of range, unknown key)."""

    code = "input_invalid"


class ConfigError(PluginError):
    """The connection is malformed (`config_invalid`) or points somewhere unsafe (`unsafe_endpoint`)."""

    code = "config_invalid"


class AuthError(PluginError):
    """The sign-in service rejected the credential, or a freshly issued token got a 401."""

    code = "auth_failed"


class PermissionDeniedError(PluginError):
    """The stats route answered 403: the app lacks `Ip.Read.All`."""

    code = "permission_denied"


class ServiceUnavailableError(PluginError):
    """The sign-in service could not be reached, failed TLS verification, or kept failing."""

    code = "service_unavailable"
