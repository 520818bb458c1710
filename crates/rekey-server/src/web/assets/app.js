// Owns the Keys & Endpoint page's behaviour: sign-in, the resource list, one resource's keys with
// Show / Copy / Regenerate. It calls rekeyd's ARM API like any client, authenticated by the
// HttpOnly session cookie (the token never reaches script-readable storage), and sends the
// session's CSRF token with every write. The DOM is built with textContent only, never innerHTML,
// so no name or key can inject markup.
'use strict';

// The api-versions the page sends (ARM requires one). A Rust test checks each is served.
const VERSIONS = {
  'resources': '2022-12-01',
  'Microsoft.CognitiveServices/accounts': '2025-09-01',
  'Microsoft.Quantum/workspaces': '2025-12-15-preview',
  'Microsoft.DocumentDB/databaseAccounts': '2025-10-15',
};

// Each type's key slots as the page shows them, and where its wire bodies keep keys and endpoint.
const TYPES = {
  'Microsoft.CognitiveServices/accounts': {
    label: 'Cognitive Services account',
    endpoint: (r) => r.properties && r.properties.endpoint,
    slots: [
      { name: 'key1', label: 'Key1', field: (k) => k.key1, body: { keyName: 'Key1' } },
      { name: 'key2', label: 'Key2', field: (k) => k.key2, body: { keyName: 'Key2' } },
    ],
  },
  'Microsoft.Quantum/workspaces': {
    label: 'Quantum workspace',
    endpoint: (r) => r.properties && r.properties.endpointUri,
    slots: [
      { name: 'primary', label: 'Primary key', field: (k) => k.primaryKey && k.primaryKey.key,
        body: { keys: ['Primary'] } },
      { name: 'secondary', label: 'Secondary key', field: (k) => k.secondaryKey && k.secondaryKey.key,
        body: { keys: ['Secondary'] } },
    ],
    connectionsFromKeys: (k) => [
      { label: 'Primary connection string', value: k.primaryConnectionString },
      { label: 'Secondary connection string', value: k.secondaryConnectionString },
    ],
  },
  'Microsoft.DocumentDB/databaseAccounts': {
    label: 'Azure Cosmos DB account',
    endpoint: (r) => r.properties && r.properties.documentEndpoint,
    slots: [
      { name: 'primary', label: 'Primary key', field: (k) => k.primaryMasterKey,
        body: { keyKind: 'primary' } },
      { name: 'secondary', label: 'Secondary key', field: (k) => k.secondaryMasterKey,
        body: { keyKind: 'secondary' } },
      { name: 'primaryReadonly', label: 'Primary read-only key',
        field: (k) => k.primaryReadonlyMasterKey, body: { keyKind: 'primaryReadonly' } },
      { name: 'secondaryReadonly', label: 'Secondary read-only key',
        field: (k) => k.secondaryReadonlyMasterKey, body: { keyKind: 'secondaryReadonly' } },
    ],
    connectionsAction: 'listConnectionStrings',
  },
};

const state = {
  session: null, // { name, csrfToken, … } from GET /web/session
  resources: [], // { sub, subName, group, resource, type }
  groups: [], // { sub, subName, group }
  subs: [],
  // The open resource's secrets, kept in memory only while its view is open.
  secrets: new Map(),
  revealed: new Set(),
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

/** Calls rekeyd with the session cookie; writes carry the CSRF token. Answers the parsed body. */
async function api(method, path, body) {
  // Only this origin's own paths: the CSRF token must never travel anywhere else.
  if (!path.startsWith('/') || path.startsWith('//')) throw new ApiError(0, 'BadPath', `Not a path: ${path}`);
  const headers = { accept: 'application/json' };
  if (method !== 'GET' && method !== 'HEAD' && state.session) {
    headers['x-csrf-token'] = state.session.csrfToken;
  }
  if (body !== undefined) headers['content-type'] = 'application/json';
  const response = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    credentials: 'same-origin',
    cache: 'no-store',
  });
  const text = await response.text();
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

function say(message) {
  $('status').textContent = message;
}

function showError(message) {
  const box = $('error');
  box.textContent = message;
  box.hidden = !message;
}

function show(view) {
  for (const id of ['view-loading', 'view-signin', 'view-list', 'view-detail']) {
    $(id).hidden = id !== view;
  }
}

/** Moves focus to a view's heading, so a screen reader announces where the person now is. */
function focusHeading(id) {
  const heading = $(id);
  heading.setAttribute('tabindex', '-1');
  heading.focus();
}

