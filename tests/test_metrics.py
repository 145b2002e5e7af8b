"""Prometheus metrics on the fast tier: what a command, a webhook, a transaction, a failing
LiveKit or homeserver, and the stored state (inbox, meetings, jobs) show, and the listener."""

from __future__ import annotations

from pathlib import Path

import aiohttp
from fast import ROOM, FastBridge
from harness import DatabaseTarget, bridge_config
from livekit_double import LiveKitDouble

from appservice.app import BridgeServer
from appservice.local.ports import free_port
from appservice.metrics import BridgeMetrics, metrics_app, serve_metrics
from appservice.settings import parse_settings
from appservice.wiring import Options
from bridge.jobs import JobQueue


def value(metrics: BridgeMetrics, name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(name, labels) or 0.0


async def refreshed(fast: FastBridge) -> BridgeMetrics:
    metrics = fast.running.metrics
    await metrics.refresh(fast.running.db, fast.clock.now_ms())
    return metrics


async def test_a_command_counts_by_action_and_the_meeting_is_live(fast: FastBridge) -> None:
    await fast.say("!visio")
    await fast.say("!visio help")
    metrics = await refreshed(fast)
    assert value(metrics, "visio_bridge_commands_total", action="start") == 1
    assert value(metrics, "visio_bridge_commands_total", action="help") == 1
    assert value(metrics, "visio_bridge_meetings_live") == 1
    # Both events were handled and timed; the double's room_started webhook was answered 200.
    assert value(metrics, "visio_bridge_inbox_event_seconds_count", outcome="ok") >= 2
    assert value(metrics, "visio_bridge_webhook_seconds_count", status="200") >= 1
    await fast.say("!visio end")
    metrics = await refreshed(fast)
    assert value(metrics, "visio_bridge_meetings_live") == 0


async def test_a_transaction_is_timed_by_status(fast: FastBridge) -> None:
    url = f"{fast.base_url}/_matrix/app/v1/transactions/txn-1"
    async with aiohttp.ClientSession() as session:
        async with session.put(
            url, json={"events": []}, headers={"Authorization": "Bearer hs-token-fast"}
        ) as response:
            assert response.status == 200
        async with session.put(url, json={"events": []}) as response:
            assert response.status == 401
    metrics = fast.running.metrics
    assert value(metrics, "visio_bridge_transaction_seconds_count", status="200") == 1
    assert value(metrics, "visio_bridge_transaction_seconds_count", status="401") == 1


async def test_livekit_errors_are_counted_by_operation(fast: FastBridge) -> None:
    fast.livekit.fail_next("CreateRoom")
    await fast.say("!visio")
    metrics = fast.running.metrics
    assert (
        value(metrics, "visio_bridge_livekit_errors_total", operation="create_room", reason="error")
        == 1
    )


async def test_homeserver_errors_and_failed_events_are_counted(fast: FastBridge) -> None:
    fast.matrix.homeserver_down()
    await fast.say("!visio help")
    metrics = fast.running.metrics
    failures = [
        sample
        for family in metrics.registry.collect()
        if family.name == "visio_bridge_homeserver_errors"
        for sample in family.samples
        if sample.name.endswith("_total") and sample.labels["reason"] == "unreachable"
    ]
    assert sum(sample.value for sample in failures) >= 1
    assert value(metrics, "visio_bridge_inbox_event_seconds_count", outcome="error") >= 1
    fast.matrix.homeserver_back()


async def test_inbox_depth_and_the_age_of_its_oldest_event(fast: FastBridge) -> None:
    event = {"event_id": "$waiting", "type": "m.room.message", "room_id": ROOM, "sender": "@x:y"}
    await fast.running.inbox.accept("txn-w", [event], fast.clock.now_ms())
    fast.clock.now += 90_000
    metrics = await refreshed(fast)
    assert value(metrics, "visio_bridge_inbox_pending") == 1
    assert value(metrics, "visio_bridge_inbox_oldest_pending_age_seconds") == 90
    await fast.settle()
    metrics = await refreshed(fast)
    assert value(metrics, "visio_bridge_inbox_pending") == 0
    assert value(metrics, "visio_bridge_inbox_oldest_pending_age_seconds") == 0


async def test_jobs_by_kind_and_state(fast: FastBridge) -> None:
    await fast.say("!visio")
    meeting_id = await fast.running.db.fetchval("SELECT id FROM meetings")
    await JobQueue(fast.running.db, fast.clock).enqueue("transcribe", meeting_id, {})
    metrics = await refreshed(fast)
    assert value(metrics, "visio_bridge_jobs", kind="transcribe", state="queued") == 1


async def test_the_listener_serves_prometheus_text(fast: FastBridge) -> None:
    await fast.say("!visio")
    port = free_port()
    app = metrics_app(fast.running.metrics, fast.running.db, fast.clock.now_ms)
    async with (
        serve_metrics(app, "127.0.0.1", port),
        aiohttp.ClientSession() as session,
        session.get(f"http://127.0.0.1:{port}/metrics") as response,
    ):
        assert response.status == 200
        assert response.content_type == "text/plain"
        text = await response.text()
    assert 'visio_bridge_commands_total{action="start"} 1.0' in text
    assert "visio_bridge_meetings_live 1.0" in text
    for name in (
        "visio_bridge_webhook_seconds_bucket",
        "visio_bridge_transaction_seconds",
        "visio_bridge_inbox_pending",
        "visio_bridge_inbox_oldest_pending_age_seconds",
        "visio_bridge_jobs",
        "visio_bridge_livekit_errors",
        "visio_bridge_homeserver_errors",
    ):
        assert name in text


def test_two_bridges_never_share_counts() -> None:
    one, two = BridgeMetrics(), BridgeMetrics()
    one.commands.labels("start").inc()
    assert value(two, "visio_bridge_commands_total", action="start") == 0


async def test_the_running_bridge_serves_metrics_on_its_own_listener(
    tmp_path: Path, livekit: LiveKitDouble
) -> None:
    bridge_port, metrics_port = free_port(), free_port()
    config = bridge_config(
        synapse_port=1,
        bridge_port=bridge_port,
        livekit=livekit,
        database=DatabaseTarget(f"sqlite:{tmp_path / 'bridge.db'}", {}),
        overrides={"metrics": {"enabled": True, "port": metrics_port}},
    )
    settings = parse_settings(config, tmp_path, {})
    async with BridgeServer(settings, Options(background=False)), aiohttp.ClientSession() as s:
        async with s.get(f"http://127.0.0.1:{metrics_port}/metrics") as response:
            assert response.status == 200
            assert "visio_bridge_meetings_live 0.0" in await response.text()
        # Not on the public listener.
        async with s.get(f"http://127.0.0.1:{bridge_port}/metrics") as response:
            assert response.status == 404
