"""The two kinds of failure every integration reports, whatever the SDK underneath raised."""


class IntegrationError(Exception):
    """Base class; the message is meant for the case page or the admin."""


class TransientIntegrationError(IntegrationError):
    """Worth retrying with backoff: throttling, 5xx, timeouts, connection resets."""


class PermanentIntegrationError(IntegrationError):
    """Retrying will not help: validation errors, 4xx, bad input."""
