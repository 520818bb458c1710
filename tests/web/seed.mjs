// Owns the web tests' starting data: with the owner token from rekeyd's ready file it makes resources of
// every type in two groups (one with key authentication off), uses one key on the data plane (so a
// last-use time shows), and makes Reader and Key Operator tokens (POST /rekey/tokens plus a role
// assignment). Writes what the tests need to $REKEY_FIXTURE. Called by run.sh once rekeyd listens.
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { randomUUID } from 'node:crypto';

const base = process.env.REKEY_URL;
const boot = JSON.parse(readFileSync(process.env.REKEY_READY, 'utf8'));
const sub = boot.subscriptionId;

async function call(method, path, body, token = boot.token) {
  const response = await fetch(base + path, {
    method,
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  if (!response.ok) throw new Error(`${method} ${path}: ${response.status} ${text}`);
  return text ? JSON.parse(text) : null;
}

const RG = '2025-04-01';
const CS = '2025-09-01';
const QW = '2025-12-15-preview';
const DB = '2025-10-15';
const AUTHZ = '2022-04-01';
const group = (g) => `/subscriptions/${sub}/resourcegroups/${g}?api-version=${RG}`;
const id = (g, type, name) => `/subscriptions/${sub}/resourceGroups/${g}/providers/${type}/${name}`;

await call('PUT', group('rg-web'), { location: 'westus' });
await call('PUT', group('rg-other'), { location: 'westeurope' });

const account = id('rg-web', 'Microsoft.CognitiveServices/accounts', 'contoso-text');
const created = await call('PUT', `${account}?api-version=${CS}`,
  { location: 'westus', kind: 'TextAnalytics', sku: { name: 'S0' }, properties: {} });
const other = id('rg-other', 'Microsoft.CognitiveServices/accounts', 'fabrikam-vision');
await call('PUT', `${other}?api-version=${CS}`,
  { location: 'westeurope', kind: 'ComputerVision', sku: { name: 'S1' }, properties: {} });
const workspace = id('rg-web', 'Microsoft.Quantum/workspaces', 'qws-web');
await call('PUT', `${workspace}?api-version=${QW}`, { location: 'westus', properties: {} });
const cosmos = id('rg-web', 'Microsoft.DocumentDB/databaseAccounts', 'cosmos-web');
await call('PUT', `${cosmos}?api-version=${DB}`, {
  location: 'West US',
  kind: 'GlobalDocumentDB',
  properties: {
    databaseAccountOfferType: 'Standard',
    locations: [{ locationName: 'West US', failoverPriority: 0 }],
  },
});

// Key authentication switched off: the keys stay listable, the data plane refuses them. Its keys
// may be 30 days old; Key1 is made 40 days old, straight in rekeyd's SQLite database (created_at
// is in microseconds), so the page has an overdue key to mark and a young one not to.
const keyless = id('rg-other', 'Microsoft.CognitiveServices/accounts', 'contoso-keyless');
await call('PUT', `${keyless}?api-version=${CS}`, { location: 'westeurope', kind: 'OpenAI',
  sku: { name: 'S0' }, properties: { disableLocalAuth: true, 'x-rekey-maxKeyAgeDays': 30 } });
const database = join(dirname(process.env.REKEY_BOOTSTRAP), 'rekey.db');
const aged = spawnSync('sqlite3', [database, `UPDATE key_slots SET created_at = created_at - ${40 * 86_400}000000
  WHERE slot = 'key1' AND resource_id = (SELECT internal_id FROM resources WHERE name = 'contoso-keyless');
  SELECT changes();`], { encoding: 'utf8' });
if (aged.status !== 0 || aged.stdout.trim() !== '1') {
  throw new Error(`backdating contoso-keyless's key1: ${aged.error || aged.stderr || aged.stdout}`);
}

// One data-plane call with Key2, so the page has a last-use time to show.
const keys = await call('POST', `${account}/listKeys?api-version=${CS}`);
const used = await fetch(created.properties.endpoint, {
  headers: { 'Ocp-Apim-Subscription-Key': keys.key2 },
});
if (used.status !== 200) throw new Error(`the data plane refused key2: ${used.status}`);

/** A new token holding `role` at `scope`: { principalId, token }. */
async function tokenWithRole(name, role, scope) {
  const made = await call('POST', '/rekey/tokens', { name });
  const roles = await call('GET', `/subscriptions/${sub}/providers/Microsoft.Authorization/roleDefinitions`
    + `?api-version=${AUTHZ}&$filter=${encodeURIComponent(`roleName eq '${role}'`)}`);
  await call('PUT', `${scope}/providers/Microsoft.Authorization/roleAssignments/${randomUUID()}`
    + `?api-version=${AUTHZ}`,
  { properties: { roleDefinitionId: roles.value[0].id, principalId: made.principalId } });
  return made;
}
const reader = await tokenWithRole('web reader', 'Reader', `/subscriptions/${sub}`);
const operator = await tokenWithRole('web key operator', 'Key Operator', `/subscriptions/${sub}`);
const narrow = await tokenWithRole('web operator of rg-other', 'Key Operator',
  `/subscriptions/${sub}/resourceGroups/rg-other`);

writeFileSync(process.env.REKEY_FIXTURE, JSON.stringify({
  base, subscription: sub, ownerToken: boot.token, readerToken: reader.token,
  operatorToken: operator.token, narrowOperatorToken: narrow.token,
  account, other, workspace, cosmos, keyless,
  versions: { CS, QW, DB },
}));
console.log(`seeded ${base}: 5 resources in 2 groups, Reader and Key Operator tokens`);
