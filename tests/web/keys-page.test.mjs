// Owns the end-to-end tests of the Keys & Endpoint page: a person's path through it in real headless
// Chromium against the live rekeyd that run.sh started and seed.mjs filled. Every check of what the
// server holds goes through the API with the owner's bearer token, never through the page.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createRequire } from 'node:module';
import { chromium } from 'playwright-core';

const AXE_SOURCE = readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');

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
  page.setDefaultTimeout(10000);
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

/** Opens a resource from the list and waits until its keys (or the notice that there are none) show. */
async function openResource(page, name) {
  await page.getByRole('link', { name }).click();
  await page.getByRole('heading', { name, level: 1 }).waitFor();
  await page.locator('#keys-section:not([hidden]), #no-keys:not([hidden])').waitFor();
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

/** A new token (made by the owner) holding `role` at `scope`: { principalId, token }. */
async function tokenWithRole(name, role, scope) {
  const made = (await api('POST', '/rekey/tokens', { name })).body;
  const roles = (await api('GET', `/subscriptions/${fixture.subscription}/providers/Microsoft.Authorization/`
    + `roleDefinitions?api-version=2022-04-01&$filter=${encodeURIComponent(`roleName eq '${role}'`)}`)).body;
  const assigned = await api('PUT', `${scope}/providers/Microsoft.Authorization/roleAssignments/`
    + `${crypto.randomUUID()}?api-version=2022-04-01`,
  { properties: { roleDefinitionId: roles.value[0].id, principalId: made.principalId } });
  assert.equal(assigned.status, 201);
  return made;
}

/** The WCAG contrast ratio of two CSS rgb() colours. */
function contrast(a, b) {
  const luminance = (css) => {
    const [r, g, bl] = css.match(/\d+(\.\d+)?/g).slice(0, 3).map(Number).map((v) => {
      const c = v / 255;
      return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4;
    });
    return 0.2126 * r + 0.7152 * g + 0.0722 * bl;
  };
  const [x, y] = [luminance(a), luminance(b)].sort((p, q) => q - p);
  return (x + 0.05) / (y + 0.05);
}

/** Signs in on the page already showing the sign-in form. */
async function signInAgain(page, token) {
  await page.getByLabel('Management token').fill(token);
  await page.getByRole('button', { name: 'Sign in' }).click();
}

const visibleText = (page) => page.locator('main').innerText();

// A view's screenshot at the page's width, and again at the other of the two widths every view is
// kept at (1280 and 375 px), the page put back to its own size afterwards.
async function shot(page, name) {
  await page.screenshot({ path: join(shots, `${name}.png`), fullPage: true });
  const own = page.viewportSize();
  const other = own.width > PHONE.width ? PHONE : WIDE;
  await page.setViewportSize(other);
  await page.screenshot({ path: join(shots, `${name}-${other.width}.png`), fullPage: true });
  await page.setViewportSize(own);
}

const noErrors = (errors) => assert.deepEqual(errors, [], 'the page logged no errors');

/**
 * axe-core's serious and critical findings on the page as it is now (its context must bypass the
 * CSP, to inject axe's script): how many rules ran, and each finding as `rule: targets`.
 */
async function axeFindings(page) {
  await page.addScriptTag({ content: AXE_SOURCE });
  return page.evaluate(async () => {
    const report = await window.axe.run(document, { resultTypes: ['violations'] });
    return { checked: report.passes.length, found: report.violations
      .filter((v) => v.impact === 'serious' || v.impact === 'critical')
      .map((v) => `${v.id}: ${v.nodes.map((n) => n.target.join(' ')).join(', ')}`) };
  });
}

/** `times` data-plane calls to `endpoint` with `key` in `header`: the last status. */
async function present(endpoint, header, key, times = 1) {
  let status = 0;
  for (let i = 0; i < times; i += 1) {
    status = (await fetch(endpoint, { headers: { [header]: key } })).status;
  }
  return status;
}

const CS_KEY = 'Ocp-Apim-Subscription-Key';
const QUANTUM_KEY = 'x-ms-quantum-api-key';

async function endpointOf(id, version, field) {
  return (await api('GET', `${id}?api-version=${version}`)).body.properties[field];
}

/** A sparkline's points as [x, y] pairs. */
async function sparkPoints(spark) {
  return (await spark.locator('polyline').getAttribute('points')).split(' ')
    .map((p) => p.split(',').map(Number));
}

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

  test('lists resources in a sortable table; search covers name, kind and group, and a type filter', async () => {
    const { context, page, errors } = await openPage();
    await signIn(page, fixture.ownerToken);
    const names = async () => page.locator('table.resources tbody th').allInnerTexts();
    assert.deepEqual(await names(),
      ['contoso-keyless', 'contoso-text', 'cosmos-web', 'fabrikam-vision', 'qws-web']);
    const header = await page.locator('table.resources thead').innerText();
    for (const column of ['Name', 'Type', 'Kind', 'Resource group', 'Location', 'Oldest key', 'Last use',
      'Subscription']) {
      assert.ok(header.includes(column), `the table has a ${column} column`);
    }
    const text = await page.locator('#resources').innerText();
    for (const words of ['Cognitive Services account', 'Quantum workspace', 'Azure Cosmos DB account',
      'TextAnalytics', 'westeurope']) {
      assert.ok(text.includes(words), `the list shows ${words}`);
    }
    await shot(page, '02-resources');
    await page.getByLabel('Search resources').fill('quantum');
    await until(async () => (await names()).join() === 'qws-web', 'the search to hide other types');
    assert.match(await page.locator('#list-count').innerText(), /1 of 5 resources/);
    await page.getByLabel('Search resources').fill('rg-other');
    await until(async () => (await names()).join() === 'contoso-keyless,fabrikam-vision', 'a group search');
    await page.getByLabel('Search resources').fill('textanalytics');
    await until(async () => (await names()).join() === 'contoso-text', 'a search by kind');
    await page.getByLabel('Search resources').fill('');
    await page.getByLabel('Type').selectOption({ label: 'Azure Cosmos DB account' });
    await until(async () => (await names()).join() === 'cosmos-web', 'the type filter');
    await page.getByLabel('Type').selectOption({ label: 'All types' });
    await page.getByRole('button', { name: 'Name' }).click();
    await until(async () => (await names())[0] === 'qws-web', 'a descending sort by name');
    assert.equal(await page.locator('th[aria-sort="descending"]').innerText(), 'Name ▼');
    // Only contoso-text's keys have been used (seed.mjs): it leads a sort by last use.
    await page.getByRole('button', { name: 'Last use' }).click();
    await until(async () => (await names())[0] === 'contoso-text', 'a sort by last use');
    assert.match(await page.locator('tbody tr').first().locator('td[data-label="Last use"]').innerText(),
      /ago|just now/);
    assert.match(await page.locator('tbody tr').first().locator('td[data-label="Oldest key"] time')
      .getAttribute('title'), /\(.+\)$/);
    await page.getByRole('button', { name: 'Location' }).click();
    const locations = () => page.locator('td[data-label="Location"]').allInnerTexts();
    await until(async () => {
      const shown = await locations();
      return shown.join() === [...shown].sort((a, b) => a.localeCompare(b)).join()
        && (await names())[0] !== 'qws-web';
    }, 'a sort by location');
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
    assert.equal(await key1.getAttribute('data-revealed'), 'false', 'masked by default');
    assert.equal(await page.getByLabel('Key2 value').getAttribute('data-revealed'), 'false');
    const endpoint = await page.getByLabel('Endpoint', { exact: true }).inputValue();
    assert.match(endpoint, /\/data\/[0-9a-f]{32}\/$/);
    const meta = await page.locator('.key[data-slot="key2"] .meta').innerText();
    assert.match(meta, /Created \S+/);
    assert.doesNotMatch(meta, /Last used never/, 'key2 was used by seed.mjs');
    await shot(page, '03-keys-masked');

    await page.getByRole('button', { name: 'Show Key1' }).click();
    assert.equal(await key1.getAttribute('data-revealed'), 'true');
    assert.equal(await key1.inputValue(), keys.key1);
    assert.equal(await page.getByRole('button', { name: 'Hide Key1' }).getAttribute('aria-pressed'), 'true');
    assert.equal(await page.getByLabel('Key2 value').getAttribute('data-revealed'), 'false', 'only Key1 shown');
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
    assert.equal(await key1.getAttribute('data-revealed'), 'true', 'the new key is shown at once');
    assert.equal(await key1.inputValue(), after.key1);
    assert.equal(await page.getByLabel('Key2 value').getAttribute('data-revealed'), 'false');
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
    for (const label of ['Primary key', 'Secondary key', 'Primary connection string']) {
      await page.getByLabel(`${label} value`).waitFor();
    }
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
    assert.equal(await page.getByLabel('Key2 value').getAttribute('data-revealed'), 'true');
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
  // 1. A regeneration that did not happen is said so, and offered again after sign-in.
  test('a regeneration refused because the session ended says so and is offered again after sign-in', async () => {
    const temp = await tokenWithRole('web short-lived', 'Contributor', `/subscriptions/${fixture.subscription}`);
    const { context, page, errors } = await openPage();
    await signIn(page, temp.token);
    await openResource(page, 'contoso-text');
    const before = await listKeys(fixture.account, fixture.versions.CS);
    await page.getByRole('button', { name: 'Regenerate Key1' }).click();
    // The token is revoked while the dialog is open: the session ends with it.
    assert.equal((await api('DELETE', `/rekey/tokens/${temp.principalId}`)).status, 200);
    await page.getByRole('dialog').getByRole('button', { name: 'Regenerate Key1' }).click();
    await page.getByText('Key1 of contoso-text was not regenerated').waitFor();
    assert.equal((await listKeys(fixture.account, fixture.versions.CS)).key1, before.key1);
    await signInAgain(page, fixture.ownerToken);
    await page.getByText(/Key1 was not regenerated: your session had ended.*Retry after sign-in/).waitFor();
    const retry = page.getByRole('button', { name: 'Retry: regenerate Key1' });
    assert.equal(await page.evaluate(() => document.activeElement.textContent), 'Retry: regenerate Key1');
    await retry.click();
    await page.getByRole('dialog').getByRole('button', { name: 'Regenerate Key1' }).click();
    await page.getByText('Key1 regenerated. The new key is shown.').waitFor();
    const after = await listKeys(fixture.account, fixture.versions.CS);
    assert.notEqual(after.key1, before.key1);
    assert.equal(await page.getByLabel('Key1 value').inputValue(), after.key1);
    noErrors(errors.filter((e) => !e.includes('401')));
    await context.close();
  });

  test('a regeneration after the session ended elsewhere (as after a restart) is said not to have happened', async () => {
    const { context, page, errors } = await openPage();
    await signIn(page, fixture.ownerToken);
    await openResource(page, 'qws-web');
    const before = await listKeys(fixture.workspace, fixture.versions.QW);
    // The session is ended by another request, as a restart or the 8-hour limit would end it.
    const [cookie] = await context.cookies();
    const headers = { cookie: `${cookie.name}=${cookie.value}` };
    const { csrfToken } = await (await fetch(`${base}/web/session`, { headers })).json();
    const ended = await fetch(`${base}/web/session`, { method: 'DELETE',
      headers: { ...headers, 'x-csrf-token': csrfToken } });
    assert.equal(ended.status, 204);
    await page.getByRole('button', { name: 'Regenerate Primary key' }).click();
    await page.getByRole('dialog').getByRole('button', { name: 'Regenerate Primary key' }).click();
    await page.getByText('Primary key of qws-web was not regenerated').waitFor();
    await page.getByText('Your session has ended. Sign in again.').waitFor();
    await shot(page, '18-session-ended');
    assert.equal((await listKeys(fixture.workspace, fixture.versions.QW)).primaryKey.key, before.primaryKey.key);
    assert.equal(await page.locator('[data-secret]').count(), 0, 'the keys were forgotten');
    noErrors(errors.filter((e) => !e.includes('401')));
    await context.close();
  });

  test('a regeneration whose answer is lost says it may have happened and reloads the keys', async () => {
    const { context, page, errors } = await openPage();
    await signIn(page, fixture.ownerToken);
    await openResource(page, 'fabrikam-vision');
    await page.getByLabel('Key1 value').waitFor();
    const before = await listKeys(fixture.other, fixture.versions.CS);
    const regenerateCall = (url) => url.pathname.endsWith('/regenerateKey');
    // First the request never reaches rekeyd: the reloaded keys show Key1 unchanged.
    await page.route(regenerateCall, (route) => route.abort('connectionreset'));
    await page.getByRole('button', { name: 'Regenerate Key1' }).click();
    await page.getByRole('dialog').getByRole('button', { name: 'Regenerate Key1' }).click();
    await page.getByText(/Key1 is unchanged, so it has not been regenerated/).waitFor();
    assert.equal((await listKeys(fixture.other, fixture.versions.CS)).key1, before.key1);
    await page.unrouteAll();
    // Then the request reaches rekeyd, which regenerates; its answer never reaches the page.
    await page.route(regenerateCall, async (route) => {
      await route.fetch();
      await route.abort('connectionreset');
    });
    await page.getByRole('button', { name: 'Regenerate Key1' }).click();
    await page.getByRole('dialog').getByRole('button', { name: 'Regenerate Key1' }).click();
    await page.getByText(/it may have happened — reload keys/).waitFor();
    await page.getByText(/Key1 is new, so it was regenerated/).waitFor();
    await page.locator('.key[data-slot="key1"]').getByText('New — copy it now').waitFor();
    const after = await listKeys(fixture.other, fixture.versions.CS);
    assert.notEqual(after.key1, before.key1);
    assert.equal(await page.getByLabel('Key1 value').inputValue(), after.key1, 'the keys were reloaded');
    assert.doesNotMatch(await visibleText(page), /was not regenerated/);
    await page.getByRole('button', { name: 'Reload keys' }).waitFor();
    noErrors(errors.filter((e) => !e.includes('ERR_CONNECTION_RESET')));
    await context.close();
  });

  // 2. Key Operator may read what it rotates; a view it cannot open names the missing right.
  test('a Key Operator finds the resources it rotates, and a view it cannot open names the missing right', async () => {
    const { context, page, errors } = await openPage();
    await signIn(page, fixture.operatorToken);
    await openResource(page, 'contoso-text');
    await page.getByLabel('Key1 value').waitFor();
    await page.getByRole('button', { name: 'Regenerate Key2' }).waitFor();
    await context.close();

    const narrow = await openPage();
    await narrow.page.goto(`${base}/web/#/resource/${encodeURIComponent(fixture.account)}`);
    await signInAgain(narrow.page, fixture.narrowOperatorToken);
    await narrow.page.getByText('You cannot open contoso-text: your roles do not grant '
      + 'Microsoft.CognitiveServices/accounts/read here.').waitFor();
    const text = await visibleText(narrow.page);
    assert.doesNotMatch(text, /client '|object id|Endpoint/, 'no raw ARM message, no empty Endpoint');
    await shot(narrow.page, '11-no-right');
    noErrors(errors);
    noErrors(narrow.errors.filter((e) => !e.includes('403')));
    await narrow.context.close();
  });

  // 3. Keys that are switched off look switched off.
  test('with key authentication off the page says so and marks each key as not accepted', async () => {
    const { context, page, errors } = await openPage();
    await signIn(page, fixture.ownerToken);
    await openResource(page, 'contoso-keyless');
    await page.getByText('Key authentication is off for this resource.').waitFor();
    assert.match(await page.locator('#keys-off').innerText(), /disableLocalAuth/);
    assert.equal(await page.getByText('Not accepted').count(), 2);
    assert.doesNotMatch(await visibleText(page), /Either key opens/);
    // What the banner says is what the data plane does.
    const keys = await listKeys(fixture.keyless, fixture.versions.CS);
    const endpoint = await page.getByLabel('Endpoint', { exact: true }).inputValue();
    const used = await fetch(endpoint, { headers: { 'Ocp-Apim-Subscription-Key': keys.key1 } });
    assert.equal(used.status, 403);
    await shot(page, '12-keys-off');
    // Quantum's switch is apiKeyEnabled: false.
    const patch = (on) => api('PATCH', `${fixture.workspace}?api-version=${fixture.versions.QW}`,
      { properties: { apiKeyEnabled: on } });
    assert.equal((await patch(false)).status, 200);
    try {
      await page.getByRole('link', { name: '← All resources' }).click();
      await openResource(page, 'qws-web');
      await page.getByText('Its apiKeyEnabled property is false.').waitFor();
      assert.equal(await page.getByText('Not accepted').count(), 2);
    } finally {
      assert.equal((await patch(true)).status, 200);
    }
    noErrors(errors);
    await context.close();
  });

  // 5. Errors: a failed list offers Retry and hides the stale list; a missing resource is one sentence.
  test('a list that cannot load offers Retry without a stale list; a missing resource is one sentence', async () => {
    const { context, page, errors } = await openPage();
    await signIn(page, fixture.ownerToken);
    await openResource(page, 'qws-web');
    await page.route((url) => url.pathname === '/subscriptions', (route) => route.abort('connectionreset'));
    await page.getByRole('link', { name: '← All resources' }).click();
    await page.getByText('The resources could not be loaded: rekeyd did not answer.').waitFor();
    assert.equal(await page.getByRole('link', { name: 'contoso-text' }).count(), 0, 'no stale list');
    assert.doesNotMatch(await visibleText(page), /Failed to fetch/);
    await shot(page, '13-list-failed');
    await page.unroute((url) => url.pathname === '/subscriptions');
    await page.unrouteAll();
    await page.getByRole('button', { name: 'Retry' }).click();
    await page.getByRole('link', { name: 'contoso-text' }).waitFor();
    const missing = fixture.account.replace(/contoso-text$/, 'nope');
    await page.goto(`${base}/web/#/resource/${encodeURIComponent(missing)}`);
    await page.getByText('There is no Cognitive Services account named nope in resource group rg-web.').waitFor();
    assert.doesNotMatch(await visibleText(page), /Endpoint|ResourceNotFound/);
    noErrors(errors.filter((e) => !e.includes('ERR_CONNECTION_RESET') && !e.includes('404')));
    await context.close();
  });

  // 4. Feedback where the person acts.
  test('Copy and Regenerate confirm beside the button on a phone, and focus lands on the new key’s Copy', async () => {
    const { context, page, errors } = await openPage(PHONE, { isMobile: true, hasTouch: true });
    await signIn(page, fixture.ownerToken);
    await openResource(page, 'qws-web');
    await page.getByRole('button', { name: 'Regenerate Secondary key' }).click();
    await page.getByRole('dialog').getByRole('button', { name: 'Regenerate Secondary key' }).click();
    const card = page.locator('.key[data-slot="secondary"]');
    await card.getByText('New — copy it now').waitFor();
    assert.equal(await page.evaluate(() => document.activeElement.getAttribute('aria-label')),
      'Copy Secondary key', 'focus is on the new key’s Copy button');
    const badge = await card.getByText('New — copy it now').boundingBox();
    assert.ok(badge.y >= 0 && badge.y + badge.height <= PHONE.height, 'the badge is on screen');
    await page.keyboard.press('Enter');
    await card.getByRole('button', { name: 'Copy Secondary key' }).filter({ hasText: 'Copied' }).waitFor();
    const keys = await listKeys(fixture.workspace, fixture.versions.QW);
    assert.equal(await page.evaluate(() => navigator.clipboard.readText()), keys.secondaryKey.key);
    await shot(page, '14-phone-regenerated');
    noErrors(errors);
    await context.close();
  });

  // 6. Cosmos DB as the portal shows it.
  test('Cosmos DB keys come in Read-write and Read-only tabs, each key with its connection string', async () => {
    const { context, page, errors } = await openPage();
    await signIn(page, fixture.ownerToken);
    await openResource(page, 'cosmos-web');
    const rw = page.getByRole('tab', { name: 'Read-write keys' });
    const ro = page.getByRole('tab', { name: 'Read-only keys' });
    assert.equal(await rw.getAttribute('aria-selected'), 'true');
    assert.equal(await ro.getAttribute('aria-selected'), 'false');
    const keys = await listKeys(fixture.cosmos, fixture.versions.DB);
    const primary = page.locator('.key[data-slot="primary"]');
    await primary.getByRole('button', { name: 'Show Primary connection string' }).click();
    assert.match(await primary.getByLabel('Primary connection string value').inputValue(),
      new RegExp(`AccountKey=${keys.primaryMasterKey.replace(/[+/=]/g, '\\$&')};`));
    assert.equal(await page.getByLabel('Primary read-only key value').isVisible(), false);
    await rw.focus();
    await page.keyboard.press('ArrowRight');
    assert.equal(await ro.getAttribute('aria-selected'), 'true');
    await page.getByLabel('Primary read-only key value').waitFor();
    await page.getByLabel('Secondary read-only connection string value').waitFor();
    const panel = await page.getByRole('tabpanel').innerText();
    assert.match(panel, /reading only/);
    assert.doesNotMatch(panel, /Either key opens|read-write/);
    assert.doesNotMatch(await visibleText(page), /SQL Connection String/, 'one capitalisation');
    await shot(page, '15-cosmos-read-only');
    noErrors(errors);
    await context.close();
  });

  // 10. Sign-in that helps.
  test('sign-in keeps a refused token, recognises a pasted key without sending it, and shows time left', async () => {
    const { context, page, errors } = await openPage();
    const posts = [];
    page.on('request', (r) => { if (r.method() === 'POST' && r.url().endsWith('/web/session')) posts.push(r); });
    await page.goto(`${base}/web/`);
    const field = page.getByLabel('Management token');
    await field.fill('rkt_notarealtoken');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByText('That token is not valid (unknown, expired or revoked).').waitFor();
    assert.equal(await field.inputValue(), 'rkt_notarealtoken', 'the field kept the token');
    assert.equal(await field.getAttribute('aria-invalid'), 'true');
    const described = await field.getAttribute('aria-describedby');
    assert.ok(described.split(' ').includes('signin-error'), 'the error is tied to the field');
    await shot(page, '16-sign-in-error');
    const keys = await listKeys(fixture.account, fixture.versions.CS);
    await field.fill(keys.key2);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByText(/That is a resource's key \(rkcs_…\), not a management token/).waitFor();
    assert.equal(posts.length, 1, 'the key was never sent');
    await field.fill(fixture.ownerToken);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByText(/Session ends in [78] h \d+ min/).waitFor();
    noErrors(errors.filter((e) => !e.includes('401')));
    await context.close();
  });

  // 11. Accessibility.
  test('focus ring and field borders reach 3:1, each view has its title, the live region stays calm', async () => {
    const { context, page, errors } = await openPage();
    await page.goto(`${base}/web/`);
    await page.getByLabel('Management token').waitFor();
    assert.equal(await page.title(), 'Sign in · rekey');
    const field = await page.evaluate(() => {
      const s = getComputedStyle(document.getElementById('token'));
      return s.borderTopColor;
    });
    assert.ok(contrast(field, 'rgb(255, 255, 255)') >= 3, `field border ${field}`);
    await page.keyboard.press('Tab');
    await page.keyboard.press('Shift+Tab');
    const ring = await page.evaluate(() => getComputedStyle(document.activeElement).outlineColor);
    assert.ok(contrast(ring, 'rgb(255, 255, 255)') >= 3, `focus ring ${ring}`);
    assert.ok(contrast(ring, 'rgb(246, 248, 250)') >= 3, `focus ring ${ring} on the page background`);
    await signInAgain(page, fixture.ownerToken);
    await page.getByRole('link', { name: 'contoso-text' }).waitFor();
    assert.equal(await page.title(), 'Resources · rekey');
    await page.evaluate(() => {
      window.liveChanges = 0;
      const observer = new MutationObserver(() => { window.liveChanges += 1; });
      for (const region of document.querySelectorAll('[aria-live], [role="status"], [role="alert"]')) {
        observer.observe(region, { childList: true, characterData: true, subtree: true });
      }
    });
    await page.getByLabel('Search resources').pressSequentially('contoso', { delay: 40 });
    await page.waitForTimeout(1200);
    assert.ok(await page.evaluate(() => window.liveChanges) <= 1, 'one announcement when typing pauses');
    assert.match(await page.getByRole('status').innerText(), /2 of 5 resources match/);
    await page.getByRole('link', { name: 'contoso-text' }).click();
    await page.getByRole('heading', { name: 'contoso-text', level: 1 }).waitFor();
    assert.equal(await page.title(), 'contoso-text · Keys & Endpoint · rekey');
    noErrors(errors);
    await context.close();
  });

  // 9. Times people can read, refreshed while they wait.
  test('times read "… ago" with the absolute time and zone on hover, and last use refreshes every 30 s', async () => {
    const { context, page, errors } = await openPage();
    await page.clock.install();
    await signIn(page, fixture.ownerToken);
    await openResource(page, 'contoso-text');
    const created = page.locator('.key[data-slot="key1"] .meta time').first();
    await created.waitFor();
    assert.match(await created.innerText(), /^(just now|\d+ (min|h) ago)$/);
    assert.match(await created.getAttribute('title'), /\d{4}.*\d{2}:\d{2}:\d{2}.*\(.+\)$/);
    const lastUsed = page.locator('.key[data-slot="key1"] .last-used');
    assert.equal(await lastUsed.innerText(), 'Last used never');
    const keys = await listKeys(fixture.account, fixture.versions.CS);
    const endpoint = await page.getByLabel('Endpoint', { exact: true }).inputValue();
    const used = await fetch(endpoint, { headers: { 'Ocp-Apim-Subscription-Key': keys.key1 } });
    assert.equal(used.status, 200);
    await new Promise((r) => setTimeout(r, 300)); // rekeyd flushes last-use times every 100 ms
    const keyReads = [];
    page.on('request', (r) => { if (r.url().includes('/listKeys')) keyReads.push(r.url()); });
    await page.clock.fastForward(31000);
    await until(async () => /Last used (just now|\d+ min ago)/.test(await lastUsed.innerText()),
      'the last use to refresh');
    assert.deepEqual(keyReads, [], 'the refresh asks for times, not for the keys again');
    noErrors(errors);
    await context.close();
  });
  // 8. Secrets that can be matched without being shown, and read whole when shown.
  test('a masked key shows only its prefix and last four characters; shown values wrap, never cut', async () => {
    const { context, page, errors } = await openPage(PHONE, { isMobile: true, hasTouch: true });
    await signIn(page, fixture.ownerToken);
    await openResource(page, 'contoso-text');
    const keys = await listKeys(fixture.account, fixture.versions.CS);
    assert.equal(await page.getByLabel('Key1 value').inputValue(), `rkcs_…${keys.key1.slice(-4)}`);
    const inPage = () => page.evaluate(() => [...document.querySelectorAll('textarea, input')]
      .map((f) => f.value).join('\n') + document.documentElement.outerHTML);
    assert.ok(!(await inPage()).includes(keys.key1), 'a masked key is nowhere in the page');
    await page.getByRole('link', { name: '← All resources' }).click();
    await openResource(page, 'cosmos-web');
    const cosmos = await listKeys(fixture.cosmos, fixture.versions.DB);
    const trimmed = cosmos.primaryMasterKey.replace(/=+$/, '');
    assert.equal(await page.getByLabel('Primary key value').inputValue(),
      `…${trimmed.slice(-4)}${cosmos.primaryMasterKey.slice(trimmed.length)}`);
    assert.match(await page.getByLabel('Primary connection string value').inputValue(),
      /^AccountEndpoint=http.*;AccountKey=….{4}==;$/);
    await page.getByRole('button', { name: 'Show Primary key' }).click();
    await page.getByRole('button', { name: 'Show Primary connection string' }).click();
    for (const label of ['Primary key value', 'Primary connection string value', 'Endpoint']) {
      const field = page.getByLabel(label, { exact: true });
      const { whole, lines } = await field.evaluate((f) => ({
        whole: f.scrollWidth <= f.clientWidth && f.scrollHeight <= f.clientHeight + 1,
        lines: Math.round(f.clientHeight / parseFloat(getComputedStyle(f).lineHeight)),
      }));
      assert.ok(whole, `${label} is shown whole`);
      assert.ok(lines >= 2, `${label} wraps on a phone (${lines} lines)`);
    }
    assert.equal(await page.getByLabel('Primary key value').inputValue(), cosmos.primaryMasterKey);
    await shot(page, '17-phone-cosmos-shown');
    noErrors(errors);
    await context.close();
  });

  // 7. The list at a thousand resources.
  test('a list of 1,000 resources renders, filters and sorts without a wait', async () => {
    const { context, page, errors } = await openPage();
    const type = 'Microsoft.CognitiveServices/accounts';
    const many = Array.from({ length: 1000 }, (_, i) => {
      const group = `rg-scale-${i % 20}`;
      const name = `scale-${String(i).padStart(4, '0')}`;
      return { id: `/subscriptions/${fixture.subscription}/resourceGroups/${group}/providers/${type}/${name}`,
        name, type, location: i % 2 ? 'westus' : 'northeurope', kind: i % 3 ? 'TextAnalytics' : 'OpenAI',
        properties: { endpoint: `${base}/data/${'0'.repeat(32)}/` } };
    });
    await page.route((url) => url.pathname.endsWith(`/providers/${type}`),
      (route) => route.fulfill({ json: { value: many } }));
    await page.goto(`${base}/web/`);
    await signInAgain(page, fixture.ownerToken);
    const started = Date.now();
    await page.getByRole('link', { name: 'scale-0999' }).waitFor();
    const listed = Date.now() - started;
    assert.equal(await page.locator('table.resources tbody tr').count(), 1000 + 2, 'the 1,000, and the Quantum and Cosmos DB ones');
    const height = await page.evaluate(() => document.documentElement.scrollHeight);
    assert.ok(height / 1002 < 45, `one dense row per resource (${Math.round(height / 1002)} px each)`);
    const timed = (action) => page.evaluate(action);
    const searchMs = await timed(() => {
      const input = document.getElementById('search');
      const t0 = performance.now();
      input.value = 'openai rg-scale-7';
      input.dispatchEvent(new Event('input'));
      return performance.now() - t0;
    });
    assert.equal(await page.locator('table.resources tbody tr').count(), 17);
    const sortMs = await timed(() => {
      const t0 = performance.now();
      document.getElementById('search').value = '';
      document.querySelector('button.sort[data-sort="location"]').click();
      return performance.now() - t0;
    });
    console.log(`1,000 resources: listed in ${listed} ms, a search in ${Math.round(searchMs)} ms, `
      + `a sort in ${Math.round(sortMs)} ms`);
    assert.ok(searchMs < 500 && sortMs < 1000, 'search and sort answer at once');
    noErrors(errors);
    await context.close();
  });

  // Rotation: each key's use, retired keys still presented, a guarded Regenerate, disabled keys.
  test('each key shows a 24-hour sparkline of its requests, with its last use and client', async () => {
    const endpoint = await endpointOf(fixture.other, fixture.versions.CS, 'endpoint');
    const keys = await listKeys(fixture.other, fixture.versions.CS);
    assert.equal(await present(endpoint, CS_KEY, keys.key2, 7), 200);
    const { context, page, errors } = await openPage();
    await signIn(page, fixture.ownerToken);
    await openResource(page, 'fabrikam-vision');
    const spark = page.locator('.key[data-slot="key2"] svg.spark');
    await spark.waitFor();
    assert.equal(await spark.getAttribute('role'), 'img');
    assert.equal(await spark.getAttribute('aria-label'),
      'Key2: 7 requests in the last 24 hours, at most 7 in 15 minutes, the last just now.');
    let points = await sparkPoints(spark);
    assert.equal(points.length, 96, 'one point per 15 minutes of 24 hours');
    const baseline = Math.max(...points.map(([, y]) => y));
    let raised = points.filter(([, y]) => y < baseline);
    assert.equal(raised.length, 1, 'one span of 15 minutes had requests');
    assert.ok(raised[0][0] > 180, 'at the right-hand end: now');
    assert.match(await page.locator('.key[data-slot="key2"] .usage').innerText(), /7 requests in 24 h/);
    assert.match(await page.locator('.key[data-slot="key2"] .meta').innerText(),
      /Last used (just now|1 min ago)\s+Last client 127\.0\.0\.1/);
    const unused = page.locator('.key[data-slot="key1"] svg.spark');
    assert.equal(await unused.getAttribute('aria-label'), 'Key1: no requests in the last 24 hours.');
    assert.ok((await sparkPoints(unused)).every(([, y]) => y === baseline), 'a flat line');
    await shot(page, '19-usage-sparkline');

    // More requests show after a refresh.
    assert.equal(await present(endpoint, CS_KEY, keys.key2, 5), 200);
    await page.reload();
    await spark.waitFor();
    assert.match(await spark.getAttribute('aria-label'), /^Key2: 12 requests in the last 24 hours/);
    points = await sparkPoints(spark);
    raised = points.filter(([, y]) => y < baseline);
    assert.equal(raised.length, 1);
    noErrors(errors);
    await context.close();
  });

  test('a retired key still presented shows a warning band with the count and the client address', async () => {
    const endpoint = await endpointOf(fixture.workspace, fixture.versions.QW, 'endpointUri');
    const before = await listKeys(fixture.workspace, fixture.versions.QW);
    const regenerated = await api('POST', `${fixture.workspace}/regenerateKey?api-version=${fixture.versions.QW}`,
      { keys: ['Secondary'] });
    assert.equal(regenerated.status, 204);
    assert.equal(await present(endpoint, QUANTUM_KEY, before.secondaryKey.key, 3), 401);
    const { context, page, errors } = await openPage();
    await signIn(page, fixture.ownerToken);
    await openResource(page, 'qws-web');
    const band = page.locator('.key[data-slot="secondary"] .band');
    await band.waitFor();
    assert.equal(await band.getAttribute('role'), 'note');
    assert.match(await band.innerText(),
      /^Retired Secondary key was presented 3 times in the last 24 hours by 127\.0\.0\.1 \(last just now\)\. Those clients are refused/);
    assert.equal(await page.locator('.key[data-slot="primary"] .band').count(), 0,
      'no band where no retired key was presented');
    // More presentations, and the page reloaded: the band counts them.
    assert.equal(await present(endpoint, QUANTUM_KEY, before.secondaryKey.key, 2), 401);
    await page.reload();
    await band.waitFor();
    assert.match(await band.innerText(), /presented 5 times in the last 24 hours by 127\.0\.0\.1/);
    await shot(page, '20-retired-key-presented');
    noErrors(errors);
    await context.close();
  });

  test('Regenerate asks twice for a key used in the last 15 minutes and once for an unused one', async () => {
    const endpoint = await endpointOf(fixture.other, fixture.versions.CS, 'endpoint');
    const before = await listKeys(fixture.other, fixture.versions.CS);
    assert.equal(await present(endpoint, CS_KEY, before.key2), 200);
    const { context, page, errors } = await openPage();
    const tokens = [];
    page.on('request', (r) => { if (r.url().includes('/regenerateKey')) tokens.push(r.headers()['idempotency-key']); });
    await signIn(page, fixture.ownerToken);
    await openResource(page, 'fabrikam-vision');
    const dialog = page.getByRole('dialog');

    // A key in use: the first step shows its use, the second asks again; Cancel there changes nothing.
    await page.getByRole('button', { name: 'Regenerate Key2' }).click();
    await dialog.waitFor();
    let text = await dialog.innerText();
    assert.match(text, /Step 1 of 2/);
    assert.match(text, /Key2 was last used (just now|1 min ago) from 127\.0\.0\.1\. \d+ requests in the last 24 hours\./);
    await dialog.getByRole('button', { name: 'Regenerate Key2' }).click();
    await dialog.getByText('Step 2 of 2').waitFor();
    text = await dialog.innerText();
    assert.match(text, /Key2 is in use\. Regenerate it anyway\?/);
    assert.equal(await page.evaluate(() => document.activeElement.textContent), 'Cancel',
      'the second step starts on its safe choice too');
    await shot(page, '21-regenerate-in-use');
    await dialog.getByRole('button', { name: 'Cancel' }).click();
    await dialog.waitFor({ state: 'hidden' });
    assert.equal((await listKeys(fixture.other, fixture.versions.CS)).key2, before.key2);
    assert.deepEqual(tokens, [], 'nothing was sent');

    await page.getByRole('button', { name: 'Regenerate Key2' }).click();
    await dialog.getByRole('button', { name: 'Regenerate Key2' }).click();
    assert.equal((await listKeys(fixture.other, fixture.versions.CS)).key2, before.key2,
      'the first step alone regenerates nothing');
    await dialog.getByRole('button', { name: 'Yes, regenerate Key2 now' }).click();
    await page.getByText('Key2 regenerated. The new key is shown.').waitFor();
    const after = await listKeys(fixture.other, fixture.versions.CS);
    assert.notEqual(after.key2, before.key2);

    // An unused key: one step.
    await page.getByRole('button', { name: 'Regenerate Key1' }).click();
    await dialog.waitFor();
    text = await dialog.innerText();
    assert.doesNotMatch(text, /Step/);
    assert.match(text, /Key1 has not been used since it was made\./);
    await dialog.getByRole('button', { name: 'Regenerate Key1' }).click();
    await page.getByText('Key1 regenerated. The new key is shown.').waitFor();
    assert.notEqual((await listKeys(fixture.other, fixture.versions.CS)).key1, after.key1);
    assert.equal(tokens.length, 2, 'one request per confirmed regeneration');
    for (const t of tokens) assert.match(t, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    assert.notEqual(tokens[0], tokens[1], 'a fresh Idempotency-Key per confirmation');
    noErrors(errors);
    await context.close();
  });

  test('a key disabled from the page, after confirmation, is refused until enabled again', async () => {
    const endpoint = await endpointOf(fixture.other, fixture.versions.CS, 'endpoint');
    const keys = await listKeys(fixture.other, fixture.versions.CS);
    const { context, page, errors } = await openPage(WIDE, { bypassCSP: true });
    await signIn(page, fixture.ownerToken);
    await openResource(page, 'fabrikam-vision');
    const toggle = page.getByRole('switch', { name: 'Key1 enabled' });
    const card = page.locator('.key[data-slot="key1"]');
    const dialog = page.getByRole('dialog');
    assert.equal(await toggle.getAttribute('aria-checked'), 'true');

    await toggle.click();
    await dialog.getByText('Disable Key1?').waitFor();
    await dialog.getByRole('button', { name: 'Cancel' }).click();
    await dialog.waitFor({ state: 'hidden' });
    assert.equal((await listKeys(fixture.other, fixture.versions.CS))['x-rekey-disabled'], undefined,
      'Cancel disables nothing');

    await toggle.click();
    await dialog.getByRole('button', { name: 'Disable Key1' }).click();
    await card.locator('.badge', { hasText: 'Disabled' }).waitFor();
    assert.equal(await toggle.getAttribute('aria-checked'), 'false');
    assert.match(await card.innerText(), /Key1 is disabled: the data plane refuses it \(401\)/);
    const listed = await listKeys(fixture.other, fixture.versions.CS);
    assert.equal(listed['x-rekey-disabled'].key1, true);
    assert.equal(listed.key1, keys.key1, 'disabling does not rotate');
    assert.equal(await present(endpoint, CS_KEY, keys.key1), 401);
    assert.equal(await present(endpoint, CS_KEY, keys.key2), 200, 'Key2 is untouched');
    const { checked, found } = await axeFindings(page);
    assert.ok(checked > 10);
    assert.deepEqual(found, [], 'no serious or critical axe violation with a disabled key');
    await shot(page, '22-key-disabled');

    await toggle.click();
    await dialog.getByRole('button', { name: 'Enable Key1' }).click();
    await page.getByText('Key1 enabled: the data plane accepts it again.').waitFor();
    assert.equal(await card.locator('.badge', { hasText: 'Disabled' }).count(), 0);
    assert.equal(await toggle.getAttribute('aria-checked'), 'true');
    assert.equal(await present(endpoint, CS_KEY, keys.key1), 200);
    assert.equal((await listKeys(fixture.other, fixture.versions.CS))['x-rekey-disabled'], undefined);
    noErrors(errors);
    await context.close();
  });

  // seed.mjs gives contoso-keyless a maximum key age of 30 days and makes its Key1 40 days old.
  test('a key past its maximum age shows an Overdue badge with its age and the maximum; a young one none', async () => {
    const listed = await listKeys(fixture.keyless, fixture.versions.CS);
    assert.deepEqual(listed['x-rekey-keyAge'].key1, { ageDays: 40, overdue: true, maxKeyAgeDays: 30 });
    const { context, page, errors } = await openPage(WIDE, { bypassCSP: true });
    await signIn(page, fixture.ownerToken);
    await openResource(page, 'contoso-keyless');
    const overdue = (slot) => page.locator(`.key[data-slot="${slot}"] .badge`, { hasText: 'Overdue' });
    await overdue('key1').waitFor();
    assert.equal(await overdue('key1').getAttribute('title'), 'Overdue: 40 days old, maximum 30 days');
    // A screen reader reads the text, hidden part included: the age is not only in a tooltip.
    assert.equal(await overdue('key1').textContent(), 'Overdue: 40 days old, maximum 30 days');
    assert.equal(await overdue('key2').count(), 0, 'Key2 is younger than 30 days');
    const { checked, found } = await axeFindings(page);
    assert.ok(checked > 10);
    assert.deepEqual(found, [], 'no serious or critical axe violation with an overdue key');
    await shot(page, '23-key-overdue');
    // A resource with no maximum age marks none of its keys.
    await page.getByRole('link', { name: '← All resources' }).click();
    await openResource(page, 'contoso-text');
    await page.locator('.key').first().waitFor();
    assert.equal(await page.locator('.badge', { hasText: 'Overdue' }).count(), 0);
    noErrors(errors);
    await context.close();
  });

  // Every view, at a desktop's and a phone's width: axe-core finds nothing serious, and each is
  // saved as a screenshot. Only this context bypasses the CSP, to inject axe's script.
  test('axe finds no serious or critical violation in any view, at 1280 and 375 px', async () => {
    const failures = [];
    for (const [width, viewport] of [['1280', WIDE], ['375', PHONE]]) {
      const { context, page, errors } = await openPage(viewport, { bypassCSP: true });
      const check = async (name) => {
        const { checked, found } = await axeFindings(page);
        assert.ok(checked > 10, `axe ran its rules on ${name}`);
        failures.push(...found.map((r) => `${name} at ${width}: ${r}`));
        await page.screenshot({ path: join(shots, `view-${name}-${width}.png`), fullPage: true });
      };
      await page.goto(`${base}/web/`);
      await page.getByLabel('Management token').waitFor();
      await check('sign-in');
      await page.getByLabel('Management token').fill('rkt_notarealtoken');
      await page.getByRole('button', { name: 'Sign in' }).click();
      await page.getByText('That token is not valid').waitFor();
      await check('sign-in-error');
      await signInAgain(page, fixture.ownerToken);
      await page.getByRole('link', { name: 'contoso-text' }).waitFor();
      await check('list');
      for (const name of ['contoso-keyless', 'qws-web', 'cosmos-web', 'contoso-text']) {
        await page.goto(`${base}/web/#/`);
        await openResource(page, name);
        await page.locator('.key').first().waitFor();
        await check(`detail-${name}`);
      }
      await page.getByRole('button', { name: 'Regenerate Key2' }).click();
      await page.getByRole('dialog').waitFor();
      await check('dialog');
      await page.keyboard.press('Escape');
      await page.goto(`${base}/web/#/resource/${encodeURIComponent(fixture.account.replace(/contoso-text$/, 'nope'))}`);
      await page.getByText('There is no Cognitive Services account named nope').waitFor();
      await check('not-found');
      noErrors(errors.filter((e) => !e.includes('401') && !e.includes('404')));
      await context.close();
    }
    assert.deepEqual(failures, [], 'no serious or critical axe violations');
  });
});
