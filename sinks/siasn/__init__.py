"""SI ASN: the port the pipeline pushes results through, its httpx adapter, the outbox pusher, holds, an emulator.

- ``errors``: what the port raises (rejected: final; unavailable: try later) — owned by the port, not an adapter;
- ``port``: the ``SiasnPort`` Protocol the pusher depends on, and ``DeliveryResult``;
- ``config``: ``SiasnConfig``, built from ``schemas.settings.Settings`` (the ``CACT_SIASN_*`` variables);
- ``client``: ``SiasnClient``, the httpx adapter (retries on schemas/retry.py), with ``auth`` (the two token
  layers), ``ratelimit`` (client-side pacing), ``wire`` (payloads and answers) and ``logmask`` (NIPs out of
  httpx's log lines);
- ``push``: the outbox pusher and the outbox's status; ``holds``: operators' hold/release/void decisions;
- ``emulator``: a stand-in SI ASN over real HTTP for the demo and the tests.
"""
