"""User-visible behaviour of rekeyd as seen through the unmodified Azure SDKs."""

from __future__ import annotations

import uuid
from urllib.parse import urlparse

import pytest
from azure.core.exceptions import ClientAuthenticationError, ResourceNotFoundError
from azure.mgmt.cognitiveservices.models import Account, AccountProperties, Sku

LOCATION = "westus"


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def new_account_body() -> Account:
    return Account(
        location=LOCATION,
        kind="TextAnalytics",
        sku=Sku(name="S0"),
        properties=AccountProperties(),
    )


@pytest.fixture
def resource_group(rm_client):
    """A fresh resource group, deleted (best effort) afterwards."""
    name = unique("rg")
    rm_client.resource_groups.create_or_update(name, {"location": LOCATION})
    yield name
    try:
        rm_client.resource_groups.begin_delete(name).result()
    except Exception:  # already gone, or the server failed; the test said so
        pass


@pytest.fixture
def account(cs_client, resource_group):
    """(resource_group, account_name, Account) for a freshly created account."""
    name = unique("acct")
    created = cs_client.accounts.begin_create(
        resource_group, name, new_account_body()
    ).result()
    return resource_group, name, created


# --------------------------------------------------------------------------
# resource groups


def test_create_resource_group(rm_client, rekey):
    name = unique("rg")
    rg = rm_client.resource_groups.create_or_update(name, {"location": LOCATION})
    try:
        assert rg.name == name
        assert rg.location == LOCATION
        expected_id = f"/subscriptions/{rekey.subscription_id}/resourceGroups/{name}"
        assert rg.id.lower() == expected_id.lower()

        fetched = rm_client.resource_groups.get(name)
        assert fetched.name == name
        assert fetched.location == LOCATION
    finally:
        rm_client.resource_groups.begin_delete(name).result()


# --------------------------------------------------------------------------
# accounts


def test_create_account(cs_client, resource_group, rekey):
    name = unique("acct")
    created = cs_client.accounts.begin_create(
        resource_group, name, new_account_body()
    ).result()

    assert created.name == name
    assert created.kind == "TextAnalytics"
    assert created.location == LOCATION
    assert created.sku is not None and created.sku.name == "S0"
    expected_id = (
        f"/subscriptions/{rekey.subscription_id}/resourceGroups/{resource_group}"
        f"/providers/Microsoft.CognitiveServices/accounts/{name}"
    )
    assert created.id.lower() == expected_id.lower()

    assert created.properties is not None
    assert created.properties.provisioning_state == "Succeeded"
    endpoint = created.properties.endpoint
    assert endpoint, "properties.endpoint is empty"
    parsed = urlparse(endpoint)
    assert parsed.scheme in ("http", "https") and parsed.netloc, endpoint


def test_get_and_list_account(cs_client, account):
    rg, name, created = account

    got = cs_client.accounts.get(rg, name)
    assert got.name == name
    assert got.id == created.id
    assert got.kind == "TextAnalytics"
    assert got.properties.provisioning_state == "Succeeded"
    assert got.properties.endpoint == created.properties.endpoint

    listed = list(cs_client.accounts.list_by_resource_group(rg))
    assert name in [a.name for a in listed]


def test_list_keys(cs_client, account):
    rg, name, _ = account
    keys = cs_client.accounts.list_keys(rg, name)
    assert keys.key1
    assert keys.key2
    assert keys.key1 != keys.key2

    # Listing does not rotate anything.
    again = cs_client.accounts.list_keys(rg, name)
    assert (again.key1, again.key2) == (keys.key1, keys.key2)


def test_regenerate_key2(cs_client, account):
    rg, name, _ = account
    before = cs_client.accounts.list_keys(rg, name)

    # azure-mgmt-cognitiveservices 14.x takes the key name itself and builds
    # RegenerateKeyParameters internally: body {"keyName": "Key2"}.
    after = cs_client.accounts.regenerate_key(rg, name, key_name="Key2")
    assert after.key1 == before.key1
    assert after.key2
    assert after.key2 != before.key2
    assert after.key2 != after.key1

    listed = cs_client.accounts.list_keys(rg, name)
    assert (listed.key1, listed.key2) == (after.key1, after.key2)


def test_regenerate_key1(cs_client, account):
    rg, name, _ = account
    before = cs_client.accounts.list_keys(rg, name)

    after = cs_client.accounts.regenerate_key(rg, name, key_name="Key1")
    assert after.key2 == before.key2
    assert after.key1
    assert after.key1 != before.key1

    listed = cs_client.accounts.list_keys(rg, name)
    assert (listed.key1, listed.key2) == (after.key1, after.key2)


def test_get_missing_account_is_not_found(cs_client, resource_group):
    with pytest.raises(ResourceNotFoundError):
        cs_client.accounts.get(resource_group, "does-not-exist")


def test_delete_resource_group_removes_accounts(cs_client, rm_client):
    rg = unique("rg")
    rm_client.resource_groups.create_or_update(rg, {"location": LOCATION})
    name = unique("acct")
    cs_client.accounts.begin_create(rg, name, new_account_body()).result()
    assert cs_client.accounts.get(rg, name).name == name

    rm_client.resource_groups.begin_delete(rg).result()

    with pytest.raises(ResourceNotFoundError):
        cs_client.accounts.get(rg, name)
    with pytest.raises(ResourceNotFoundError):
        rm_client.resource_groups.get(rg)


# --------------------------------------------------------------------------
# authentication


def test_wrong_token_is_rejected(make_cs_client, make_credential, account):
    rg, name, _ = account
    with make_cs_client(make_credential("not-the-token")) as bad:
        with pytest.raises(ClientAuthenticationError):
            bad.accounts.list_keys(rg, name)
