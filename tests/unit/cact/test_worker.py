"""The worker composed with the sinks (cact/worker.py): buildable twice in one process, its /metrics carrying every
series the alert rules read, and the services the settings ask for."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest

from cact.worker import StoreViews, build_app, services
from schemas.settings import Settings
from sinks.metrics import SinkMetrics, build_info
from sinks.store import ResultsStore
from streams.metrics import new_registry
from support.promql_names import alert_queries, metric_names, missing

ALERTS = Path(__file__).resolve().parents[3] / "deploy" / "prometheus" / "alerts.yml"


def settings(tmp_path: Path, **changes: Any) -> Settings:
    return Settings(database_url=f"sqlite:///{tmp_path / 'results.db'}", data_dir=tmp_path / "worker",
                    operator_token="worker-test-" + "t" * 20, **changes)


def test_the_worker_builds_twice_and_serves_every_series_the_alerts_read(tmp_path: Path) -> None:
    first, second = new_registry(), new_registry()
    build_app(settings(tmp_path / "a"), first)
    build_app(settings(tmp_path / "b"), second)  # a second app, same process: no duplicated timeseries
    read = {name for _, expr in alert_queries(ALERTS.read_text()) for name in metric_names(expr)}
    assert read, "the alert rules read no series?"
    for registry in (first, second):
        text = generate_latest(registry).decode()
        # a histogram or counter is read as name_bucket/name_total; its family counts (tests/support/promql_names.py)
        assert not missing(read, text), f"alerts read series the worker does not serve: {missing(read, text)}"
        assert "process_resident_memory_bytes" in text and "python_gc_objects_collected_total" in text
        assert "cact_siasn_deliveries_total" in text and "cact_sink_db_up" in text
        assert "cact_event_latency_seconds_bucket" in text and "cact_sink_batch_events_bucket" in text
        assert registry.get_sample_value("cact_build_info", build_info()) == 1.0


def test_the_services_are_those_the_settings_ask_for(tmp_path: Path) -> None:
    store, metrics = ResultsStore(f"sqlite:///{tmp_path / 'r.db'}"), SinkMetrics(CollectorRegistry())
    names = {(sink, push): [s.name for s in services(settings(tmp_path, sink_in_worker=sink,
                                                                siasn_push_enabled=push), store, metrics)]
             for sink in (False, True) for push in (False, True)}
    assert names == {(False, False): [], (True, False): ["sink"], (False, True): ["siasn_pusher"],
                     (True, True): ["sink", "siasn_pusher"]}
    sink = services(settings(tmp_path, sink_in_worker=True), store, metrics)[0]
    assert sink.crash and "sink" in sink.crash  # a dead sink must not leave a worker up
    store.dispose()


def test_the_views_answer_from_the_store(tmp_path: Path) -> None:
    store = ResultsStore(f"sqlite:///{tmp_path / 'r.db'}")
    store.create_schema()
    views = StoreViews(store, settings(tmp_path))
    overview = views.attendance_overview(threshold=0.15, silent_after_s=600, lab_last_seen={})
    assert overview["sessions"] == [] and overview["overall"]["no_show_rate"] is None
    assert views.absent("S-unknown") is None
    assert views.outbox_status()["pending"] == 0
    assert views.held_back() == {"total": 0, "results": []}
    assert views.reports() == {"due": [], "builds": []}
    assert views.report_file("ACT-1", 1, "rekap-ACT-1.pdf") is None
    store.dispose()


def test_the_worker_trims_its_heap_on_a_timer_where_the_c_library_can(tmp_path: Path, monkeypatch: Any) -> None:
    import cact.worker

    with_trim = build_app(settings(tmp_path / "a"), new_registry())
    monkeypatch.setattr(cact.worker, "heap_trimmer", lambda: None)  # musl, macOS: no malloc_trim
    without = build_app(settings(tmp_path / "b"), new_registry())
    assert len(with_trim._app_tasks) == len(without._app_tasks) + 1
