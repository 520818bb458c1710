// Owns the Keys & Endpoint page's behaviour: sign-in, the resource list, one resource's keys with
// Show / Copy / Regenerate, and rekey's rotation extensions for each key: its 24-hour use
// (listKeyUsage: a sparkline, last use and client, a warning while a retired key is still presented),
// Disable / Enable, and a second confirmation before regenerating a key in use. It calls rekeyd's ARM
// API like any client, authenticated by the
// HttpOnly session cookie (the token never reaches script-readable storage), and sends the
// session's CSRF token with every write. The DOM is built with textContent only, never innerHTML,
// so no name or key can inject markup. Secrets live in memory only while their resource is open.
'use strict';

// The api-versions the page sends (ARM requires one). A Rust test checks each is served.
const VERSIONS = {
  'resources': '2022-12-01',
  'Microsoft.CognitiveServices/accounts': '2025-09-01',
  'Microsoft.Quantum/workspaces': '2025-12-15-preview',
  'Microsoft.DocumentDB/databaseAccounts': '2025-10-15',
};

// How often an open resource's last-use times are fetched again, while clients move to a new key.
const USAGE_REFRESH_MS = 30000;
// A key used this recently is "in use": regenerating it asks a second time.
const IN_USE_MS = 15 * 60 * 1000;
// The sparkline: the last 24 hours in 96 spans of 15 minutes.
const SPARK_SPAN_MS = 15 * 60 * 1000;
const SPARK_SPANS = 96;

// Each type's key slots as the page shows them, and where its wire bodies keep keys and endpoint.
// `set` groups slots into the portal's tabs; `connection` is the connection string made from the key.
const TYPES = {
  'Microsoft.CognitiveServices/accounts': {
    label: 'Cognitive Services account',
    endpoint: (r) => r.properties && r.properties.endpoint,
    keysOff: (r) => (r.properties && r.properties.disableLocalAuth === true
      ? 'Its disableLocalAuth property is true.' : null),
    slots: [
      { name: 'key1', label: 'Key1', field: (k) => k.key1, body: { keyName: 'Key1' } },
      { name: 'key2', label: 'Key2', field: (k) => k.key2, body: { keyName: 'Key2' } },
    ],
    sets: [{ name: 'keys', hint: 'Either key opens the resource. Regenerate one while clients use '
      + 'the other; the old key stops working the moment the regeneration answers.' }],
  },
  'Microsoft.Quantum/workspaces': {
    label: 'Quantum workspace',
    endpoint: (r) => r.properties && r.properties.endpointUri,
    keysOff: (r) => (r.properties && r.properties.apiKeyEnabled === false
      ? 'Its apiKeyEnabled property is false.' : null),
    slots: [
      { name: 'primary', label: 'Primary key', field: (k) => k.primaryKey && k.primaryKey.key,
        connection: (k) => k.primaryConnectionString, body: { keys: ['Primary'] } },
      { name: 'secondary', label: 'Secondary key', field: (k) => k.secondaryKey && k.secondaryKey.key,
        connection: (k) => k.secondaryConnectionString, body: { keys: ['Secondary'] } },
    ],
    sets: [{ name: 'keys', hint: 'Either key opens the workspace. Regenerate one while clients use '
      + 'the other; the old key stops working the moment the regeneration answers.' }],
  },
  'Microsoft.DocumentDB/databaseAccounts': {
    label: 'Azure Cosmos DB account',
    endpoint: (r) => r.properties && r.properties.documentEndpoint,
    keysOff: (r) => (r.properties && r.properties.disableLocalAuth === true
      ? 'Its disableLocalAuth property is true.' : null),
    slots: [
      { name: 'primary', set: 'rw', label: 'Primary key', field: (k) => k.primaryMasterKey,
        kind: 'Primary', body: { keyKind: 'primary' } },
      { name: 'secondary', set: 'rw', label: 'Secondary key', field: (k) => k.secondaryMasterKey,
        kind: 'Secondary', body: { keyKind: 'secondary' } },
      { name: 'primaryReadonly', set: 'ro', label: 'Primary read-only key',
        field: (k) => k.primaryReadonlyMasterKey, kind: 'PrimaryReadonly',
        body: { keyKind: 'primaryReadonly' } },
      { name: 'secondaryReadonly', set: 'ro', label: 'Secondary read-only key',
        field: (k) => k.secondaryReadonlyMasterKey, kind: 'SecondaryReadonly',
        body: { keyKind: 'secondaryReadonly' } },
    ],
    // The portal's two tabs: a read-only key can read data but never change it.
    sets: [
      { name: 'rw', label: 'Read-write keys', hint: 'Either read-write key opens the account for '
        + 'reading and writing. Regenerate one while clients use the other; the old key stops '
        + 'working the moment the regeneration answers.' },
      { name: 'ro', label: 'Read-only keys', hint: 'Either read-only key opens the account for '
        + 'reading only. Regenerate one while clients use the other; the old key stops working the '
        + 'moment the regeneration answers.' },
    ],
    connectionsAction: 'listConnectionStrings',
  },
};

const state = {
  session: null, // { name, csrfToken, expiresInSeconds, … } from GET /web/session
  sessionEnds: 0, // Date.now() at which the session ends
  resources: [], // { sub, subName, group, resource, type }
  subs: [],
  sort: { key: 'name', dir: 1 },
  // The open resource's secrets, kept in memory only while its view is open.
  secrets: new Map(),
  revealed: new Set(),
  fresh: null, // the slot regenerated a moment ago, marked "New" until the view closes
  tab: null, // the open Cosmos DB key set
  // A regeneration the server never acted on because the session had ended: { id, slot }. Not a
  // secret; kept so the person can retry it after signing in again.
  pending: null,
  timers: [],
};

const $ = (id) => document.getElementById(id);

/** Builds an element; `attrs` are attributes (`text` sets textContent), children are nodes or text. */
function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'text') node.textContent = v;
    else node.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children) {
    if (c !== null && c !== undefined) node.append(c);
  }
  return node;
}

class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

/**
 * Calls rekeyd with the session cookie; writes carry the CSRF token, and `extra` headers if given.
 * Answers the parsed body.
 */
