"""/health and /metrics basics."""

import json

from conftest import metric_value


def test_health(server):
    status, body = server.http_get("/health")
    assert status == 200
    assert json.loads(body) == {"status": "ok"}


def test_metrics_is_prometheus_text(server):
    status, body = server.http_get("/metrics")
    assert status == 200
    assert "# TYPE " in body
    samples = [l for l in body.splitlines() if l and not l.startswith("#")]
    for line in samples:
        name_and_labels, _, value = line.rpartition(" ")
        assert name_and_labels, line
        float(value)  # every sample value parses as a number


async def test_errors_counted_in_metrics(h):
    before = metric_value(h.srv.http_get("/metrics")[1], "parley_errors_total", 'code="bad_json"') or 0.0
    ws = await h.open()
    for _ in range(3):
        await ws.send_raw("{not json")
        e = await ws.recv_type("error")
        assert e["code"] == "bad_json"
    after = metric_value(h.srv.http_get("/metrics")[1], "parley_errors_total", 'code="bad_json"')
    assert after is not None, "parley_errors_total{code=\"bad_json\"} missing from /metrics"
    assert after >= before + 3
