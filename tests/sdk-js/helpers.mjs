// Shared by the suite: the rekeyd that run.sh started, a credential holding its owner token, and
// the SDK clients pointed at it. The SDK packages are used as published on npm; the only client
// options set are documented constructor options (`endpoint`, `updateIntervalInMs` per call).
import { readFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { CognitiveServicesManagementClient } from '@azure/arm-cognitiveservices';
import { CosmosDBManagementClient } from '@azure/arm-cosmosdb';
import { ResourceManagementClient } from '@azure/arm-resources';

function required(name) {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set: run the suite with tests/sdk-js/run.sh`);
  return value;
}

export const baseUrl = required('REKEY_URL');
const bootstrap = JSON.parse(readFileSync(required('REKEY_READY'), 'utf8'));
export const subscriptionId = bootstrap.subscriptionId;

/** A TokenCredential that hands out a fixed token, whatever the scopes asked for. */
export function staticCredential(token) {
  return { getToken: async () => ({ token, expiresOnTimestamp: Date.now() + 3600e3 }) };
}

export const credential = staticCredential(bootstrap.token);
const options = { endpoint: baseUrl };

export const resources = new ResourceManagementClient(credential, subscriptionId, options);
export const cognitive = new CognitiveServicesManagementClient(credential, subscriptionId, options);
export const cosmos = new CosmosDBManagementClient(credential, subscriptionId, options);

/** An LRO poll interval for the calls that take one: rekeyd's operations are finished at once. */
export const poll = { updateIntervalInMs: 10 };

export function unique(prefix) {
  return `${prefix}${randomBytes(5).toString('hex')}`;
}

/** A fresh resource group, deleted when the test ends. */
export async function group(t, location = 'westus') {
  const name = unique('rg-js-');
  await resources.resourceGroups.createOrUpdate(name, { location });
  t.after(() => resources.resourceGroups.beginDeleteAndWait(name, poll));
  return name;
}

/** The Cosmos DB create body the quickstarts use: one location, the Standard offer. */
export function cosmosBody(location = 'westus') {
  return {
    location,
    kind: 'GlobalDocumentDB',
    databaseAccountOfferType: 'Standard',
    locations: [{ locationName: location, failoverPriority: 0 }],
  };
}

/** Runs `call` and returns the RestError it throws; fails the test when it does not throw. */
export async function restError(call) {
  try {
    await call();
  } catch (error) {
    if (error?.name !== 'RestError') throw error;
    return error;
  }
  throw new Error('expected the call to fail with a RestError');
}
