"""What can go wrong talking to SI ASN, as the port promises it (sinks/siasn/port.py).

The split is the contract the outbox is built on: :class:`SiasnRejected` is final (someone has to fix the data;
the push becomes ``rejected``), :class:`SiasnUnavailable` is not (the push stays ``pending`` and is tried again
later). Any adapter of the port (the httpx client, a test's fake) raises these, so the pusher needs no
knowledge of which one it talks to. Texts never hold a credential, a token or a full NIP.
"""

from __future__ import annotations


class SiasnError(Exception):
    """Base of every error the port raises."""


class SiasnRejected(SiasnError):
    """SI ASN refused the data itself (validation): sending the same payload again cannot help.

    ``message`` is SI ASN's own message, kept verbatim because it is what the operator needs to fix the data.
    """

    def __init__(self, message: str, *, status_code: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status_code = status_code


class SiasnUnavailable(SiasnError):
    """SI ASN could not be reached or kept failing: the same payload may well succeed later."""

    def __init__(self, message: str, *, attempts: int = 0) -> None:
        super().__init__(message)
        self.attempts = attempts


class SiasnAuthError(SiasnUnavailable):
    """Credentials refused or access forbidden (allow-list): not a data problem, so the result stays pending."""


class SiasnConfigError(ValueError):
    """The settings do not describe a usable client; names the variables, never their values."""