async function api(method, path, body, extra) {
  // Only this origin's own paths: the CSRF token must never travel anywhere else.
  if (!path.startsWith('/') || path.startsWith('//')) throw new ApiError(0, 'BadPath', `Not a path: ${path}`);
  const headers = { accept: 'application/json', ...(extra || {}) };
  if (method !== 'GET' && method !== 'HEAD' && state.session) {
    headers['x-csrf-token'] = state.session.csrfToken;
  }
  if (body !== undefined) headers['content-type'] = 'application/json';
  let response;
  let text;
  try {
    response = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: 'same-origin',
      cache: 'no-store',
    });
    text = await response.text();
  } catch (e) {
    // No answer at all: the request may or may not have reached rekeyd.
    throw new ApiError(0, 'NoAnswer', 'rekeyd did not answer: the connection failed or was cut.');
  }
  let parsed = null;
  if (text) {
    try { parsed = JSON.parse(text); } catch { parsed = null; }
  }
  if (!response.ok) {
    const error = (parsed && parsed.error) || {};
    if (response.status === 401 && path !== '/web/session') {
      showSignIn('Your session has ended. Sign in again.');
    }
    throw new ApiError(response.status, error.code || String(response.status),
      error.message || `${method} ${path} failed with ${response.status}.`);
  }
  return parsed;
}

/** One sentence for a refusal: the right an ARM 403 names, never its client ids. */
function refusal(e, what) {
  const action = /perform action '([^']+)'/.exec(e.message || '');
  return action
    ? `You cannot ${what}: your roles do not grant ${action[1]} here.`
    : `You cannot ${what}: your roles do not allow it.`;
}

function say(message) {
  $('status').textContent = message;
}

/** The error box: one message, and a Retry button when trying again can help. */
function showError(message, retry) {
  $('error-text').textContent = message || '';
  $('error').hidden = !message;
  const button = $('error-retry');
  button.hidden = !retry;
  button.onclick = retry ? () => { showError(''); retry(); } : null;
}

function show(view, title) {
  for (const id of ['view-loading', 'view-signin', 'view-list', 'view-detail']) {
    $(id).hidden = id !== view;
  }
  document.title = `${title} · rekey`;
}

/** Moves focus to a view's heading, so a screen reader announces where the person now is. */
function focusHeading(id) {
  const heading = $(id);
  heading.setAttribute('tabindex', '-1');
  heading.focus();
}

function stopTimers() {
  for (const t of state.timers) clearInterval(t);
  state.timers = [];
}

// ---- Sign-in -------------------------------------------------------------------------------

function showSignIn(message) {
  state.session = null;
  stopTimers();
  forgetSecrets();
  $('who').hidden = true;
  show('view-signin', 'Sign in');
  showError(message || '');
  fieldError('');
  $('token').focus();
}

/** The sign-in field's own error, tied to it so a screen reader reads it with the field. */
function fieldError(message) {
  const input = $('token');
  $('signin-error').textContent = message;
  $('signin-error').hidden = !message;
  input.setAttribute('aria-describedby', message ? 'signin-error token-help' : 'token-help');
  if (message) input.setAttribute('aria-invalid', 'true');
  else input.removeAttribute('aria-invalid');
}

/** What a pasted value is when it is not a management token, so it is not even sent. */
function notAToken(value) {
  if (/^rk(?!t_)[a-z]{1,8}_/.test(value)) {
    return `That is a resource's key (${value.slice(0, value.indexOf('_') + 1)}…), not a management `
      + 'token: it opens a resource\'s data plane and cannot sign in. Paste a management token (rkt_…).';
  }
  if (/AccountKey=|AccountEndpoint=/i.test(value)) {
    return 'That is a connection string, not a management token. Paste a management token (rkt_…).';
  }
  if (/^[A-Za-z0-9+/]{86}==$/.test(value)) {
    return 'That looks like a Cosmos DB key, not a management token. Paste a management token (rkt_…).';
  }
  return null;
}

async function signIn(event) {
  event.preventDefault();
  const input = $('token');
  const token = input.value.trim();
  if (!token) {
    fieldError('Paste a management token (rkt_…).');
    return;
  }
  const wrong = notAToken(token);
  if (wrong) {
    fieldError(wrong);
    input.select();
    return;
  }
  try {
    state.session = await api('POST', '/web/session', { token });
  } catch (e) {
    // The field keeps what was pasted, so a token cut short can be corrected rather than re-pasted.
    fieldError(e.status === 401 ? 'That token is not valid (unknown, expired or revoked).'
      : e.message);
    input.select();
    return;
  }
  // The token leaves the page's memory as soon as it has been exchanged.
  input.value = '';
  fieldError('');
  say('Signed in.');
  signedIn();
}

async function signOut() {
  try {
    await api('DELETE', '/web/session');
  } catch (e) {
    // Signed out either way: the cookie is gone or no longer names a session.
  }
  state.pending = null;
  history.replaceState(null, '', '#/');
  showSignIn('');
  say('Signed out.');
}

function sessionLeft() {
  const minutes = Math.max(0, Math.round((state.sessionEnds - Date.now()) / 60000));
  const text = minutes >= 60 ? `${Math.floor(minutes / 60)} h ${minutes % 60} min` : `${minutes} min`;
  $('session-left').textContent = `Session ends in ${text}`;
  $('session-left').title = `at ${absolute(new Date(state.sessionEnds))}`;
}

function signedIn() {
  $('who-name').textContent = state.session.name;
  $('who').hidden = false;
  state.sessionEnds = Date.now() + (state.session.expiresInSeconds || 0) * 1000;
  sessionLeft();
  route();
}

// ---- Times ---------------------------------------------------------------------------------

function absolute(date) {
  const zone = Intl.DateTimeFormat().resolvedOptions().timeZone || 'local time';
  return `${date.toLocaleString(undefined, { year: 'numeric', month: 'short', day: 'numeric',
    hour: '2-digit', minute: '2-digit', second: '2-digit', timeZoneName: 'short' })} (${zone})`;
}

function relative(date) {
  const seconds = Math.round((Date.now() - date.getTime()) / 1000);
  if (seconds < 45) return 'just now';
  const minutes = Math.round(seconds / 60);
  if (minutes < 60) return `${minutes} min ago`;
  const hours = Math.round(minutes / 60);
  if (hours < 48) return `${hours} h ago`;
  return `${Math.round(hours / 24)} days ago`;
}

/** A time as "6 min ago", with the absolute time and zone on hover and for assistive technology. */
function when(iso) {
  if (!iso) return el('span', { text: 'never' });
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return el('span', { text: iso });
  return el('time', { datetime: iso, title: absolute(date), text: relative(date) });
}

// ---- Resource list -------------------------------------------------------------------------

