"""Cosmos DB account keys through the unmodified azure-mgmt-cosmosdb SDK."""

from __future__ import annotations

import base64
import uuid

import pytest
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.mgmt.cosmosdb.models import (
    DatabaseAccountCreateUpdateParameters,
    DatabaseAccountCreateUpdateProperties,
    DatabaseAccountRegenerateKeyParameters,
    Location,
)

KEY_FIELDS = {
    "primary": "primary_master_key",
    "secondary": "secondary_master_key",
    "primaryReadonly": "primary_readonly_master_key",
    "secondaryReadonly": "secondary_readonly_master_key",
}


def all_keys(client, rg: str, name: str) -> dict[str, str]:
    listed = client.database_accounts.list_keys(rg, name)
    return {kind: getattr(listed, field) for kind, field in KEY_FIELDS.items()}


@pytest.fixture
def resource_group(rm_client):
    name = f"rg-{uuid.uuid4().hex[:12]}"
    rm_client.resource_groups.create_or_update(name, {"location": "westus"})
    yield name
    rm_client.resource_groups.begin_delete(name).result()


@pytest.fixture
def account(cosmos_client, resource_group):
    name = f"docdb-{uuid.uuid4().hex[:10]}"
    params = DatabaseAccountCreateUpdateParameters(
        location="westus",
        kind="GlobalDocumentDB",
        properties=DatabaseAccountCreateUpdateProperties(
            locations=[Location(location_name="westus", failover_priority=0)],
            database_account_offer_type="Standard",
        ),
    )
    created = cosmos_client.database_accounts.begin_create_or_update(resource_group, name, params).result()
    return resource_group, name, created


def test_create_is_a_finished_long_running_operation(cosmos_client, account):
    rg, name, created = account
    assert created.name == name
    assert created.properties.provisioning_state == "Succeeded"
    assert created.properties.document_endpoint.startswith("https://")
    got = cosmos_client.database_accounts.get(rg, name)
    assert got.id == created.id
    assert name in [a.name for a in cosmos_client.database_accounts.list_by_resource_group(rg)]
    assert name in [a.name for a in cosmos_client.database_accounts.list()]


def test_every_location_names_the_data_plane_endpoint(cosmos_client, account):
    rg, name, _ = account
    props = cosmos_client.database_accounts.get(rg, name).properties
    for locations in (props.locations, props.read_locations, props.write_locations):
        assert [loc.location_name for loc in locations] == ["westus"]
        assert locations[0].document_endpoint == props.document_endpoint
        assert locations[0].id == f"{name}-westus"
        assert locations[0].provisioning_state == "Succeeded"


def test_four_keys_are_64_random_bytes_each(cosmos_client, account):
    rg, name, _ = account
    keys = all_keys(cosmos_client, rg, name)
    assert len(set(keys.values())) == 4
    for value in keys.values():
        assert len(base64.b64decode(value, validate=True)) == 64


def test_read_only_keys_by_get_and_post_match_list_keys(cosmos_client, account):
    rg, name, _ = account
    keys = all_keys(cosmos_client, rg, name)
    for result in (
        cosmos_client.database_accounts.get_read_only_keys(rg, name),
        cosmos_client.database_accounts.list_read_only_keys(rg, name),
    ):
        assert result.primary_readonly_master_key == keys["primaryReadonly"]
        assert result.secondary_readonly_master_key == keys["secondaryReadonly"]


def test_connection_strings_name_each_key_and_the_data_plane(cosmos_client, account):
    rg, name, created = account
    keys = all_keys(cosmos_client, rg, name)
    strings = cosmos_client.database_accounts.list_connection_strings(rg, name).connection_strings
    assert [s.key_kind for s in strings] == ["Primary", "Secondary", "PrimaryReadonly", "SecondaryReadonly"]
    for entry, kind in zip(strings, KEY_FIELDS):
        assert entry.connection_string == (
            f"AccountEndpoint={created.properties.document_endpoint};AccountKey={keys[kind]};"
        )


@pytest.mark.parametrize("kind", list(KEY_FIELDS))
def test_regenerate_changes_only_the_named_kind(cosmos_client, account, kind):
    rg, name, _ = account
    before = all_keys(cosmos_client, rg, name)
    poller = cosmos_client.database_accounts.begin_regenerate_key(
        rg, name, DatabaseAccountRegenerateKeyParameters(key_kind=kind)
    )
    assert poller.result() is None
    assert poller.status() == "Succeeded"
    after = all_keys(cosmos_client, rg, name)
    for other in KEY_FIELDS:
        if other == kind:
            assert after[other] != before[other], f"{kind} was regenerated"
        else:
            assert after[other] == before[other], f"{other} must not change when {kind} is regenerated"


def test_unknown_key_kind_is_refused_and_changes_nothing(cosmos_client, account):
    rg, name, _ = account
    before = all_keys(cosmos_client, rg, name)
    with pytest.raises(HttpResponseError) as err:
        cosmos_client.database_accounts.begin_regenerate_key(
            rg, name, {"keyKind": "tertiary"}
        ).result()
    assert err.value.status_code == 400
    assert all_keys(cosmos_client, rg, name) == before


def test_delete_is_a_long_running_operation(cosmos_client, account):
    rg, name, _ = account
    cosmos_client.database_accounts.begin_delete(rg, name).result()
    with pytest.raises(ResourceNotFoundError):
        cosmos_client.database_accounts.get(rg, name)