// ---- Sign-in -------------------------------------------------------------------------------

function showSignIn(message) {
  state.session = null;
  forgetSecrets();
  $('who').hidden = true;
  show('view-signin');
  showError(message || '');
  $('token').focus();
}

async function signIn(event) {
  event.preventDefault();
  const input = $('token');
  const token = input.value.trim();
  // The token leaves the page's memory as soon as it is sent.
  input.value = '';
  if (!token) return;
  try {
    state.session = await api('POST', '/web/session', { token });
    showError('');
    say('Signed in.');
    signedIn();
  } catch (e) {
    showSignIn(e.status === 401 ? 'That token is not valid (unknown, expired or revoked).' : e.message);
  }
}

async function signOut() {
  try {
    await api('DELETE', '/web/session');
  } catch (e) {
    // Signed out either way: the cookie is gone or no longer names a session.
  }
  history.replaceState(null, '', '#/');
  showSignIn('');
  say('Signed out.');
}

function signedIn() {
  $('who-name').textContent = state.session.name;
  $('who').hidden = false;
  route();
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
  const perSub = await Promise.all(subs.map(async (s) => {
    const sub = s.subscriptionId;
    const [groups, ...lists] = await Promise.all([
      api('GET', `/subscriptions/${sub}/resourcegroups?api-version=${VERSIONS.resources}`)
        .then((b) => b.value, () => []),
      ...Object.keys(TYPES).map((type) => api('GET',
        `/subscriptions/${sub}/providers/${type}?api-version=${VERSIONS[type]}`)
        .then((b) => b.value, () => [])),
    ]);
    return { s, groups, resources: lists.flat() };
  }));
  state.subs = subs;
  state.groups = [];
  state.resources = [];
  for (const { s, groups, resources } of perSub) {
    for (const g of groups) {
      state.groups.push({ sub: s.subscriptionId, subName: s.displayName, group: g.name });
    }
    for (const r of resources) {
      const group = r.id.split('/')[4];
      if (!state.groups.some((g) => g.sub === s.subscriptionId
        && g.group.toLowerCase() === group.toLowerCase())) {
        state.groups.push({ sub: s.subscriptionId, subName: s.displayName, group });
      }
      state.resources.push({ sub: s.subscriptionId, subName: s.displayName, group, resource: r,
        type: typeOf(r.id) });
    }
  }
}

function matches(entry, query) {
  if (!query) return true;
  const t = TYPES[entry.type];
  const hay = [entry.resource.name, entry.type, t && t.label, entry.group, entry.subName, entry.sub,
    t && t.endpoint(entry.resource), entry.resource.location].join(' ').toLowerCase();
  return query.toLowerCase().split(/\s+/).every((word) => hay.includes(word));
}

function renderList() {
  const query = $('search').value.trim();
  const root = $('resources');
  root.replaceChildren();
  let shown = 0;
  for (const s of state.subs) {
    const groups = state.groups.filter((g) => g.sub === s.subscriptionId)
      .sort((a, b) => a.group.localeCompare(b.group));
    const section = el('section', { class: 'sub', 'aria-label': `Subscription ${s.displayName}` },
      el('h2', { text: `${s.displayName}` },
        el('span', { class: 'muted small', text: ` · subscription ${s.subscriptionId}` })));
    let any = false;
    for (const g of groups) {
      const entries = state.resources
        .filter((e) => e.sub === g.sub && e.group.toLowerCase() === g.group.toLowerCase())
        .filter((e) => matches(e, query))
        .sort((a, b) => a.resource.name.localeCompare(b.resource.name));
      if (query && entries.length === 0) continue;
      any = true;
      shown += entries.length;
      const list = el('ul', { 'aria-label': `Resources in ${g.group}` });
      for (const e of entries) {
        const t = TYPES[e.type];
        const endpoint = t ? t.endpoint(e.resource) : '';
        list.append(el('li', { class: 'resource' },
          el('a', { href: `#/resource/${encodeURIComponent(e.resource.id)}`, text: e.resource.name }),
          el('span', { class: 'type', text: t ? t.label : e.resource.type }),
          el('span', { class: 'endpoint mono', text: endpoint || '' })));
      }
      if (entries.length === 0) list.append(el('li', { class: 'muted', text: 'No resources.' }));
      section.append(el('div', { class: 'group' },
        el('h3', { text: `Resource group ${g.group}` }), list));
    }
    if (!query && groups.length === 0) {
      section.append(el('p', { class: 'muted', text: 'No resource groups you can see.' }));
      any = true;
    }
    if (any) root.append(section);
  }
  const total = state.resources.length;
  $('list-count').textContent = query
    ? `${shown} of ${total} resources match “${query}”.`
    : `${total} resources.`;
  if (state.subs.length === 0) {
    root.append(el('p', { class: 'muted', text: 'Your roles reach no subscription.' }));
  }
}