// /subscriptions/{sub}/resourceGroups/{group}/providers/{namespace}/{type}/{name}, nothing else:
// a resource id also arrives from the URL's fragment, which anyone can write into a link.
const RESOURCE_ID = /^\/subscriptions\/[^/?#]+\/resourceGroups\/[^/?#]+\/providers\/[^/?#]+\/[^/?#]+\/[^/?#]+$/i;

function typeOf(id) {
  if (!RESOURCE_ID.test(id)) return undefined;
  const parts = id.split('/');
  const name = `${parts[6]}/${parts[7]}`.toLowerCase();
  return Object.keys(TYPES).find((t) => t.toLowerCase() === name);
}

async function loadResources() {
  const subs = (await api('GET', `/subscriptions?api-version=${VERSIONS.resources}`)).value;
  const denied = [];
  const perSub = await Promise.all(subs.map(async (s) => {
    const sub = s.subscriptionId;
    // Key ages and last uses, for the resources whose keys the caller may list; without them the
    // list still works, its two key columns empty.
    const activity = api('GET', `/rekey/keyActivity?scope=${encodeURIComponent(`/subscriptions/${sub}`)}`)
      .then((b) => b.value, () => []);
    const lists = await Promise.all(Object.keys(TYPES).map((type) => api('GET',
      `/subscriptions/${sub}/providers/${type}?api-version=${VERSIONS[type]}`)
      .then((b) => b.value, (e) => {
        if (e.status === 403) {
          denied.push(refusal(e, `list ${TYPES[type].label}s in ${s.displayName}`));
          return [];
        }
        throw e;
      })));
    return { s, resources: lists.flat(), activity: await activity };
  }));
  state.subs = subs;
  state.resources = [];
  for (const { s, resources, activity } of perSub) {
    const keys = new Map(activity.map((a) => [a.id.toLowerCase(), a]));
    for (const r of resources) {
      state.resources.push({ sub: s.subscriptionId, subName: s.displayName, group: r.id.split('/')[4],
        resource: r, type: typeOf(r.id), keys: keys.get(r.id.toLowerCase()) || {} });
    }
  }
  return denied;
}

function matches(entry, query, type) {
  if (type && entry.type !== type) return false;
  if (!query) return true;
  const t = TYPES[entry.type];
  const hay = [entry.resource.name, entry.resource.kind, entry.type, t && t.label, entry.group,
    entry.subName, entry.sub, entry.resource.location].join(' ').toLowerCase();
  return query.toLowerCase().split(/\s+/).every((word) => hay.includes(word));
}

const time = (iso) => (iso ? Date.parse(iso) : NaN);

// The list's columns; `sort` orders them (a missing time sorts last), `cell` shows one.
const COLUMNS = [
  { key: 'name', label: 'Name', value: (e) => e.resource.name },
  { key: 'type', label: 'Type', value: (e) => (TYPES[e.type] ? TYPES[e.type].label : e.resource.type) },
  { key: 'kind', label: 'Kind', value: (e) => e.resource.kind || '' },
  { key: 'group', label: 'Resource group', value: (e) => e.group },
  { key: 'location', label: 'Location', value: (e) => e.resource.location || '' },
  { key: 'age', label: 'Oldest key', value: (e) => time(e.keys.oldestKeyCreatedAt),
    cell: (e) => (e.keys.oldestKeyCreatedAt ? when(e.keys.oldestKeyCreatedAt) : '—') },
  { key: 'used', label: 'Last use', value: (e) => time(e.keys.lastUsedAt),
    cell: (e) => (e.keys.oldestKeyCreatedAt ? when(e.keys.lastUsedAt) : '—') },
  { key: 'sub', label: 'Subscription', value: (e) => e.subName },
];

/** Orders two column values in the chosen direction; a missing time sorts last either way. */
function compare(a, b, dir) {
  if (typeof a === 'number') {
    if (Number.isNaN(a) || Number.isNaN(b)) return Number.isNaN(a) - Number.isNaN(b);
    return dir * (a - b);
  }
  return dir * a.localeCompare(b);
}

function renderList() {
  const query = $('search').value.trim();
  const type = $('type-filter').value;
  const column = COLUMNS.find((c) => c.key === state.sort.key);
  const entries = state.resources.filter((e) => matches(e, query, type))
    .sort((a, b) => compare(column.value(a), column.value(b), state.sort.dir)
      || a.resource.name.localeCompare(b.resource.name));
  const head = el('tr', {}, ...COLUMNS.map((c) => {
    const sorted = state.sort.key === c.key;
    const button = el('button', { type: 'button', class: 'sort', text: c.label,
      'data-sort': c.key },
    el('span', { class: 'arrow', 'aria-hidden': 'true', text: sorted ? (state.sort.dir > 0 ? ' ▲' : ' ▼') : '' }));
    button.addEventListener('click', () => {
      state.sort = { key: c.key, dir: sorted ? -state.sort.dir : 1 };
      renderList();
      document.querySelector(`button.sort[data-sort="${c.key}"]`).focus();
    });
    return el('th', { scope: 'col', 'aria-sort': sorted ? (state.sort.dir > 0 ? 'ascending' : 'descending') : 'none' }, button);
  }));
  const rows = entries.map((e) => el('tr', {},
    el('th', { scope: 'row' },
      el('a', { href: `#/resource/${encodeURIComponent(e.resource.id)}`, text: e.resource.name })),
    ...COLUMNS.slice(1).map((c) => el('td', { 'data-label': c.label },
      c.cell ? c.cell(e) : (c.value(e) || '—')))));
  const root = $('resources');
  if (state.subs.length === 0) {
    root.replaceChildren(el('p', { class: 'muted', text: 'Your roles reach no subscription.' }));
  } else if (entries.length === 0) {
    root.replaceChildren(el('p', { class: 'muted',
      text: state.resources.length ? 'No resource matches.' : 'No resources you can see.' }));
  } else {
    root.replaceChildren(el('table', { class: 'resources' },
      el('caption', { class: 'offscreen', text: 'Resources (column headers sort)' }),
      el('thead', {}, head), el('tbody', {}, ...rows)));
  }
  const total = state.resources.length;
  $('list-count').textContent = query || type
    ? `${entries.length} of ${total} resources match.`
    : `${total} resources.`;
}

let announceTimer = null;

/** Filters at each keystroke, but announces the count only once typing pauses. */
function searchChanged() {
  renderList();
  clearTimeout(announceTimer);
  announceTimer = setTimeout(() => say($('list-count').textContent), 800);
}

async function openList() {
  forgetSecrets();
  show('view-list', 'Resources');
  focusHeading('list-title');
  $('resources').replaceChildren(el('p', { class: 'muted', text: 'Loading resources…' }));
  $('list-count').textContent = '';
  $('list-denied').hidden = true;
  try {
    const denied = await loadResources();
    $('list-denied').textContent = denied.join(' ');
    $('list-denied').hidden = denied.length === 0;
    renderList();
  } catch (e) {
    // A list that could not be loaded is not shown at all: an old one would look current.
    $('resources').replaceChildren();
    if (e.status === 401) return;
    showError(e.status === 0 ? 'The resources could not be loaded: rekeyd did not answer.'
      : `The resources could not be loaded: ${e.message}`, openList);
  }
}

// ---- One resource's Keys & Endpoint --------------------------------------------------------

function forgetSecrets() {
  stopTimers();
  state.secrets.clear();
  state.revealed.clear();
  state.fresh = null;
  $('keys').replaceChildren();
  // A notice's buttons may hold a key (the one a lost answer is compared with).
  $('detail-notice').replaceChildren();
  $('detail-notice').hidden = true;
}

async function copy(value, what, button) {
  try {
    if (navigator.clipboard && window.isSecureContext) {
      await navigator.clipboard.writeText(value);
    } else {
      // Plain-HTTP pages on another host have no clipboard API; the selection fallback still works.
      const area = el('textarea', { class: 'offscreen', readonly: true, 'aria-hidden': 'true' });
      area.value = value;
      document.body.append(area);
      area.select();
      const copied = document.execCommand('copy');
      area.remove();
      if (!copied) throw new Error('copy refused');
    }
    say(`${what} copied to the clipboard.`);
    if (button) {
      // The confirmation appears where the person is looking: on the button itself.
      button.textContent = 'Copied';
      button.classList.add('done');
      setTimeout(() => { button.textContent = 'Copy'; button.classList.remove('done'); }, 2000);
    }
  } catch (e) {
    showError(`Could not copy ${what}: the browser refused access to the clipboard.`);
  }
}

/**
 * A secret as a masked preview: its prefix and last four characters (`rkcs_…5bpp`), enough to match
 * it against a configuration file without revealing it. A connection string masks only its key.
 */
function preview(id) {
  const value = state.secrets.get(id) || '';
  const key = state.secrets.get(id.replace(/-connection$/, ''));
  if (id.endsWith('-connection') && key && value.includes(key)) return value.replace(key, mask(key));
  return mask(value);
}

function mask(value) {
  if (value.length < 16) return '•'.repeat(8);
  const underscore = value.indexOf('_');
  const head = underscore > 0 && underscore <= 8 ? value.slice(0, underscore + 1) : '';
  // Base64 keys end in padding, which tells nothing: the last four characters before it do.
  const body = value.replace(/=+$/, '');
  return `${head}…${body.slice(-4)}${value.slice(body.length)}`;
}

/**
 * A secret's read-only field (masked preview until Show) with Show/Hide and Copy buttons, plus any
 * extra buttons. The full value enters the page only when shown; long values wrap, never cut.
 */
function secretRow(id, label, extra) {
  const revealed = state.revealed.has(id);
  const value = el('textarea', { class: 'value', id: `value-${id}`, 'data-secret': id,
    'data-revealed': String(revealed), readonly: true, rows: 1, autocomplete: 'off',
    spellcheck: 'false', 'aria-label': `${label} value` });
  value.value = revealed ? state.secrets.get(id) : preview(id);
  const toggle = el('button', { type: 'button', class: 'secondary', 'aria-pressed': String(revealed),
    'aria-controls': `value-${id}`, 'aria-label': `${revealed ? 'Hide' : 'Show'} ${label}`,
    text: revealed ? 'Hide' : 'Show' });
  toggle.addEventListener('click', () => {
    const now = !state.revealed.has(id);
    if (now) state.revealed.add(id); else state.revealed.delete(id);
    value.value = now ? state.secrets.get(id) : preview(id);
    value.setAttribute('data-revealed', String(now));
    toggle.textContent = now ? 'Hide' : 'Show';
    toggle.setAttribute('aria-label', `${now ? 'Hide' : 'Show'} ${label}`);
    toggle.setAttribute('aria-pressed', String(now));
  });
  const copyButton = el('button', { type: 'button', class: 'secondary copy', 'aria-label': `Copy ${label}`,
    'data-copy': id, text: 'Copy' });
  copyButton.addEventListener('click', () => copy(state.secrets.get(id), label, copyButton));
  return el('div', { class: 'row' }, value,
    el('div', { class: 'buttons' }, toggle, copyButton, ...(extra || [])));
}

let current = null; // { id, type, resource, rights, keysOff }

function resetDetail(name) {
  $('detail-title').textContent = name;
  $('detail-notice').hidden = true;
  $('detail-notice').replaceChildren();
  $('detail-body').hidden = true;
  $('facts').replaceChildren();
  $('endpoint-row').replaceChildren();
  $('no-keys').hidden = true;
  $('keys-off').hidden = true;
  $('keys-section').hidden = true;
}

/** A notice above the resource's details (a regeneration's outcome, a refusal), with buttons. */
function notice(text, ...buttons) {
  const box = $('detail-notice');
  box.replaceChildren(el('p', { text }), ...(buttons.length ? [el('div', { class: 'buttons' }, ...buttons)] : []));
  box.hidden = false;
}

async function openResource(id) {
  forgetSecrets();
  current = null;
  showError('');
  const type = typeOf(id);
  const t = TYPES[type];
  const name = id.split('/').pop();
  const group = id.split('/')[4];
  show('view-detail', `${name} · Keys & Endpoint`);
  resetDetail(name);
  focusHeading('detail-title');
  if (!t) {
    notice('rekey does not serve this resource type.');
    return;
  }
  let resource;
  let permissions;
  try {
    [resource, permissions] = await Promise.all([
      api('GET', `${id}?api-version=${VERSIONS[type]}`),
      api('GET', `/rekey/permissions?scope=${encodeURIComponent(id)}&actions=${
        ['listKeys', 'regenerateKey', 'listConnectionStrings']
          .map((a) => encodeURIComponent(`${type}/${a}/action`)).join(',')}`),
    ]);
  } catch (e) {
    if (e.status === 401) return;
    if (e.status === 403) notice(refusal(e, `open ${name}`));
    else if (e.status === 404) notice(`There is no ${t.label} named ${name} in resource group ${group}.`);
    else showError(`${name} could not be loaded: ${e.message}`, () => openResource(id));
    return;
  }
  const can = (a) => permissions.actions[`${type}/${a}/action`] === true;
  current = { id, type, resource, keysOff: t.keysOff(resource),
    rights: { list: can('listKeys'), regenerate: can('regenerateKey'), connections: can('listConnectionStrings') } };
  $('detail-body').hidden = false;
  renderFacts();
  if (!current.rights.list) {
    $('no-keys').hidden = false;
    return;
  }
  try {
    await loadKeys();
  } catch (e) {
    if (e.status !== 401) showError(`The keys could not be loaded: ${e.message}`, () => openResource(id));
    return;
  }
  offerPendingRetry();
  state.timers.push(setInterval(refreshUsage, USAGE_REFRESH_MS));
}

function renderFacts() {
  const { id, type, resource } = current;
  const t = TYPES[type];
  const parts = id.split('/');
  const facts = [
    ['Type', `${t.label} (${type})`],
    ['Resource group', parts[4]],
    ['Subscription', parts[2]],
    ['Location', resource.location],
  ];
  if (resource.kind) facts.push(['Kind', resource.kind]);
  if (resource.sku && resource.sku.name) facts.push(['Pricing tier', resource.sku.name]);
  $('facts').replaceChildren(...facts.flatMap(([k, v]) => [el('dt', { text: k }),
    el('dd', { text: v || '—' })]));
  const endpoint = t.endpoint(resource) || '';
  const field = el('textarea', { class: 'value', id: 'endpoint', readonly: true, rows: 1,
    spellcheck: 'false', 'aria-label': 'Endpoint' });
  field.value = endpoint;
  const copyEndpoint = el('button', { type: 'button', class: 'secondary copy', 'aria-label': 'Copy endpoint',
    text: 'Copy' });
  copyEndpoint.addEventListener('click', () => copy(endpoint, 'Endpoint', copyEndpoint));
  $('endpoint-row').replaceChildren(
    field,
    el('div', { class: 'buttons' }, copyEndpoint));
  $('keys-off').hidden = !current.keysOff;
  $('keys-off-why').textContent = current.keysOff || '';
}

function slotMeta(slot, created, lastUsed) {
  const client = currentKeyUse(slot) && usageOf(slot).lastClientAddress;
  return [el('span', {}, 'Created ', when(created[slot.name])),
    el('span', { class: 'last-used' }, 'Last used ', when(lastUsed[slot.name])),
    client ? el('span', { class: 'last-client', text: `Last client ${client}` }) : null];
}

// ---- Rotation: usage, retired keys, disabled keys --------------------------------------------

/** The slot's entry of `listKeyUsage` (keyName is the regenerate body's name: Key1, Primary, …). */
function usageOf(slot) {
  return current && current.usage && current.usage.get(slot.name.toLowerCase());
}

/** Reads `listKeyUsage` into `current.usage`; without it (no answer) the page shows keys as before. */
async function loadUsage() {
  const { id, type } = current;
  let body;
  try {
    body = await api('POST', `${id}/listKeyUsage?api-version=${VERSIONS[type]}`);
  } catch (e) {
    if (e.status === 401) throw e;
    return;
  }
  if (!current || current.id !== id) return;
  current.usage = new Map((body.value || []).map((u) => [String(u.keyName).toLowerCase(), u]));
}

/**
 * listKeyUsage's last use of the slot when it is a use of the slot's current key (the slot's counts
 * go on across regenerations; a use before the key was made was of a key now retired).
 */
function currentKeyUse(slot) {
  const usage = usageOf(slot);
  const at = time(usage && usage.lastUsed);
  const created = time(current.created && current.created[slot.name]);
  return !Number.isNaN(at) && !(at < created) ? at : NaN;
}

/** The latest use of the slot's current key, from listKeys' and listKeyUsage's. */
function lastUse(slot) {
  const times = [currentKeyUse(slot), time(current.lastUsed && current.lastUsed[slot.name])]
    .filter((t) => !Number.isNaN(t));
  return times.length ? Math.max(...times) : NaN;
}

/** Sums `perMinute` into the sparkline's 15-minute spans, oldest first, ending now. */
function spans(usage, now) {
  const counts = new Array(SPARK_SPANS).fill(0);
  const start = now - SPARK_SPANS * SPARK_SPAN_MS;
  for (const m of (usage && usage.perMinute) || []) {
    const i = Math.floor((time(m.start) - start) / SPARK_SPAN_MS);
    if (i >= 0) counts[Math.min(i, SPARK_SPANS - 1)] += m.count;
  }
  return counts;
}

const SVG = 'http://www.w3.org/2000/svg';

function svg(tag, attrs) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  return node;
}

