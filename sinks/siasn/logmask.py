"""NIPs are personal data (domain.md §6), and httpx logs every request URL (which carries them) at INFO.

SI ASN's read endpoints put the NIP in the path (``/pns/rw-kompetensi/{nip}``), so httpx's own
``HTTP Request: GET …/199001012015031001 "HTTP/1.1 200 OK"`` line would put a full NIP in any log that keeps
INFO. A filter on the ``httpx`` logger masks every 18-digit run in those lines. It is installed when a
:class:`~sinks.siasn.client.SiasnClient` is built (the only code that sends NIPs through httpx), not when a
module is imported: importing a module should not change global logging. Tokens and secrets never appear in
these lines (they travel in headers and form bodies, which httpx does not log).
"""

from __future__ import annotations

import logging
import re

from schemas.nip import mask_nip

_NIP_RE = re.compile(r"(?<!\d)\d{18}(?!\d)")


def mask_nips(text: str) -> str:
    """Mask every 18-digit run in ``text`` (URLs, messages) the way :func:`schemas.nip.mask_nip` does."""
    return _NIP_RE.sub(lambda m: mask_nip(m.group()), text)


class NipMaskFilter(logging.Filter):
    """Rewrites a record whose message holds a NIP into the masked message (the record is never dropped)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = mask_nips(message)
        if masked != message:
            record.msg, record.args = masked, None
        return True


def install_httpx_nip_mask(logger_name: str = "httpx") -> None:
    """Add :class:`NipMaskFilter` to httpx's logger, once however often it is called."""
    logger = logging.getLogger(logger_name)
    if not any(isinstance(f, NipMaskFilter) for f in logger.filters):
        logger.addFilter(NipMaskFilter())
