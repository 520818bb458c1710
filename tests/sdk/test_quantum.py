"""Quantum workspace keys through the unmodified azure-mgmt-quantum SDK."""

from __future__ import annotations

import uuid

import pytest
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.mgmt.quantum.models import APIKeys, QuantumWorkspace, TagsObject, WorkspaceResourceProperties


@pytest.fixture
def resource_group(rm_client):
    name = f"rg-{uuid.uuid4().hex[:12]}"
    rm_client.resource_groups.create_or_update(name, {"location": "westus"})
    yield name
    rm_client.resource_groups.begin_delete(name).result()


@pytest.fixture
def workspace(quantum_client, resource_group):
    name = f"ws-{uuid.uuid4().hex[:10]}"
    body = QuantumWorkspace(
        location="westus",
        properties=WorkspaceResourceProperties(providers=[], storage_account="/subscriptions/x/storage", api_key_enabled=True),
    )
    created = quantum_client.workspaces.begin_create_or_update(resource_group, name, body).result()
    return resource_group, name, created


def test_create_get_list_update_delete(quantum_client, workspace):
    rg, name, created = workspace
    assert created.name == name
    assert created.properties.provisioning_state == "Succeeded"
    assert created.properties.api_key_enabled is True
    assert created.properties.endpoint_uri.startswith("https://")
    assert quantum_client.workspaces.get(rg, name).id == created.id
    assert name in [w.name for w in quantum_client.workspaces.list_by_resource_group(rg)]
    assert name in [w.name for w in quantum_client.workspaces.list_by_subscription()]
    tagged = quantum_client.workspaces.update_tags(rg, name, TagsObject(tags={"env": "test"}))
    assert tagged.tags == {"env": "test"}
    quantum_client.workspaces.begin_delete(rg, name).result()
    with pytest.raises(ResourceNotFoundError):
        quantum_client.workspaces.get(rg, name)


def test_list_keys_gives_keys_times_and_connection_strings(quantum_client, workspace, rekey):
    rg, name, created = workspace
    keys = quantum_client.workspace.list_keys(rg, name)
    assert keys.api_key_enabled is True
    assert keys.primary_key.key != keys.secondary_key.key
    assert keys.primary_key.created_at is not None
    assert keys.primary_connection_string == (
        f"SubscriptionId={rekey.subscription_id};ResourceGroupName={rg};WorkspaceName={name};"
        f"ApiKey={keys.primary_key.key};QuantumEndpoint={created.properties.endpoint_uri};"
    )
    assert f"ApiKey={keys.secondary_key.key};" in keys.secondary_connection_string


@pytest.mark.parametrize("names", [["Primary"], ["Secondary"], ["Primary", "Secondary"]])
def test_regenerate_changes_exactly_the_named_slots(quantum_client, workspace, names):
    rg, name, _ = workspace
    before = quantum_client.workspace.list_keys(rg, name)
    assert quantum_client.workspace.regenerate_keys(rg, name, APIKeys(keys=names)) is None
    after = quantum_client.workspace.list_keys(rg, name)
    for slot, attr in (("Primary", "primary_key"), ("Secondary", "secondary_key")):
        old, new = getattr(before, attr), getattr(after, attr)
        if slot in names:
            assert new.key != old.key
            assert new.created_at > old.created_at
        else:
            assert new.key == old.key
            assert new.created_at == old.created_at, "createdAt moves only when the slot is regenerated"


@pytest.mark.parametrize("keys", [[], ["Tertiary"], ["Primary", "primary"]])
def test_bad_key_lists_are_refused_and_change_nothing(quantum_client, workspace, keys):
    rg, name, _ = workspace
    before = quantum_client.workspace.list_keys(rg, name)
    with pytest.raises(HttpResponseError) as err:
        quantum_client.workspace.regenerate_keys(rg, name, {"keys": keys})
    assert err.value.status_code == 400
    after = quantum_client.workspace.list_keys(rg, name)
    assert (after.primary_key.key, after.secondary_key.key) == (before.primary_key.key, before.secondary_key.key)


def test_api_key_enabled_can_be_turned_off_by_patch(quantum_client, workspace, rekey):
    rg, name, _ = workspace
    import json
    import urllib.request
    import ssl

    url = (
        f"{rekey.base_url}/subscriptions/{rekey.subscription_id}/resourceGroups/{rg}"
        f"/providers/Microsoft.Quantum/workspaces/{name}?api-version=2023-11-13-preview"
    )
    req = urllib.request.Request(
        url,
        method="PATCH",
        data=json.dumps({"properties": {"apiKeyEnabled": False}}).encode(),
        headers={"Authorization": f"Bearer {rekey.token}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, context=ssl.create_default_context(cafile=str(rekey.ca_path))) as resp:
        assert resp.status == 200
    assert quantum_client.workspaces.get(rg, name).properties.api_key_enabled is False
    assert quantum_client.workspace.list_keys(rg, name).api_key_enabled is False