/**
 * The slot's 24 hours of requests as an inline SVG line (one point per 15 minutes, the busiest at
 * the top), an image whose label says what the line shows.
 */
function sparkline(slot) {
  const usage = usageOf(slot);
  const counts = spans(usage, Date.now());
  const total = counts.reduce((a, b) => a + b, 0);
  const peak = Math.max(...counts);
  const [width, height, pad] = [192, 32, 3];
  const points = counts.map((c, i) => {
    const x = (i * width) / (SPARK_SPANS - 1);
    const y = height - pad - (peak ? (c / peak) * (height - 2 * pad) : 0);
    return `${x.toFixed(1)},${y.toFixed(1)}`;
  }).join(' ');
  const last = lastUse(slot);
  const label = total
    ? `${slot.label}: ${total} request${total === 1 ? '' : 's'} in the last 24 hours, at most ${peak} in `
      + `15 minutes${Number.isNaN(last) ? '' : `, the last ${relative(new Date(last))}`}.`
    : `${slot.label}: no requests in the last 24 hours.`;
  const image = svg('svg', { class: 'spark', role: 'img', 'aria-label': label, viewBox: `0 0 ${width} ${height}`,
    width, height, preserveAspectRatio: 'none', 'data-total': total, 'data-peak': peak });
  image.append(svg('line', { class: 'spark-base', x1: 0, y1: height - pad, x2: width, y2: height - pad }),
    svg('polyline', { class: 'spark-line', points }));
  return image;
}

