"""Test support: what more than one test module needs, in plain importable modules rather than conftest files.

Import it as ``support`` (``from support.store_scenarios import StoreCases``), from a test, a conftest or
another support module. That works because tests/conftest.py lives in a directory without ``__init__.py``:
pytest's default import mode (``prepend``) puts tests/ on ``sys.path`` before it imports any test, so
``support`` is a top-level package there, whether pytest was started as ``pytest`` or ``python -m pytest``.
Nothing outside tests/ imports it (the bench has its own harness); it is not installed.

Conftest files keep only fixtures and hooks, each a few lines calling into these modules:

- ``store_scenarios``: contract-valid output events and the results store's scenarios, run unchanged on
  SQLite (tests/unit) and PostgreSQL (tests/integration): ``StoreCases``, ``STORE_SCENARIOS``, ``nip``.
- ``hold_scenarios``: the SI ASN outbox holds and operator decisions on both dialects: ``HoldCases``.
- ``independent_scorer``: docs/scoring.md and docs/accreditation.md re-implemented from the simulator's truth,
  sharing no code with streams/: ``IndependentScorer``, ``IndependentAccreditation``.
- ``database``: a fresh PostgreSQL database per test or session, and a store's rows as plain data.
- ``contract_corpus``: the generated corpus and verdicts of the contract's differential tests.
- ``clock``: a clock a test moves by hand, for code that takes ``clock=`` or ``now=`` instead of sleeping.
- ``deploy_schemas``: the vendored CRD schemas, strict validation of deploy/k8s, and the PrometheusRule
  generated from deploy/prometheus/alerts.yml.
- ``promql_names``: the metric names a PromQL expression reads (dashboards and alert rules against /metrics).
- ``tansu``: the embedded broker started with flags of a test's choosing.
- ``sasl_front``: a SASL (SCRAM-SHA-256/512, PLAIN) and TLS front for Tansu, whose own ``--authentication``
  checks no password and serves no TLS (tests/integration/streams/test_kafka_sasl.py says why).
"""