async function openList() {
  forgetSecrets();
  show('view-list');
  focusHeading('list-title');
  try {
    await loadResources();
    renderList();
  } catch (e) {
    if (e.status !== 401) showError(e.message);
  }
}

// ---- One resource's Keys & Endpoint --------------------------------------------------------

function forgetSecrets() {
  state.secrets.clear();
  state.revealed.clear();
  $('keys').replaceChildren();
  $('connections').replaceChildren();
}

function when(iso) {
  if (!iso) return el('span', { text: 'never' });
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return el('span', { text: iso });
  return el('time', { datetime: iso, text: date.toLocaleString() });
}

async function copy(value, what) {
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
  } catch (e) {
    showError(`Could not copy ${what}: the browser refused access to the clipboard.`);
  }
}

/** A masked read-only field with Show/Hide and Copy buttons, plus any extra buttons. */
function secretRow(id, label, extra) {
  const revealed = state.revealed.has(id);
  // A password field masks the value the way the browser always does, and is announced as
  // protected; Show turns it into a plain read-only text field that can be selected.
  const value = el('input', { class: 'value', id: `value-${id}`, 'data-secret': id,
    type: revealed ? 'text' : 'password', readonly: true, autocomplete: 'off',
    spellcheck: 'false', 'aria-label': `${label} value` });
  value.value = state.secrets.get(id);
  const toggle = el('button', { type: 'button', class: 'secondary', 'aria-pressed': String(revealed),
    'aria-controls': `value-${id}`, 'aria-label': `${revealed ? 'Hide' : 'Show'} ${label}`,
    text: revealed ? 'Hide' : 'Show' });
  toggle.addEventListener('click', () => {
    const now = !state.revealed.has(id);
    if (now) state.revealed.add(id); else state.revealed.delete(id);
    value.type = now ? 'text' : 'password';
    toggle.textContent = now ? 'Hide' : 'Show';
    toggle.setAttribute('aria-label', `${now ? 'Hide' : 'Show'} ${label}`);
    toggle.setAttribute('aria-pressed', String(now));
  });
  const copyButton = el('button', { type: 'button', class: 'secondary', 'aria-label': `Copy ${label}`,
    text: 'Copy' });
  copyButton.addEventListener('click', () => copy(state.secrets.get(id), label));
  return el('div', { class: 'row' }, value,
    el('div', { class: 'buttons' }, toggle, copyButton, ...(extra || [])));
}

let current = null; // { id, type, resource, rights }

async function openResource(id) {
  forgetSecrets();
  showError('');
  show('view-detail');
  const type = typeOf(id);
  const t = TYPES[type];
  $('detail-title').textContent = id.split('/').pop();
  $('facts').replaceChildren();
  $('endpoint-row').replaceChildren();
  $('no-keys').hidden = true;
  $('keys-section').hidden = true;
  focusHeading('detail-title');
  if (!t) {
    showError('rekey does not serve this resource type.');
    return;
  }
  try {
    const [resource, permissions] = await Promise.all([
      api('GET', `${id}?api-version=${VERSIONS[type]}`),
      api('GET', `/rekey/permissions?scope=${encodeURIComponent(id)}&actions=${
        ['listKeys', 'regenerateKey', 'listConnectionStrings']
          .map((a) => encodeURIComponent(`${type}/${a}/action`)).join(',')}`),
    ]);
    const can = (a) => permissions.actions[`${type}/${a}/action`] === true;
    current = { id, type, resource, rights: { list: can('listKeys'), regenerate: can('regenerateKey'),
      connections: can('listConnectionStrings') } };
    renderFacts();
    if (current.rights.list) {
      await loadKeys();
    } else {
      $('no-keys').hidden = false;
    }
  } catch (e) {
    if (e.status !== 401) showError(e.message);
  }
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
  const field = el('input', { class: 'value', id: 'endpoint', type: 'text', readonly: true,
    'aria-label': 'Endpoint' });
  field.value = endpoint;
  const copyEndpoint = el('button', { type: 'button', class: 'secondary', 'aria-label': 'Copy endpoint',
    text: 'Copy' });
  copyEndpoint.addEventListener('click', () => copy(endpoint, 'Endpoint'));
  $('endpoint-row').replaceChildren(
    field,
    el('div', { class: 'buttons' }, copyEndpoint));
}