/** The slot's use: the sparkline and the 24-hour count beside it. */
function usageBlock(slot) {
  const usage = usageOf(slot);
  if (!usage) return null;
  const total = usage.requests24h || 0;
  return el('div', { class: 'usage', 'data-usage': slot.name }, sparkline(slot),
    el('span', { class: 'requests', text: `${total} request${total === 1 ? '' : 's'} in 24 h` }));
}

/**
 * A warning while a replaced key of the slot is still presented: those clients are being refused.
 * listKeyUsage counts presentations over 24 hours, so the band says 24 hours.
 */
function retiredBand(slot) {
  const retired = usageOf(slot) && usageOf(slot).retired;
  if (!retired || !retired.presentations24h) return null;
  const n = retired.presentations24h;
  const by = retired.lastClientAddress ? ` by ${retired.lastClientAddress}` : '';
  return el('div', { class: 'band warning', role: 'note', 'data-retired': slot.name },
    el('p', {}, el('strong', { text: `Retired ${slot.label} was presented ${n} time${n === 1 ? '' : 's'} in `
      + `the last 24 hours${by}` }), ' (last ', when(retired.lastPresented), '). ',
    'Those clients are refused: give them the current key.'));
}

/** "The old key is still accepted until …" while a regeneration's overlap lasts. */
function retiringNote(slot) {
  const until = current.retiring && current.retiring[slot.name] && current.retiring[slot.name].until;
  if (!until || time(until) <= Date.now()) return null;
  return el('p', { class: 'small muted retiring' }, `The replaced ${slot.label} is still accepted until `,
    when(until), '.');
}

