// Owns the end-to-end tests of the Keys & Endpoint page: a person's path through it in real headless
// Chromium against the live rekeyd that run.sh started and seed.mjs filled. Every check of what the
// server holds goes through the API with the owner's bearer token, never through the page.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const fixture = JSON.parse(readFileSync(process.env.REKEY_FIXTURE, 'utf8'));
const base = fixture.base;
const shots = process.env.WEB_SCREENSHOTS;
const WIDE = { width: 1280, height: 900 };
const PHONE = { width: 375, height: 740 };

let browser;

before(async () => {
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
});

after(async () => {
  await browser?.close();
});

/** The API as the owner: status and parsed body. */
async function api(method, path, body) {
  const response = await fetch(base + path, {
    method,
    headers: { authorization: `Bearer ${fixture.ownerToken}`, 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  return { status: response.status, body: text ? JSON.parse(text) : null };
}

const listKeys = async (id, version) =>
  (await api('POST', `${id}/listKeys?api-version=${version}`)).body;

/**
 * A fresh browser context (its own cookies) and page that records every console error and uncaught
 * exception, so each test can assert the page ran without errors (a CSP violation is one).
 */
async function openPage(viewport = WIDE, options = {}) {
  const context = await browser.newContext({ viewport, ...options });
  await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: base });
  const page = await context.newPage();
  const errors = [];
  page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });
  page.on('pageerror', (e) => errors.push(String(e)));
  return { context, page, errors };
}

async function signIn(page, token) {
  await page.goto(`${base}/web/`);
  await page.getByLabel('Management token').fill(token);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('heading', { name: 'Resources', level: 1 }).waitFor();
  await page.getByRole('link', { name: 'contoso-text' }).waitFor();
}

async function openResource(page, name) {
  await page.getByRole('link', { name }).click();
  await page.getByRole('heading', { name, level: 1 }).waitFor();
}

