"""The unmodified azure-cosmos data-plane SDK authenticates against rekeyd with an account key."""

from __future__ import annotations

import uuid

import pytest
from azure.cosmos import CosmosClient
from azure.cosmos.exceptions import CosmosHttpResponseError
from azure.mgmt.cosmosdb.models import DatabaseAccountRegenerateKeyParameters


@pytest.fixture
def cosmos_account(rm_client, cosmos_client):
    rg = f"rg-{uuid.uuid4().hex[:12]}"
    rm_client.resource_groups.create_or_update(rg, {"location": "westus"})
    name = f"docdb-{uuid.uuid4().hex[:10]}"
    body = {
        "location": "westus",
        "kind": "GlobalDocumentDB",
        "properties": {
            "databaseAccountOfferType": "Standard",
            "locations": [{"locationName": "westus", "failoverPriority": 0}],
        },
    }
    account = cosmos_client.database_accounts.begin_create_or_update(rg, name, body).result()
    yield rg, name, account.properties.document_endpoint
    rm_client.resource_groups.begin_delete(rg).result()


def connect(endpoint: str, key: str, rekey) -> CosmosClient:
    return CosmosClient(endpoint, credential=key, connection_verify=str(rekey.ca_path), retry_total=0)


def test_account_read_with_either_key_and_old_key_refused(cosmos_client, cosmos_account, rekey):
    rg, name, endpoint = cosmos_account
    keys = cosmos_client.database_accounts.list_keys(rg, name)
    for key in (keys.primary_master_key, keys.secondary_master_key, keys.primary_readonly_master_key):
        account = connect(endpoint, key, rekey).get_database_account()
        assert account.WritableLocations[0]["databaseAccountEndpoint"] == endpoint

    cosmos_client.database_accounts.begin_regenerate_key(
        rg, name, DatabaseAccountRegenerateKeyParameters(key_kind="primary")
    ).result()
    with pytest.raises(CosmosHttpResponseError) as err:
        connect(endpoint, keys.primary_master_key, rekey).get_database_account()
    assert err.value.status_code == 401
    # The untouched secondary key still opens the account.
    connect(endpoint, keys.secondary_master_key, rekey).get_database_account()


def test_calls_beyond_the_account_read_raise_501_saying_to_set_an_upstream(cosmos_client, cosmos_account, rekey):
    rg, name, endpoint = cosmos_account
    keys = cosmos_client.database_accounts.list_keys(rg, name)
    client = connect(endpoint, keys.primary_master_key, rekey)
    with pytest.raises(CosmosHttpResponseError) as err:
        list(client.list_databases())
    assert err.value.status_code == 501
    assert "x-rekey-upstream" in err.value.message
    # A read-only key's write is refused for what the key is before anything is served.
    reader = connect(endpoint, keys.primary_readonly_master_key, rekey)
    with pytest.raises(CosmosHttpResponseError) as err:
        reader.create_database(f"db-{uuid.uuid4().hex[:8]}")
    assert err.value.status_code == 403