/** The Enable/Disable switch of a slot (with the same right as Regenerate). */
function disableSwitch(slot) {
  const disabled = current.disabled[slot.name] === true;
  const button = el('button', { type: 'button', role: 'switch', class: 'switch secondary',
    'aria-checked': String(!disabled), 'aria-label': `${slot.label} enabled`, 'data-switch': slot.name },
  el('span', { class: 'track', 'aria-hidden': 'true' }),
  el('span', { text: disabled ? 'Disabled' : 'Enabled' }));
  button.addEventListener('click', () => confirmSwitch(slot, disabled));
  return button;
}

/**
 * "Overdue" on a card whose key listKeys' `x-rekey-keyAge` marks past its maximum age. The age and
 * the maximum are in the title for a pointer and in hidden text for a screen reader (a span's
 * aria-label is not read).
 */
function overdueBadge(age) {
  if (!age || age.overdue !== true) return null;
  const days = (n) => (n === 1 ? '1 day' : `${n} days`);
  const detail = `${days(age.ageDays)} old, maximum ${age.maxKeyAgeDays === undefined ? 'exceeded'
    : days(age.maxKeyAgeDays)}`;
  return el('span', { class: 'badge overdue', title: `Overdue: ${detail}` }, 'Overdue',
    el('span', { class: 'visually-hidden', text: `: ${detail}` }));
}

/** Re-renders each card's usage parts (sparkline, meta, retired band) from `current`. */
function renderUsage() {
  for (const slot of TYPES[current.type].slots) {
    const card = document.querySelector(`.key[data-slot="${slot.name}"]`);
    if (!card) continue;
    const row = card.querySelector('.usage-row');
    const block = row.querySelector('.usage');
    const fresher = usageBlock(slot);
    if (block && fresher) block.replaceWith(fresher);
    else if (block) block.remove();
    else if (fresher) row.prepend(fresher);
    const band = card.querySelector('.band');
    const fresh = retiredBand(slot);
    if (band && fresh) band.replaceWith(fresh);
    else if (band) band.remove();
    else if (fresh) card.querySelector('h3').after(fresh);
    card.querySelector('.meta').replaceChildren(...slotMeta(slot, current.created, current.lastUsed)
      .filter(Boolean));
  }
}

async function loadKeys() {
  const { id, type } = current;
  const t = TYPES[type];
  const [keys] = await Promise.all([
    api('POST', `${id}/listKeys?api-version=${VERSIONS[type]}`),
    loadUsage(),
  ]);
  let connections = {};
  for (const slot of t.slots) {
    if (slot.connection && slot.connection(keys)) connections[slot.name] = slot.connection(keys);
  }
  if (t.connectionsAction && current.rights.connections) {
    const body = await api('POST', `${id}/${t.connectionsAction}?api-version=${VERSIONS[type]}`);
    connections = {};
    for (const c of body.connectionStrings || []) {
      const slot = t.slots.find((s) => s.kind === c.keyKind);
      if (slot && c.connectionString) connections[slot.name] = c.connectionString;
    }
  }
  if (!current || current.id !== id) return; // the person left while the keys were on their way
  const created = keys['x-rekey-createdAt'] || {};
  const lastUsed = keys['x-rekey-lastUsed'] || {};
  const ages = keys['x-rekey-keyAge'] || {};
  Object.assign(current, { created, lastUsed, disabled: keys['x-rekey-disabled'] || {},
    retiring: keys['x-rekey-retiring'] || {} });
  const card = (slot) => {
    state.secrets.set(slot.name, slot.field(keys) || '');
    let regenerate = null;
    if (current.rights.regenerate) {
      regenerate = el('button', { type: 'button', class: 'regenerate',
        'aria-label': `Regenerate ${slot.label}`, 'data-slot': slot.name, text: 'Regenerate' });
      regenerate.addEventListener('click', () => confirmRegenerate(slot));
    }
    const fresh = state.fresh === slot.name;
    const off = current.keysOff;
    const disabled = current.disabled[slot.name] === true;
    const connection = connections[slot.name];
    const connectionLabel = slot.label.replace(/key$/, 'connection string');
    if (connection) state.secrets.set(`${slot.name}-connection`, connection);
    return el('div', { class: `key${fresh ? ' fresh' : ''}${off ? ' off' : ''}${disabled ? ' disabled' : ''}`,
      role: 'group', 'aria-labelledby': `title-${slot.name}`, 'data-slot': slot.name },
    el('h3', { id: `title-${slot.name}` }, slot.label,
      fresh ? el('span', { class: 'badge new', text: 'New — copy it now' }) : null,
      off ? el('span', { class: 'badge off', text: 'Not accepted' }) : null,
      disabled ? el('span', { class: 'badge off', text: 'Disabled' }) : null,
      overdueBadge(ages[slot.name])),
    retiredBand(slot),
    disabled ? el('p', { class: 'small disabled-note', text: `${slot.label} is disabled: the data plane `
      + 'refuses it (401) until it is enabled again. Disabling did not change it.' }) : null,
    secretRow(slot.name, slot.label, regenerate ? [regenerate] : []),
    connection ? el('p', { class: 'sublabel', text: connectionLabel }) : null,
    connection ? secretRow(`${slot.name}-connection`, connectionLabel) : null,
    el('div', { class: 'usage-row' }, usageBlock(slot),
      current.rights.regenerate ? disableSwitch(slot) : null),
    retiringNote(slot),
    el('p', { class: 'meta' }, ...slotMeta(slot, created, lastUsed).filter(Boolean)));
  };
  const sets = t.sets.map((set) => {
    const slots = t.slots.filter((s) => (s.set || 'keys') === set.name);
    const hint = current.keysOff
      ? 'No key is accepted while key authentication is off.' : set.hint;
    return el('div', { class: 'keyset', id: `set-${set.name}`, 'data-set': set.name,
      ...(t.sets.length > 1 ? { role: 'tabpanel', 'aria-labelledby': `tab-${set.name}` } : {}) },
    el('p', { class: 'muted small', text: hint }),
    el('div', { class: 'keys' }, ...slots.map(card)));
  });
  $('keys').replaceChildren(...sets);
  renderTabs(t);
  $('keys-title').textContent = t.sets.length > 1 ? 'Keys' : `Keys (${t.slots.length})`;
  $('keys-section').hidden = false;
}

