// Resource groups through @azure/arm-resources: create, get, list, existence and delete.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { resources, subscriptionId, unique, poll, restError } from './helpers.mjs';

test('a resource group is created, read, listed and deleted', async () => {
  const name = unique('rg-js-');
  const created = await resources.resourceGroups.createOrUpdate(name, {
    location: 'westus',
    tags: { team: 'sdk-js' },
  });
  assert.equal(created.id, `/subscriptions/${subscriptionId}/resourceGroups/${name}`);
  assert.equal(created.location, 'westus');
  assert.equal(created.properties?.provisioningState, 'Succeeded');

  const read = await resources.resourceGroups.get(name);
  assert.deepEqual(read.tags, { team: 'sdk-js' });
  const names = [];
  for await (const g of resources.resourceGroups.list()) names.push(g.name);
  assert.ok(names.includes(name), `${name} in ${names}`);
  assert.equal((await resources.resourceGroups.checkExistence(name)).body, true);

  await resources.resourceGroups.beginDeleteAndWait(name, poll);
  const gone = await restError(() => resources.resourceGroups.get(name));
  assert.equal(gone.statusCode, 404);
  assert.equal(gone.code, 'ResourceGroupNotFound');
  assert.equal((await resources.resourceGroups.checkExistence(name)).body, false);
});

test('a resource group name Azure refuses is a 400 RestError naming the field', async () => {
  const error = await restError(() =>
    resources.resourceGroups.createOrUpdate('r'.repeat(91), { location: 'westus' }),
  );
  assert.equal(error.statusCode, 400);
  assert.ok(error.code, 'an ARM error code');
});
