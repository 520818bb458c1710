// Cognitive Services accounts through @azure/arm-cognitiveservices: create, get, list, listKeys,
// regenerateKey for each key, and the ARM errors as RestError.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cognitive, subscriptionId, group, unique, restError, staticCredential, baseUrl } from './helpers.mjs';
import { CognitiveServicesManagementClient } from '@azure/arm-cognitiveservices';

const body = { location: 'westus', kind: 'TextAnalytics', sku: { name: 'S0' }, properties: {} };

async function account(t) {
  const rg = await group(t);
  const name = unique('cs-js-');
  const created = await cognitive.accounts.beginCreateAndWait(rg, name, body, { updateIntervalInMs: 10 });
  return { rg, name, created };
}

test('an account is created, read and listed with its endpoint', async (t) => {
  const { rg, name, created } = await account(t);
  assert.equal(
    created.id,
    `/subscriptions/${subscriptionId}/resourceGroups/${rg}/providers/Microsoft.CognitiveServices/accounts/${name}`,
  );
  assert.equal(created.properties?.provisioningState, 'Succeeded');
  assert.ok(created.properties?.endpoint?.startsWith(baseUrl), created.properties?.endpoint);

  const read = await cognitive.accounts.get(rg, name);
  assert.equal(read.kind, 'TextAnalytics');
  assert.equal(read.sku?.name, 'S0');
  const inGroup = [];
  for await (const a of cognitive.accounts.listByResourceGroup(rg)) inGroup.push(a.name);
  assert.deepEqual(inGroup, [name]);
  const inSubscription = [];
  for await (const a of cognitive.accounts.list()) inSubscription.push(a.name);
  assert.ok(inSubscription.includes(name));
});

test('regenerating Key1 then Key2 changes exactly the named key', async (t) => {
  const { rg, name } = await account(t);
  const before = await cognitive.accounts.listKeys(rg, name);
  assert.match(before.key1, /\S{20,}/);
  assert.notEqual(before.key1, before.key2);

  const afterKey1 = await cognitive.accounts.regenerateKey(rg, name, 'Key1');
  assert.notEqual(afterKey1.key1, before.key1);
  assert.equal(afterKey1.key2, before.key2);
  assert.deepEqual(await cognitive.accounts.listKeys(rg, name), {
    key1: afterKey1.key1,
    key2: before.key2,
    ...extensions(await cognitive.accounts.listKeys(rg, name)),
  });

  const afterKey2 = await cognitive.accounts.regenerateKey(rg, name, 'Key2');
  assert.equal(afterKey2.key1, afterKey1.key1);
  assert.notEqual(afterKey2.key2, before.key2);
});

// listKeys carries rekey's `x-rekey-*` extension fields; the SDK passes them through untouched.
function extensions(keys) {
  return Object.fromEntries(Object.entries(keys).filter(([k]) => k.startsWith('x-rekey-')));
}

test('a missing account is a 404 RestError with the ARM code', async (t) => {
  const rg = await group(t);
  const error = await restError(() => cognitive.accounts.get(rg, 'nosuchaccount'));
  assert.equal(error.statusCode, 404);
  assert.equal(error.code, 'ResourceNotFound');
});

test('an invalid location is a 400 RestError with the ARM code and creates nothing', async (t) => {
  const rg = await group(t);
  const name = unique('cs-js-');
  // The SDK checks an unknown keyName itself; a location is the server's to refuse.
  const error = await restError(() =>
    cognitive.accounts.beginCreateAndWait(rg, name, { ...body, location: 'west-us!' }, { updateIntervalInMs: 10 }),
  );
  assert.equal(error.statusCode, 400);
  assert.equal(error.code, 'InvalidResourceLocation');
  assert.ok(error.message.includes('west-us!'), error.message);
  assert.equal((await restError(() => cognitive.accounts.get(rg, name))).statusCode, 404);
});

test('a token rekeyd did not issue is a 401 RestError', async () => {
  const stranger = new CognitiveServicesManagementClient(staticCredential('not-a-token'), subscriptionId, {
    endpoint: baseUrl,
  });
  const pages = stranger.accounts.list();
  const error = await restError(() => pages.next());
  assert.equal(error.statusCode, 401);
});
