"""Errors of the local control plane."""


class DevEnvError(RuntimeError):
    """The local environment could not be started or reached; the message says what to do."""