/** Cosmos DB's read-write and read-only keys as the portal's two tabs (arrow keys move between). */
function renderTabs(t) {
  const list = $('key-tabs');
  if (t.sets.length < 2) {
    list.hidden = true;
    list.replaceChildren();
    return;
  }
  if (!state.tab || !t.sets.some((s) => s.name === state.tab)) state.tab = t.sets[0].name;
  const select = (name, focus) => {
    state.tab = name;
    for (const s of t.sets) {
      const on = s.name === name;
      const tab = $(`tab-${s.name}`);
      tab.setAttribute('aria-selected', String(on));
      tab.tabIndex = on ? 0 : -1;
      $(`set-${s.name}`).hidden = !on;
      if (on && focus) tab.focus();
    }
  };
  list.replaceChildren(...t.sets.map((s, i) => {
    const tab = el('button', { type: 'button', role: 'tab', id: `tab-${s.name}`,
      'aria-controls': `set-${s.name}`, text: s.label });
    tab.addEventListener('click', () => select(s.name, false));
    tab.addEventListener('keydown', (event) => {
      const step = { ArrowRight: 1, ArrowLeft: -1 }[event.key];
      if (!step) return;
      event.preventDefault();
      select(t.sets[(i + step + t.sets.length) % t.sets.length].name, true);
    });
    return tab;
  }));
  list.hidden = false;
  select(state.tab, false);
}

/**
 * Fetches last-use times again while the view is open, so a person sees clients move to the new key.
 * It asks for times only (`/rekey/keyActivity`), never the keys again.
 */
async function refreshUsage() {
  if (!current || !current.rights.list || document.hidden) return;
  const { id } = current;
  let activity;
  try {
    [activity] = await Promise.all([
      api('GET', `/rekey/keyActivity?scope=${encodeURIComponent(id)}`),
      loadUsage(),
    ]);
  } catch (e) {
    return; // the next refresh tries again; a real failure shows on the person's next action
  }
  const entry = activity.value[0];
  if (!entry || !current || current.id !== id) return;
  const created = {};
  const lastUsed = {};
  for (const [slot, times] of Object.entries(entry.keys || {})) {
    created[slot] = times.createdAt;
    lastUsed[slot] = times.lastUsedAt;
  }
  Object.assign(current, { created, lastUsed });
  renderUsage();
}

/**
 * Asks in the dialog, one step after another (each `{ title, text, facts, ok, danger }`), focus on
 * Cancel at every step; resolves true only when the person confirmed the last step.
 */
function ask(steps) {
  return new Promise((resolve) => {
    const dialog = $('confirm');
    const ok = $('confirm-ok');
    let step = 0;
    const render = () => {
      const s = steps[step];
      $('confirm-step').textContent = steps.length > 1 ? `Step ${step + 1} of ${steps.length}` : '';
      $('confirm-step').hidden = steps.length < 2;
      $('confirm-title').textContent = s.title;
      $('confirm-text').textContent = s.text;
      $('confirm-facts').textContent = s.facts || '';
      $('confirm-facts').hidden = !s.facts;
      ok.textContent = s.ok;
      ok.className = s.danger === false ? '' : 'danger';
    };
    ok.onclick = (event) => {
      if (step + 1 >= steps.length) return;
      // Not yet: the next step replaces this one in the same dialog, focus back on Cancel.
      event.preventDefault();
      step += 1;
      render();
      $('confirm-cancel').focus();
    };
    dialog.returnValue = '';
    dialog.onclose = () => resolve(dialog.returnValue === 'confirm' && step === steps.length - 1);
    render();
    dialog.showModal();
  });
}

/** What the page knows of a slot's use, in one sentence for a dialog. */
function useFacts(slot) {
  const usage = usageOf(slot);
  const last = lastUse(slot);
  if (Number.isNaN(last)) {
    return usage ? `${slot.label} has not been used since it was made.` : '';
  }
  const client = !Number.isNaN(currentKeyUse(slot)) && usage.lastClientAddress
    ? ` from ${usage.lastClientAddress}` : '';
  const count = usage ? ` ${usage.requests24h} request${usage.requests24h === 1 ? '' : 's'} in the `
    + 'last 24 hours.' : '';
  return `${slot.label} was last used ${relative(new Date(last))}${client}.${count}`;
}

/**
 * Regenerate's confirmation, with the slot's use as last loaded (the view refreshes it every 30 s);
 * a slot used within 15 minutes asks a second time.
 */
async function confirmRegenerate(slot) {
  const name = current.resource.name;
  const last = lastUse(slot);
  const inUse = !Number.isNaN(last) && Date.now() - last < IN_USE_MS;
  const steps = [{
    title: `Regenerate ${slot.label}?`,
    text: `${slot.label} of ${name} gets a new value now. Clients still using the current `
      + `${slot.label} are refused from the moment this answers. The other keys do not change.`,
    facts: useFacts(slot),
    ok: `Regenerate ${slot.label}`,
  }];
  if (inUse) {
    steps.push({
      title: `${slot.label} is in use. Regenerate it anyway?`,
      text: `${slot.label} was used ${relative(new Date(last))}: a client is using it now and will be `
        + `refused as soon as ${slot.label} changes. Move clients to the other key first, unless `
        + `${slot.label} must stop working at once (for example, it leaked).`,
      facts: useFacts(slot),
      ok: `Yes, regenerate ${slot.label} now`,
    });
  }
  if (await ask(steps)) regenerate(slot);
  else document.querySelector(`button.regenerate[data-slot="${slot.name}"]`)?.focus();
}

/** Disable (or enable) a slot after confirmation; the key itself does not change. */
async function confirmSwitch(slot, disabled) {
  const name = current.resource.name;
  const step = disabled ? {
    title: `Enable ${slot.label}?`,
    text: `${slot.label} of ${name} is accepted on the data plane again, with the value it has now.`,
    ok: `Enable ${slot.label}`,
    danger: false,
  } : {
    title: `Disable ${slot.label}?`,
    text: `Clients using ${slot.label} of ${name} are refused (401) until it is enabled again. The key `
      + 'keeps its value; the other keys do not change.',
    facts: useFacts(slot),
    ok: `Disable ${slot.label}`,
  };
  const focusSwitch = () => document.querySelector(`button[data-switch="${slot.name}"]`)?.focus();
  if (!(await ask([step]))) {
    focusSwitch();
    return;
  }
  const { id, type } = current;
  const action = disabled ? 'enableKey' : 'disableKey';
  try {
    await api('POST', `${id}/${action}?api-version=${VERSIONS[type]}`, slot.body);
  } catch (e) {
    if (e.status !== 401) {
      notice(`${slot.label} was not ${disabled ? 'enabled' : 'disabled'}: ${e.status === 403
        ? refusal(e, `${disabled ? 'enable' : 'disable'} ${slot.label}`) : e.message}`);
    }
    return;
  }
  try {
    await loadKeys();
  } catch (e) {
    if (e.status !== 401) notice(`The keys could not be listed again: ${e.message}`);
    return;
  }
  say(`${slot.label} ${disabled ? 'enabled: the data plane accepts it again' : 'disabled: the data plane refuses it'}.`);
  focusSwitch();
}