async function loadKeys() {
  const { id, type } = current;
  const t = TYPES[type];
  const keys = await api('POST', `${id}/listKeys?api-version=${VERSIONS[type]}`);
  const created = keys['x-rekey-createdAt'] || {};
  const lastUsed = keys['x-rekey-lastUsed'] || {};
  const cards = t.slots.map((slot) => {
    state.secrets.set(slot.name, slot.field(keys) || '');
    let regenerate = null;
    if (current.rights.regenerate) {
      regenerate = el('button', { type: 'button', class: 'regenerate',
        'aria-label': `Regenerate ${slot.label}`, 'data-slot': slot.name, text: 'Regenerate' });
      regenerate.addEventListener('click', () => confirmRegenerate(slot));
    }
    return el('div', { class: 'key', role: 'group', 'aria-labelledby': `title-${slot.name}`,
      'data-slot': slot.name },
    el('h3', { id: `title-${slot.name}`, text: slot.label }),
    secretRow(slot.name, slot.label, regenerate ? [regenerate] : []),
    el('p', { class: 'meta' },
      el('span', {}, 'Created ', when(created[slot.name])),
      el('span', {}, 'Last used ', when(lastUsed[slot.name]))));
  });
  $('keys').replaceChildren(...cards);
  $('keys-title').textContent = `Keys (${t.slots.length})`;
  $('keys-section').hidden = false;

  let connections = [];
  if (t.connectionsFromKeys) connections = t.connectionsFromKeys(keys);
  if (t.connectionsAction && current.rights.connections) {
    const body = await api('POST', `${id}/${t.connectionsAction}?api-version=${VERSIONS[type]}`);
    connections = (body.connectionStrings || []).map((c) => ({ label: c.description,
      value: c.connectionString }));
  }
  const rows = connections.filter((c) => c.value).map((c, i) => {
    const key = `connection-${i}`;
    state.secrets.set(key, c.value);
    return el('div', { class: 'key', role: 'group', 'aria-labelledby': `title-${key}` },
      el('h3', { id: `title-${key}`, text: c.label }), secretRow(key, c.label));
  });
  $('connections').replaceChildren(...rows);
  $('connections-section').hidden = rows.length === 0;
}

function confirmRegenerate(slot) {
  const dialog = $('confirm');
  const name = current.resource.name;
  $('confirm-title').textContent = `Regenerate ${slot.label}?`;
  $('confirm-text').textContent = `${slot.label} of ${name} gets a new value now. Clients still `
    + `using the current ${slot.label} are refused from the moment this answers. The other keys `
    + 'do not change.';
  $('confirm-ok').textContent = `Regenerate ${slot.label}`;
  dialog.returnValue = '';
  dialog.onclose = () => {
    if (dialog.returnValue === 'regenerate') regenerate(slot);
    else document.querySelector(`button.regenerate[data-slot="${slot.name}"]`)?.focus();
  };
  dialog.showModal();
}

async function regenerate(slot) {
  const { id, type } = current;
  const button = document.querySelector(`button.regenerate[data-slot="${slot.name}"]`);
  if (button) button.disabled = true;
  say(`Regenerating ${slot.label}…`);
  try {
    // 200 (Cognitive Services), 204 (Quantum) or 202 (Cosmos DB, whose operation has already
    // finished when rekeyd answers): in every case the new key is committed, so list the keys again.
    await api('POST', `${id}/regenerateKey?api-version=${VERSIONS[type]}`, slot.body);
    // Show the new key at once (that is what the person came for), and only that one.
    state.revealed.clear();
    state.revealed.add(slot.name);
    await loadKeys();
    say(`${slot.label} regenerated. The new key is shown.`);
    document.querySelector(`button.regenerate[data-slot="${slot.name}"]`)?.focus();
  } catch (e) {
    if (button) button.disabled = false;
    say('');
    if (e.status !== 401) showError(`${slot.label} was not regenerated: ${e.message}`);
  }
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
  $('search').addEventListener('input', renderList);
  window.addEventListener('hashchange', route);
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
