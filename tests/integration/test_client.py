"""The VPS.org client against the simulator served on 127.0.0.1: every endpoint, over HTTP."""

from collections.abc import AsyncIterator

import pytest

from bot.domain.errors import BadRequest, LimitReached, NotFound, Unauthorized
from bot.domain.model import BackupType
from bot.vpsorg.client import VpsClient
from bot.vpsorg.simulator import Simulator
from tests.conftest import VPS_TOKEN


@pytest.fixture
async def client(served_simulator: str) -> AsyncIterator[VpsClient]:
    async with VpsClient(served_simulator, VPS_TOKEN) as vps:
        yield vps


async def test_every_request_carries_the_bearer_token_and_a_trailing_slash(
    client: VpsClient, simulator: Simulator
) -> None:
    await client.list_servers()
    await client.list_snapshots(12345)
    await client.list_backups()
    await client.get_server(12345)
    assert simulator.calls
    for call in simulator.calls:
        assert call.authorization == f"Bearer {VPS_TOKEN}"
        assert call.path.endswith("/")


async def test_list_and_get_servers(client: VpsClient) -> None:
    servers = await client.list_servers()
    assert [(s.id, s.name, s.status) for s in servers.items] == [
        (12345, "web-server-01", "running"),
        (23456, "db-server-01", "running"),
    ]
    assert (await client.get_server(23456)).name == "db-server-01"
    with pytest.raises(NotFound):
        await client.get_server(99)


async def test_list_snapshots_filtered_by_server(client: VpsClient, simulator: Simulator) -> None:
    listing = await client.list_snapshots(12345)
    assert [s.id for s in listing.items] == [801, 798]
    first = listing.items[0]
    assert (first.name, first.size_mb, first.server.name) == (
        "pre-migration-snapshot",
        5120,
        "web-server-01",
    )
    assert first.created_at.isoformat() == "2025-01-15T18:30:00+00:00"
    assert simulator.calls[-1].query == {"server_id": "12345"}
    assert len((await client.list_snapshots()).items) == 3


async def test_list_backups_with_both_filters(client: VpsClient, simulator: Simulator) -> None:
    listing = await client.list_backups(12345, BackupType.MANUAL)
    assert [(b.id, b.backup_type, b.expires_at) for b in listing.items] == [
        (499, BackupType.MANUAL, None)
    ]
    assert simulator.calls[-1].query == {"server_id": "12345", "backup_type": "manual"}


async def test_create_snapshot_posts_the_documented_body(
    client: VpsClient, simulator: Simulator
) -> None:
    started = await client.create_snapshot(12345, "before-update", "Snapshot before update")
    assert started.item.status == "in_progress"
    assert started.item.size_mb is None
    assert "3-10 minutes" in started.message
    [post] = simulator.calls_to("POST", "/snapshots/")
    assert post.body == {
        "server_id": 12345,
        "name": "before-update",
        "description": "Snapshot before update",
    }


async def test_create_without_description_omits_the_key(
    client: VpsClient, simulator: Simulator
) -> None:
    await client.create_backup(12345)
    [post] = simulator.calls_to("POST", "/backups/")
    assert post.body == {"server_id": 12345}


async def test_create_backup_and_its_completion(client: VpsClient, simulator: Simulator) -> None:
    started = await client.create_backup(12345, "Pre-deployment backup")
    assert (started.item.backup_type, started.item.status) == (BackupType.MANUAL, "in_progress")
    simulator.finish_all()
    listed = {b.id: b for b in (await client.list_backups(12345)).items}
    assert listed[started.item.id].status == "completed"
    assert listed[started.item.id].size_mb is not None


async def test_restore_snapshot_then_server_is_restoring(
    client: VpsClient, simulator: Simulator
) -> None:
    started = await client.restore_snapshot(801)
    assert started.server.status == "restoring"
    [post] = simulator.calls_to("POST", "/snapshots/801/restore/")
    assert post.body is None
    assert (await client.get_server(12345)).status == "restoring"
    with pytest.raises(BadRequest, match="not in a valid state"):
        await client.restore_snapshot(798)
    simulator.finish_all()
    assert (await client.get_server(12345)).status == "running"


async def test_restore_backup_posts_backup_id_to_the_servers_endpoint(
    client: VpsClient, simulator: Simulator
) -> None:
    started = await client.restore_backup(12345, 501)
    assert started.server.status == "restoring"
    [post] = simulator.calls_to("POST", "/servers/12345/restore/")
    assert post.body == {"backup_id": 501}


async def test_delete_snapshot_and_backup(client: VpsClient, simulator: Simulator) -> None:
    await client.delete_snapshot(798)
    await client.delete_backup(495)
    assert [s.id for s in (await client.list_snapshots(12345)).items] == [801]
    with pytest.raises(NotFound):
        await client.delete_backup(495)
    assert [c.path for c in simulator.calls_to("DELETE")] == [
        "/snapshots/798/",
        "/backups/495/",
        "/backups/495/",
    ]


async def test_limits_are_reported_as_limit_reached(
    client: VpsClient, simulator: Simulator
) -> None:
    for i in range(3):
        simulator.add_snapshot(12345, f"extra-{i}")
    with pytest.raises(LimitReached, match="at most 5"):
        await client.create_snapshot(12345, "one-too-many")


async def test_unknown_server_on_create_is_not_found(client: VpsClient) -> None:
    with pytest.raises(NotFound, match="Server not found"):
        await client.create_snapshot(99, "x")


async def test_a_wrong_token_is_unauthorized(served_simulator: str) -> None:
    async with VpsClient(served_simulator, "wrong-token") as vps:
        with pytest.raises(Unauthorized, match="Invalid token"):
            await vps.list_snapshots()
