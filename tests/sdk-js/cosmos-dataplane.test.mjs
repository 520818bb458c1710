// The Cosmos DB data plane through @azure/cosmos: a client made with the account's documentEndpoint
// and a key signs each call; rekeyd checks the signature against the account's live keys.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CosmosClient } from '@azure/cosmos';
import { cosmos, group, unique, poll, cosmosBody } from './helpers.mjs';

async function account(t) {
  const rg = await group(t);
  const name = unique('docdb-js-');
  const created = await cosmos.databaseAccounts.createOrUpdate(rg, name, cosmosBody(), poll);
  return { rg, name, endpoint: created.documentEndpoint };
}

function client(endpoint, key) {
  // No retries: a refusal is the answer under test, not a reason to wait and try again.
  return new CosmosClient({
    endpoint,
    key,
    connectionPolicy: { retryOptions: { maxRetryAttemptCount: 0, fixedRetryIntervalInMilliseconds: 0, maxWaitTimeInSeconds: 0 } },
  });
}

/** The error `call` rejects with; fails the test when it does not reject. */
async function refusal(call) {
  try {
    await call();
  } catch (error) {
    return error;
  }
  throw new Error('expected the call to be refused');
}

test('the account read succeeds with each current key and points the client back at rekeyd', async (t) => {
  const { rg, name, endpoint } = await account(t);
  const keys = await cosmos.databaseAccounts.listKeys(rg, name);
  for (const key of Object.values(keys)) {
    const { resource } = await client(endpoint, key).getDatabaseAccount();
    assert.equal(resource.writableLocations[0].databaseAccountEndpoint, endpoint);
    assert.equal(resource.readableLocations[0].databaseAccountEndpoint, endpoint);
  }
  assert.equal(await client(endpoint, keys.primaryMasterKey).getReadEndpoint(), endpoint);
});

test('after a regenerate the old key is refused 401 and the other keys still work', async (t) => {
  const { rg, name, endpoint } = await account(t);
  const keys = await cosmos.databaseAccounts.listKeys(rg, name);
  await cosmos.databaseAccounts.beginRegenerateKeyAndWait(rg, name, { keyKind: 'primary' }, poll);
  const error = await refusal(() => client(endpoint, keys.primaryMasterKey).getDatabaseAccount());
  assert.equal(error.code, 401);
  await client(endpoint, keys.secondaryMasterKey).getDatabaseAccount();
  const fresh = await cosmos.databaseAccounts.listKeys(rg, name);
  await client(endpoint, fresh.primaryMasterKey).getDatabaseAccount();
});

test('a read-only key reads, but a write is refused 403 before anything is served', async (t) => {
  const { rg, name, endpoint } = await account(t);
  const keys = await cosmos.databaseAccounts.listKeys(rg, name);
  const reader = client(endpoint, keys.primaryReadonlyMasterKey);
  await reader.getDatabaseAccount();
  const error = await refusal(() => reader.databases.create({ id: unique('db') }));
  assert.equal(error.code, 403);
  assert.match(error.message, /read-only key/);
});

test('a call rekeyd does not serve itself is a Cosmos-shaped 501 that says to set an upstream', async (t) => {
  const { rg, name, endpoint } = await account(t);
  const keys = await cosmos.databaseAccounts.listKeys(rg, name);
  const writer = client(endpoint, keys.primaryMasterKey);
  for (const call of [
    () => writer.databases.create({ id: unique('db') }),
    () => writer.databases.readAll().fetchAll(),
  ]) {
    const error = await refusal(call);
    assert.equal(error.code, 501);
    assert.equal(error.body?.code, 'NotImplemented');
    assert.match(error.message, /x-rekey-upstream/);
  }
});
