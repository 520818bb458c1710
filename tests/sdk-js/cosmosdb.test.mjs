// Cosmos DB accounts through @azure/arm-cosmosdb: create (a long-running operation), get, list,
// the four keys, every regenerate through the SDK's LRO poller, and the ARM errors as RestError.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cosmos, subscriptionId, group, unique, poll, restError, cosmosBody, baseUrl } from './helpers.mjs';

async function account(t) {
  const rg = await group(t);
  const name = unique('docdb-js-');
  const created = await cosmos.databaseAccounts.createOrUpdate(rg, name, cosmosBody(), poll);
  return { rg, name, created };
}

test('an account is created through the poller, read and listed, with a data-plane endpoint in every location', async (t) => {
  const { rg, name, created } = await account(t);
  assert.equal(
    created.id,
    `/subscriptions/${subscriptionId}/resourceGroups/${rg}/providers/Microsoft.DocumentDB/databaseAccounts/${name}`,
  );
  assert.equal(created.provisioningState, 'Succeeded');
  assert.ok(created.documentEndpoint?.startsWith(`${baseUrl}/data/`), created.documentEndpoint);

  const read = await cosmos.databaseAccounts.get(rg, name);
  assert.equal(read.documentEndpoint, created.documentEndpoint);
  assert.equal(read.kind, 'GlobalDocumentDB');
  for (const list of ['locations', 'readLocations', 'writeLocations']) {
    assert.equal(read[list]?.length, 1, list);
    const [location] = read[list];
    assert.equal(location.locationName, 'westus', list);
    assert.equal(location.documentEndpoint, read.documentEndpoint, `${list}[0].documentEndpoint`);
    assert.equal(location.failoverPriority, 0, list);
    assert.equal(location.provisioningState, 'Succeeded', list);
    assert.equal(location.id, `${name}-westus`, list);
  }

  const inGroup = [];
  for await (const a of cosmos.databaseAccounts.listByResourceGroup(rg)) inGroup.push(a.name);
  assert.deepEqual(inGroup, [name]);
  const inSubscription = [];
  for await (const a of cosmos.databaseAccounts.list()) inSubscription.push(a.name);
  assert.ok(inSubscription.includes(name));
});

test('listKeys, the read-only keys and the connection strings agree', async (t) => {
  const { rg, name, created } = await account(t);
  const keys = await cosmos.databaseAccounts.listKeys(rg, name);
  const all = [keys.primaryMasterKey, keys.secondaryMasterKey, keys.primaryReadonlyMasterKey, keys.secondaryReadonlyMasterKey];
  assert.equal(new Set(all).size, 4);
  for (const key of all) assert.equal(Buffer.from(key, 'base64').length, 64);

  const readOnly = await cosmos.databaseAccounts.listReadOnlyKeys(rg, name);
  assert.equal(readOnly.primaryReadonlyMasterKey, keys.primaryReadonlyMasterKey);
  assert.equal(readOnly.secondaryReadonlyMasterKey, keys.secondaryReadonlyMasterKey);
  const strings = await cosmos.databaseAccounts.listConnectionStrings(rg, name);
  assert.deepEqual(
    strings.connectionStrings.map((s) => s.connectionString),
    all.map((key) => `AccountEndpoint=${created.documentEndpoint};AccountKey=${key};`),
  );
});

const FIELD = {
  primary: 'primaryMasterKey',
  secondary: 'secondaryMasterKey',
  primaryReadonly: 'primaryReadonlyMasterKey',
  secondaryReadonly: 'secondaryReadonlyMasterKey',
};

test('every regenerate finishes through the LRO poller and changes exactly the named key', async (t) => {
  const { rg, name } = await account(t);
  for (const [keyKind, field] of Object.entries(FIELD)) {
    const before = await cosmos.databaseAccounts.listKeys(rg, name);
    // As a rotation script calls it: the poller follows Azure-AsyncOperation, then reads the final
    // answer at Location, and accepts only 200, 201 or 202 there.
    await cosmos.databaseAccounts.beginRegenerateKeyAndWait(rg, name, { keyKind }, poll);
    const after = await cosmos.databaseAccounts.listKeys(rg, name);
    for (const other of Object.values(FIELD)) {
      if (other === field) assert.notEqual(after[other], before[other], `${keyKind} changed`);
      else assert.equal(after[other], before[other], `${other} kept when ${keyKind} is regenerated`);
    }
  }
});

test('the regenerate poller reports the operation it polled as succeeded', async (t) => {
  const { rg, name } = await account(t);
  const poller = cosmos.databaseAccounts.regenerateKey(rg, name, { keyKind: 'secondary' }, poll);
  await poller.pollUntilDone();
  assert.equal(poller.isDone, true);
  assert.equal(poller.operationState.status, 'succeeded');
});

test('an unknown keyKind is a 400 RestError with the ARM code and changes no key', async (t) => {
  const { rg, name } = await account(t);
  const before = await cosmos.databaseAccounts.listKeys(rg, name);
  const error = await restError(() =>
    cosmos.databaseAccounts.regenerateKey(rg, name, { keyKind: 'tertiary' }, poll),
  );
  assert.equal(error.statusCode, 400);
  assert.equal(error.code, 'InvalidParameter');
  assert.ok(error.message.includes('keyKind'), error.message);
  assert.deepEqual(await cosmos.databaseAccounts.listKeys(rg, name), before);
});

test('a missing account is a 404 RestError with the ARM code', async (t) => {
  const rg = await group(t);
  for (const call of [
    () => cosmos.databaseAccounts.get(rg, 'nosuchaccount'),
    () => cosmos.databaseAccounts.listKeys(rg, 'nosuchaccount'),
    () => cosmos.databaseAccounts.regenerateKey(rg, 'nosuchaccount', { keyKind: 'primary' }, poll),
  ]) {
    const error = await restError(call);
    assert.equal(error.statusCode, 404);
    assert.equal(error.code, 'ResourceNotFound');
  }
});

test('delete finishes through the poller and the account is gone', async (t) => {
  const { rg, name } = await account(t);
  await cosmos.databaseAccounts.delete(rg, name, poll);
  const error = await restError(() => cosmos.databaseAccounts.get(rg, name));
  assert.equal(error.statusCode, 404);
});