/** Polls `check` until it returns a truthy value or `ms` pass. */
async function until(check, what, ms = 5000) {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const shot = (page, name) => page.screenshot({ path: join(shots, `${name}.png`), fullPage: true });

const noErrors = (errors) => assert.deepEqual(errors, [], 'the page logged no errors');

describe('the Keys & Endpoint page', () => {
  test('is served with a strict CSP, no framing, nosniff and no referrer', async () => {
    const { context, page, errors } = await openPage();
    const response = await page.goto(`${base}/web/`);
    const headers = response.headers();
    assert.match(headers['content-security-policy'], /script-src 'self'/);
    assert.doesNotMatch(headers['content-security-policy'], /unsafe-inline/);
    assert.equal(headers['x-frame-options'], 'DENY');
    assert.equal(headers['x-content-type-options'], 'nosniff');
    assert.equal(headers['referrer-policy'], 'no-referrer');
    await page.getByLabel('Management token').waitFor();
    await shot(page, '01-sign-in');
    noErrors(errors);
    await context.close();
  });

  test('signing in keeps the token out of storage and URLs, in an HttpOnly Strict cookie', async () => {
    const { context, page, errors } = await openPage();
    await signIn(page, fixture.ownerToken);
    assert.ok(!page.url().includes(fixture.ownerToken));
    const stored = await page.evaluate(() => JSON.stringify({ ...localStorage }) + JSON.stringify({ ...sessionStorage }) + document.cookie);
    assert.ok(!stored.includes(fixture.ownerToken), 'no token in web storage or script-readable cookies');
    assert.equal(await page.getByLabel('Management token').inputValue(), '', 'the field was cleared');
    const cookies = await context.cookies();
    assert.equal(cookies.length, 1);
    assert.equal(cookies[0].name, 'rekey_session');
    assert.equal(cookies[0].httpOnly, true);
    assert.equal(cookies[0].sameSite, 'Strict');
    assert.notEqual(cookies[0].value, fixture.ownerToken);
    await page.getByText('Signed in as').waitFor();
    noErrors(errors);
    await context.close();
  });

  test('lists resources by subscription and group with type and endpoint, and search filters them', async () => {
    const { context, page, errors } = await openPage();
    await signIn(page, fixture.ownerToken);
    for (const name of ['contoso-text', 'fabrikam-vision', 'qws-web', 'cosmos-web']) {
      await page.getByRole('link', { name }).waitFor();
    }
    await page.getByRole('heading', { name: 'Resource group rg-web' }).waitFor();
    await page.getByRole('heading', { name: 'Resource group rg-other' }).waitFor();
    const text = await page.locator('#resources').innerText();
    for (const words of ['Cognitive Services account', 'Quantum workspace', 'Azure Cosmos DB account',
      `${base}/data/`]) {
      assert.ok(text.includes(words), `the list shows ${words}`);
    }
    await shot(page, '02-resources');
    await page.getByLabel('Search resources').fill('quantum');
    await until(async () => (await page.getByRole('link', { name: 'contoso-text' }).count()) === 0,
      'the search to hide other types');
    assert.equal(await page.getByRole('link', { name: 'qws-web' }).count(), 1);
    assert.match(await page.locator('#list-count').innerText(), /1 of 4 resources/);
    await page.getByLabel('Search resources').fill('rg-other');
    await until(async () => (await page.getByRole('link', { name: 'fabrikam-vision' }).count()) === 1
      && (await page.getByRole('link', { name: 'qws-web' }).count()) === 0, 'a group search');
    noErrors(errors);
    await context.close();
  });

  test('an account shows masked keys with times and its endpoint; Show reveals and Copy copies', async () => {
    const { context, page, errors } = await openPage();
    await signIn(page, fixture.ownerToken);
    await openResource(page, 'contoso-text');
    const keys = await listKeys(fixture.account, fixture.versions.CS);
    const key1 = page.getByLabel('Key1 value');
    await key1.waitFor();
    assert.equal(await key1.getAttribute('type'), 'password', 'masked by default');
    assert.equal(await page.getByLabel('Key2 value').getAttribute('type'), 'password');
    const endpoint = await page.getByLabel('Endpoint', { exact: true }).inputValue();
    assert.match(endpoint, /\/data\/[0-9a-f]{32}\/$/);
    const meta = await page.locator('.key[data-slot="key2"] .meta').innerText();
    assert.match(meta, /Created \S+/);
    assert.doesNotMatch(meta, /Last used never/, 'key2 was used by seed.mjs');
    await shot(page, '03-keys-masked');

    await page.getByRole('button', { name: 'Show Key1' }).click();
    assert.equal(await key1.getAttribute('type'), 'text');
    assert.equal(await key1.inputValue(), keys.key1);
    assert.equal(await page.getByRole('button', { name: 'Hide Key1' }).getAttribute('aria-pressed'), 'true');
    assert.equal(await page.getByLabel('Key2 value').getAttribute('type'), 'password', 'only Key1 shown');
    await shot(page, '04-key1-shown');

    await page.getByRole('button', { name: 'Copy Key1' }).click();
    await page.getByText('Key1 copied to the clipboard.').waitFor();
    assert.equal(await page.evaluate(() => navigator.clipboard.readText()), keys.key1);
    await page.getByRole('button', { name: 'Copy endpoint' }).click();
    assert.equal(await page.evaluate(() => navigator.clipboard.readText()), endpoint);
    noErrors(errors);
    await context.close();
  });

  test('Regenerate Key1 confirms naming the slot, shows the new key, and leaves Key2 as it was', async () => {
    const { context, page, errors } = await openPage();
    await signIn(page, fixture.ownerToken);
    await openResource(page, 'contoso-text');
    const before = await listKeys(fixture.account, fixture.versions.CS);

    // Cancel first: nothing changes.
    await page.getByRole('button', { name: 'Regenerate Key1' }).click();
    const dialog = page.getByRole('dialog');
    await dialog.waitFor();
    assert.match(await dialog.innerText(), /Regenerate Key1\?/);
    assert.match(await dialog.innerText(), /Key1 of contoso-text gets a new value/);
    await shot(page, '05-confirm-regenerate');
    await dialog.getByRole('button', { name: 'Cancel' }).click();
    await dialog.waitFor({ state: 'hidden' });
    assert.deepEqual((await listKeys(fixture.account, fixture.versions.CS)).key1, before.key1);

    await page.getByRole('button', { name: 'Regenerate Key1' }).click();
    await dialog.getByRole('button', { name: 'Regenerate Key1' }).click();
    await page.getByText('Key1 regenerated. The new key is shown.').waitFor();
    const after = await listKeys(fixture.account, fixture.versions.CS);
    assert.notEqual(after.key1, before.key1, 'Key1 changed');
    assert.equal(after.key2, before.key2, 'Key2 did not change');
    const key1 = page.getByLabel('Key1 value');
    assert.equal(await key1.getAttribute('type'), 'text', 'the new key is shown at once');
    assert.equal(await key1.inputValue(), after.key1);
    assert.equal(await page.getByLabel('Key2 value').getAttribute('type'), 'password');
    assert.match(await page.locator('.key[data-slot="key1"] .meta').innerText(), /Last used never/);
    await shot(page, '06-key1-regenerated');
    // The old key is refused on the data plane from now on.
    const endpoint = await page.getByLabel('Endpoint', { exact: true }).inputValue();
    const old = await fetch(endpoint, { headers: { 'Ocp-Apim-Subscription-Key': before.key1 } });
    assert.equal(old.status, 401);
    noErrors(errors);
    await context.close();
  });

  test('Cosmos DB (202) and Quantum (204) keys regenerate and show their new values', async () => {
    const { context, page, errors } = await openPage();
    await signIn(page, fixture.ownerToken);
    await openResource(page, 'cosmos-web');
    const cosmosBefore = await listKeys(fixture.cosmos, fixture.versions.DB);
    for (const label of ['Primary key', 'Secondary key', 'Primary read-only key', 'Secondary read-only key']) {
      await page.getByLabel(`${label} value`).waitFor();
    }
    await page.getByRole('heading', { name: 'Connection strings' }).waitFor();
    await shot(page, '07-cosmos-keys');
    await page.getByRole('button', { name: 'Regenerate Secondary key' }).click();
    await page.getByRole('dialog').getByRole('button', { name: 'Regenerate Secondary key' }).click();
    await page.getByText('Secondary key regenerated. The new key is shown.').waitFor();
    const cosmosAfter = await listKeys(fixture.cosmos, fixture.versions.DB);
    assert.notEqual(cosmosAfter.secondaryMasterKey, cosmosBefore.secondaryMasterKey);
    assert.equal(cosmosAfter.primaryMasterKey, cosmosBefore.primaryMasterKey);
    assert.equal(await page.getByLabel('Secondary key value').inputValue(), cosmosAfter.secondaryMasterKey);

    await page.getByRole('link', { name: '← All resources' }).click();
    await openResource(page, 'qws-web');
    const quantumBefore = await listKeys(fixture.workspace, fixture.versions.QW);
    await page.getByRole('button', { name: 'Regenerate Primary key' }).click();
    await page.getByRole('dialog').getByRole('button', { name: 'Regenerate Primary key' }).click();
    await page.getByText('Primary key regenerated. The new key is shown.').waitFor();
    const quantumAfter = await listKeys(fixture.workspace, fixture.versions.QW);
    assert.notEqual(quantumAfter.primaryKey.key, quantumBefore.primaryKey.key);
    assert.equal(quantumAfter.secondaryKey.key, quantumBefore.secondaryKey.key);
    assert.equal(await page.getByLabel('Primary key value').inputValue(), quantumAfter.primaryKey.key);
    await page.getByRole('button', { name: 'Show Primary connection string' }).click();
    assert.match(await page.getByLabel('Primary connection string value').inputValue(),
      new RegExp(quantumAfter.primaryKey.key));
    noErrors(errors);
    await context.close();
  });

  test('a write from the page without the CSRF token is refused', async () => {
    const { context, page, errors } = await openPage();
    await signIn(page, fixture.ownerToken);
    const path = `${fixture.account}/regenerateKey?api-version=${fixture.versions.CS}`;
    const status = await page.evaluate(async (p) => (await fetch(p, {
      method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"keyName":"Key2"}',
    })).status, path);
    assert.equal(status, 403);
    noErrors(errors.filter((e) => !e.includes('403')));
    await context.close();
  });

  test('a resource link to anywhere but a rekey resource id opens nothing', async () => {
    const { context, page, errors } = await openPage();
    const requests = [];
    page.on('request', (r) => requests.push(r.url()));
    await signIn(page, fixture.ownerToken);
    const forged = '//attacker.example/a/b/c/Microsoft.CognitiveServices/accounts/x';
    await page.goto(`${base}/web/#/resource/${encodeURIComponent(forged)}`);
    await page.getByText('rekey does not serve this resource type.').waitFor();
    assert.ok(requests.every((u) => u.startsWith(base)), 'every request stayed on rekeyd');
    noErrors(errors);
    await context.close();
  });

  test('the keyboard alone signs in, opens a resource and shows a key', async () => {
    const { context, page, errors } = await openPage();
    await page.goto(`${base}/web/`);
    await page.getByLabel('Management token').waitFor();
    assert.equal(await page.evaluate(() => document.activeElement.id), 'token', 'focus starts in the field');
    await page.keyboard.type(fixture.ownerToken);
    await page.keyboard.press('Enter');
    await page.getByRole('link', { name: 'contoso-text' }).waitFor();
    const focusOn = async (name, presses = 40) => {
      for (let i = 0; i < presses; i += 1) {
        await page.keyboard.press('Tab');
        const focused = await page.evaluate(() => {
          const a = document.activeElement;
          return a && (a.getAttribute('aria-label') || a.textContent.trim());
        });
        if (focused === name) return;
      }
      throw new Error(`Tab never reached ${name}`);
    };
    await focusOn('contoso-text');
    await page.keyboard.press('Enter');
    await page.getByRole('heading', { name: 'contoso-text', level: 1 }).waitFor();
    await page.getByLabel('Key1 value').waitFor();
    await focusOn('Show Key2');
    await page.keyboard.press('Enter');
    assert.equal(await page.getByLabel('Key2 value').getAttribute('type'), 'text');
    await focusOn('Regenerate Key2');
    await page.keyboard.press('Enter');
    await page.getByRole('dialog').waitFor();
    assert.equal(await page.evaluate(() => document.activeElement.textContent), 'Cancel',
      'the dialog opens on its safe choice');
    await page.keyboard.press('Escape');
    await page.getByRole('dialog').waitFor({ state: 'hidden' });
    noErrors(errors);
    await context.close();
  });

  test('a Reader sees the resource but no keys and no Regenerate buttons', async () => {
    const { context, page, errors } = await openPage();
    const requests = [];
    page.on('request', (r) => requests.push(`${r.method()} ${r.url()}`));
    await signIn(page, fixture.readerToken);
    await page.getByText('Signed in as web reader').waitFor();
    await openResource(page, 'contoso-text');
    await page.getByText('No access to keys.').waitFor();
    assert.match(await page.getByLabel('Endpoint', { exact: true }).inputValue(), /\/data\//);
    assert.equal(await page.locator('[data-secret]').count(), 0, 'no key fields');
    assert.equal(await page.getByRole('button', { name: /Regenerate/ }).count(), 0);
    assert.equal(await page.getByRole('button', { name: /^Show / }).count(), 0);
    const keys = await listKeys(fixture.account, fixture.versions.CS);
    const html = await page.content();
    assert.ok(!html.includes(keys.key1) && !html.includes(keys.key2), 'no key anywhere in the page');
    assert.ok(!requests.some((r) => r.includes('/listKeys')), 'the page did not even ask for keys');
    await shot(page, '08-reader');
    noErrors(errors);
    await context.close();
  });

  test('a phone-sized window shows the list and the keys without sideways scrolling', async () => {
    const { context, page, errors } = await openPage(PHONE, { isMobile: true, hasTouch: true,
      deviceScaleFactor: 2 });
    await signIn(page, fixture.ownerToken);
    const fits = () => page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth);
    assert.ok(await fits(), 'the list fits the width');
    await shot(page, '09-phone-resources');
    await openResource(page, 'cosmos-web');
    await page.getByRole('button', { name: 'Show Primary key' }).click();
    assert.ok(await fits(), 'the keys fit the width');
    const box = await page.getByRole('button', { name: 'Regenerate Primary key' }).boundingBox();
    assert.ok(box && box.x >= 0 && box.x + box.width <= PHONE.width, 'Regenerate is on screen');
    await shot(page, '10-phone-keys');
    noErrors(errors);
    await context.close();
  });

  test('signing out ends the session on the server', async () => {
    const { context, page, errors } = await openPage();
    await signIn(page, fixture.ownerToken);
    const [cookie] = await context.cookies();
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.getByLabel('Management token').waitFor();
    assert.deepEqual(await context.cookies(), [], 'the browser forgot the cookie');
    const replay = await fetch(`${base}/subscriptions?api-version=2022-12-01`, {
      headers: { cookie: `${cookie.name}=${cookie.value}` },
    });
    assert.equal(replay.status, 401, 'the old cookie no longer works');
    await page.reload();
    await page.getByLabel('Management token').waitFor();
    noErrors(errors.filter((e) => !e.includes('401')));
    await context.close();
  });
});