/** A random UUID (v4), also where crypto.randomUUID is missing (plain HTTP on another host). */
function uuid() {
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const h = [...b].map((x) => x.toString(16).padStart(2, '0')).join('');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

/** After a new sign-in, the regeneration the ended session never made is offered again. */
function offerPendingRetry() {
  const p = state.pending;
  if (!p || !current || p.id !== current.id) return;
  state.pending = null;
  const slot = TYPES[current.type].slots.find((s) => s.name === p.slot.name);
  if (!current.rights.regenerate) {
    notice(`${slot.label} was not regenerated: your session had ended, and your roles here do not `
      + 'allow regenerating it.');
    return;
  }
  const retry = el('button', { type: 'button', class: 'danger', text: `Retry: regenerate ${slot.label}` });
  retry.addEventListener('click', () => confirmRegenerate(slot));
  notice(`${slot.label} was not regenerated: your session had ended before rekeyd acted on it. `
    + 'Retry after sign-in:', retry);
  retry.focus();
}

async function regenerate(slot) {
  const { id, type } = current;
  const button = document.querySelector(`button.regenerate[data-slot="${slot.name}"]`);
  const before = state.secrets.get(slot.name);
  if (button) {
    button.disabled = true;
    button.textContent = 'Regenerating…';
  }
  $('detail-notice').hidden = true;
  say(`Regenerating ${slot.label}…`);
  try {
    // 200 (Cognitive Services), 204 (Quantum) or 202 (Cosmos DB, whose operation has already
    // finished when rekeyd answers): in every case the new key is committed, so list the keys again.
    // One Idempotency-Key per confirmation: should the request be sent again, rekeyd replays its
    // answer rather than regenerating twice.
    await api('POST', `${id}/regenerateKey?api-version=${VERSIONS[type]}`, slot.body,
      { 'idempotency-key': uuid() });
  } catch (e) {
    if (button) {
      button.disabled = false;
      button.textContent = 'Regenerate';
    }
    say('');
    if (e.status === 401) {
      // Refused before rekeyd acted: the key is unchanged, and the person must know it. The sign-in
      // view's alert says so; after sign-in the resource offers the regeneration again.
      state.pending = { id, slot };
      showError(`Your session has ended. Sign in again. ${slot.label} of ${current.resource.name} was `
        + 'not regenerated: rekeyd refused it before acting. Retry it after sign-in.');
    } else if (e.status === 0) {
      await answerLost(slot, before);
    } else {
      notice(`${slot.label} was not regenerated: ${e.status === 403
        ? refusal(e, `regenerate ${slot.label}`) : e.message}`);
    }
    return;
  }
  // Show the new key at once (that is what the person came for), and only that one.
  state.revealed.clear();
  state.revealed.add(slot.name);
  state.fresh = slot.name;
  try {
    await loadKeys();
  } catch (e) {
    if (e.status !== 401) {
      notice(`${slot.label} was regenerated, but the keys could not be listed again: ${e.message}`,
        reloadButton(slot, null));
    }
    return;
  }
  say(`${slot.label} regenerated. The new key is shown.`);
  // Focus goes to the new key's Copy button: copying it is the next step.
  document.querySelector(`button.copy[data-copy="${slot.name}"]`)?.focus();
}

function reloadButton(slot, before) {
  const reload = el('button', { type: 'button', class: 'secondary', text: 'Reload keys' });
  reload.addEventListener('click', () => answerLost(slot, before, true));
  return reload;
}

/**
 * The regeneration left but its answer never came: rekeyd may or may not have acted. The keys are
 * listed again, and the one in question compared with what the page held before.
 */
async function answerLost(slot, before, again) {
  const lost = `The answer to Regenerate ${slot.label} was lost (the connection dropped): it may have `
    + 'happened — reload keys to see.';
  notice(again ? `${lost} Reloading…` : lost, reloadButton(slot, before));
  try {
    state.revealed.clear();
    state.revealed.add(slot.name);
    await loadKeys();
  } catch (e) {
    if (e.status !== 401) notice(`${lost} The keys could not be reloaded: ${e.message}`, reloadButton(slot, before));
    return;
  }
  const now = state.secrets.get(slot.name);
  let outcome = 'Keys reloaded.';
  if (before && now !== before) {
    outcome = `Keys reloaded: ${slot.label} is new, so it was regenerated.`;
    markFresh(slot);
  } else if (before) {
    // The request may still be on its way or in progress: a second look settles it.
    outcome = `Keys reloaded: ${slot.label} is unchanged, so it has not been regenerated (reload `
      + 'again in a moment to be sure).';
  }
  notice(`${lost} ${outcome}`, reloadButton(slot, before));
}

/** Marks a slot's card as just regenerated: "New — copy it now", as after a regeneration's answer. */
function markFresh(slot) {
  state.fresh = slot.name;
  const card = document.querySelector(`.key[data-slot="${slot.name}"]`);
  if (!card || card.classList.contains('fresh')) return;
  card.classList.add('fresh');
  card.querySelector('h3').append(el('span', { class: 'badge new', text: 'New — copy it now' }));
}

// ---- Routing and start ---------------------------------------------------------------------

function route() {
  if (!state.session) return;
  showError('');
  say('');
  const hash = location.hash || '#/';
  const match = hash.match(/^#\/resource\/(.+)$/);
  if (match) {
    openResource(decodeURIComponent(match[1]));
  } else {
    openList();
  }
}

async function start() {
  $('signin-form').addEventListener('submit', signIn);
  $('sign-out').addEventListener('click', signOut);
  $('search').addEventListener('input', searchChanged);
  $('type-filter').append(...Object.entries(TYPES).map(([type, t]) =>
    el('option', { value: type, text: t.label })));
  $('type-filter').addEventListener('change', searchChanged);
  window.addEventListener('hashchange', route);
  setInterval(() => { if (state.session) sessionLeft(); }, 60000);
  try {
    const session = await api('GET', '/web/session');
    if (session && session.signedIn) {
      state.session = session;
      signedIn();
      return;
    }
    showSignIn('');
  } catch (e) {
    showSignIn(`rekeyd did not answer: ${e.message}`);
  }
}

document.addEventListener('DOMContentLoaded', start);
