// durabletask-host web dashboard: one ES module, no framework, no build step.
//
// The server answers index.html for every page route; this module routes on
// location.pathname + query string. All data goes into the DOM through textContent /
// createElement (the `h` helper), never innerHTML, so nothing from the API is ever parsed
// as markup. Every page sets document.body.dataset.loaded = "<route>" once its data is
// rendered, and dataset.shown once the first screen of it is (the same moment, except for
// a long page of instances: its rows below the first screen follow the first frame): the
// browser tests and the page-time benchmark wait on them.

const LIVE_INTERVAL_MS = 2000;
const LIVE_MAX_BACKOFF_MS = 30000;
const DEFAULT_PAGE_SIZE = '50';
const TOKEN_KEY = 'durabletask-dashboard-token';
const STATUSES = ['RUNNING', 'PENDING', 'SUSPENDED', 'COMPLETED', 'FAILED', 'TERMINATED',
  'CANCELED', 'CONTINUED_AS_NEW'];
// The instances page polls while it shows any of these: they can still change.
const ACTIVE_STATUSES = new Set(['RUNNING', 'PENDING', 'SUSPENDED']);
// The instance page polls until its instance reaches one of these.
const FINISHED = new Set(['COMPLETED', 'FAILED', 'TERMINATED', 'CANCELED']);
const LARGE_FIELDS_CHARS = 400;

// ---------------------------------------------------------------------------------------
// DOM helpers

const $ = (selector, root = document) => root.querySelector(selector);

/** createElement with attributes and children; strings become text nodes (escaped). */
function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs ?? {})) {
    if (value == null || value === false) continue;
    if (key === 'class') el.className = value;
    else if (key === 'testid') el.dataset.testid = value;
    else if (key.startsWith('on')) el.addEventListener(key.slice(2), value);
    else el.setAttribute(key, value === true ? '' : String(value));
  }
  for (const child of children.flat(Infinity)) {
    if (child == null || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
  return el;
}

const pad = (n) => String(n).padStart(2, '0');

/** "2026-12-07 01:02:03" in the viewer's local time; the UTC original is the title. */
function timeEl(iso) {
  const text = localTime(iso);
  if (!text) return iso ? h('span', {}, iso) : h('span', { class: 'muted' }, '—');
  return h('time', { datetime: iso, title: iso }, text);
}

/** The text of timeEl's <time> for `iso`, or null when it is missing or not a time. */
function localTime(iso) {
  const d = new Date(iso ?? '');
  if (!iso || Number.isNaN(d.getTime())) return null;
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ` +
    `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

const clock = (d = new Date()) => `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;

/** The API takes RFC 3339 UTC; <input type=datetime-local> speaks local time. */
function localInputToUtc(value) {
  if (!value) return '';
  const d = new Date(value); // no offset in the string: parsed as local time
  return Number.isNaN(d.getTime()) ? '' : d.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

function utcToLocalInput(iso) {
  const d = new Date(iso ?? '');
  if (!iso || Number.isNaN(d.getTime())) return '';
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T` +
    `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

const prettyJson = (value) => JSON.stringify(value, null, 2) ?? 'undefined';

/** A <pre> of pretty JSON, or "none" for a missing payload. */
function jsonBlock(value, testid) {
  if (value === null || value === undefined) return h('p', { class: 'muted', testid }, 'none');
  return h('pre', { class: 'json', testid }, prettyJson(value));
}

function badge(status) {
  return fillBadge(h('span', { testid: 'status-badge' }), status);
}

function fillBadge(element, status) {
  const known = STATUSES.includes(status) ? status : 'UNKNOWN';
  element.className = `badge status-${known.toLowerCase()}`;
  if (status != null) element.dataset.status = status;
  element.textContent = status ?? 'UNKNOWN';
  return element;
}

/** A query parameter as the API reads it (the page passes its query string on): the last
 *  value given, none if that one is empty. */
const param = (query, name) => query.getAll(name).at(-1) || null;

const instanceHref = (id) => `/instance?id=${encodeURIComponent(id)}`;
const entityHref = (id) => `/entity?id=${encodeURIComponent(id)}`;
const instanceLink = (id, testid = 'instance-link') =>
  h('a', { href: instanceHref(id), testid }, h('code', {}, id));

/** path + query from an object of key → string | string[]; empty values are left out. */
function withQuery(path, params) {
  const q = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    for (const v of [].concat(value ?? [])) if (v !== '' && v != null) q.append(key, v);
  }
  const s = q.toString();
  return s ? `${path}?${s}` : path;
}

function section(title, testid, ...children) {
  return h('section', { class: 'card', testid }, h('h2', {}, title), ...children);
}

function definitionList(rows) {
  return h('dl', { class: 'facts' }, rows.filter(Boolean).map(([term, value, testid]) =>
    [h('dt', {}, term), h('dd', { testid }, value)]));
}

// ---------------------------------------------------------------------------------------
// API access: bearer token, JSON both ways, errors as ApiError with the backend's message.

class ApiError extends Error {
  constructor(status, message, data) {
    super(message);
    this.status = status;
    this.data = data;
  }
}

let tokenPrompt = null; // one shared prompt however many requests got a 401

// The answers the server sent with the page for its first view (first_view.rs), by the
// path read: the first view takes them instead of asking, each once; later views ask.
const firstView = takeFirstView();

function takeFirstView() {
  const element = document.getElementById('first-view');
  if (!element) return new Map();
  element.remove();
  try {
    return new Map(Object.entries(JSON.parse(element.textContent)));
  } catch {
    return new Map(); // the page then asks for them
  }
}

async function api(path, { method = 'GET', body, signal } = {}) {
  if (method === 'GET' && firstView.has(path)) {
    const data = firstView.get(path);
    firstView.delete(path);
    return data;
  }
  const headers = { Accept: 'application/json' };
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (token) headers.Authorization = `Bearer ${token}`;
  const init = { method, headers, signal };
  if (method !== 'GET') {
    // The server refuses any other type (its CSRF guard), and wants a body even if empty.
    headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body ?? {});
  }
  const response = await fetch(path, init);
  const text = await response.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = null; }
  if (response.status === 401 && data?.token_required) {
    await askForToken(data.error, Boolean(token));
    return api(path, { method, body, signal });
  }
  if (!response.ok) {
    const message = data?.error ?? (text.trim() || `${response.status} ${response.statusText}`);
    throw new ApiError(response.status, message, data);
  }
  return data;
}

/** Shows the token form and resolves once the user gave a token (kept in sessionStorage). */
function askForToken(reason, hadToken) {
  if (tokenPrompt) return tokenPrompt;
  const sectionEl = $('#token-section');
  const form = $('#token-form');
  $('#token-reason').textContent =
    (hadToken ? 'The token was refused. ' : '') + (reason ?? 'The API needs a bearer token.');
  sectionEl.hidden = false;
  $('#token-input').focus();
  tokenPrompt = new Promise((resolve) => {
    form.addEventListener('submit', function onSubmit(event) {
      event.preventDefault();
      const value = $('#token-input').value.trim();
      if (!value) return;
      sessionStorage.setItem(TOKEN_KEY, value);
      form.removeEventListener('submit', onSubmit);
      form.reset();
      sectionEl.hidden = true;
      tokenPrompt = null;
      resolve();
    });
  });
  return tokenPrompt;
}

/** `#token=<t>` on first load: keep it like a typed token, then drop it from the URL. */
function takeTokenFromFragment() {
  const match = /^#token=(.+)$/.exec(location.hash);
  if (!match) return;
  let token = match[1];
  // A stray "%" (a token pasted unencoded) must not stop the page from booting.
  try { token = decodeURIComponent(token); } catch { /* not percent-encoded: keep it as is */ }
  sessionStorage.setItem(TOKEN_KEY, token);
  history.replaceState(history.state, '', location.pathname + location.search);
}

// The overview feeds the counts, the name datalist, the Start form and the header.
let lastOverview = null;
async function loadOverview(signal) {
  const overview = await api('/api/overview', { signal });
  lastOverview = overview;
  $('#host-info').textContent =
    [overview.version && `v${overview.version}`, overview.backend].filter(Boolean).join(' · ');
  return overview;
}

// ---------------------------------------------------------------------------------------
// Views and live refresh

/** One rendering of one route; disposing it stops its timers and in-flight requests. */
class View {
  constructor(route) {
    this.route = route;
    // A page reads the API route of its own name with this query string (so the server
    // knows what to send with the page: first_view.rs).
    this.search = location.search;
    this.alive = true;
    this.controller = new AbortController();
    this.signal = this.controller.signal;
    this.disposers = [];
    this.deferred = [];
    this.live = null;
  }

  dispose() {
    this.alive = false;
    this.controller.abort();
    for (const fn of this.disposers) fn();
    this.runAfterLoaded();
  }

  /** The first screen of this view's data is in the page (loaded() says so too). */
  shown() {
    if (this.alive) document.body.dataset.shown = this.route;
  }

  /** All of this view's data is in the page. */
  loaded() {
    if (!this.alive) return;
    this.shown();
    document.body.dataset.loaded = this.route;
    this.runAfterLoaded();
  }

  /** Runs `fn` once this view's data is in the page (or it is left before): for requests
   *  the page can wait for, so they do not compete with the ones it shows first. */
  afterLoaded(fn) { this.deferred.push(fn); }

  runAfterLoaded() {
    for (const fn of this.deferred.splice(0)) fn();
  }
}

let livePaused = false; // the user's choice holds across pages

/**
 * Re-runs `refresh` every 2 s while the page is visible, not paused, and `refresh` said
 * there is something that can still change (it returns true). Errors double the delay up
 * to 30 s. A request is never started while the previous one is still out.
 */
class Live {
  constructor(view, refresh, idleText = 'Nothing running: not refreshing') {
    this.view = view;
    this.refresh = refresh;
    this.idleText = idleText;
    this.delay = LIVE_INTERVAL_MS;
    this.timer = null;
    this.inFlight = false;
    this.again = false;
    this.active = false;
    this.failing = false;
    view.live = this;
    view.disposers.push(() => clearTimeout(this.timer));
    this.stateEl = h('span', { class: 'live-state', testid: 'live-state' });
    this.updatedEl = h('span', { testid: 'live-updated' });
    this.errorEl = h('span', { class: 'live-error', testid: 'live-error' });
    this.button = h('button', { type: 'button', testid: 'live-toggle', onclick: () => this.toggle() });
    this.element = h('div', { class: 'live', role: 'group', 'aria-label': 'Live refresh' },
      this.stateEl, this.updatedEl, this.errorEl, this.button);
  }

  /** After the page's first render: stamp it and poll if there is something to watch. */
  start(active) {
    this.active = active;
    this.stamp();
    this.show();
    this.schedule();
  }

  stamp() { this.updatedEl.textContent = `updated ${clock()}`; }

  show() {
    const hidden = document.visibilityState !== 'visible';
    this.stateEl.textContent = livePaused ? 'Live refresh paused'
      : this.failing ? 'Live refresh failing'
      : !this.active ? this.idleText
      : hidden ? 'Live refresh waits while the page is hidden' : 'Live';
    this.stateEl.dataset.state = livePaused ? 'paused' : this.active ? 'live' : 'idle';
    this.button.textContent = livePaused ? 'Resume live refresh' : 'Pause live refresh';
    this.button.setAttribute('aria-pressed', String(livePaused));
  }

  schedule() {
    clearTimeout(this.timer);
    this.timer = null;
    const wanted = this.active || this.failing;
    if (!this.view.alive || livePaused || !wanted || document.visibilityState !== 'visible') return;
    this.timer = setTimeout(() => this.tick(), this.delay);
  }

  async tick() {
    if (!this.view.alive) return;
    if (this.inFlight) { this.again = true; return; } // no overlapping requests
    clearTimeout(this.timer);
    this.inFlight = true;
    try {
      this.active = await this.refresh();
      this.failing = false;
      this.delay = LIVE_INTERVAL_MS;
      this.errorEl.textContent = '';
      this.stamp();
    } catch (error) {
      if (!this.view.alive || error.name === 'AbortError') return;
      this.failing = true;
      this.delay = Math.min(this.delay * 2, LIVE_MAX_BACKOFF_MS);
      this.errorEl.textContent = `refresh failed: ${error.message}; retrying in ${this.delay / 1000} s`;
    } finally {
      this.inFlight = false;
    }
    if (!this.view.alive) return;
    this.show();
    if (this.again) { this.again = false; this.tick(); } else this.schedule();
  }

  /** Refresh now (after an action changed something), whatever the pause says. */
  kick() { this.delay = LIVE_INTERVAL_MS; this.tick(); }

  toggle() {
    livePaused = !livePaused;
    this.show();
    if (livePaused) clearTimeout(this.timer); else this.tick();
  }

  visibilityChanged() {
    this.show();
    // Back in view: catch up at once instead of waiting a whole interval.
    if (document.visibilityState === 'visible' && !livePaused && (this.active || this.failing)) this.tick();
    else clearTimeout(this.timer);
  }
}

// ---------------------------------------------------------------------------------------
// Confirmation dialog: names the action and its target, holds the action's inputs.

/**
 * fields: [{name, label, kind: 'text'|'json'|'checkbox'|'summary', value, required, hint}]
 * Resolves to {name: value} on Confirm (json fields parsed, undefined when left empty),
 * or null on Cancel / Escape. Invalid input keeps the dialog open with the error shown.
 */
function confirmDialog({ title, target, fields = [], confirmLabel = 'Confirm', danger = false }) {
  const dialog = $('#confirm-dialog');
  const form = $('#confirm-form');
  const okButton = $('#confirm-ok');
  $('#confirm-title').textContent = title;
  $('#confirm-target').replaceChildren(...[target].flat(Infinity).filter((x) => x != null && x !== ''));
  okButton.textContent = confirmLabel;
  okButton.classList.toggle('danger', danger);
  const inputs = fields.map(dialogField);
  $('#confirm-fields').replaceChildren(...inputs.map((f) => f.wrapper));

  return new Promise((resolve) => {
    const finish = (result) => {
      form.removeEventListener('submit', onSubmit);
      dialog.removeEventListener('close', onClose);
      $('#confirm-cancel').removeEventListener('click', onCancel);
      if (dialog.open) dialog.close();
      resolve(result);
    };
    const onSubmit = (event) => {
      event.preventDefault();
      const values = {};
      let ok = true;
      for (const field of inputs) {
        const read = field.read();
        if (read.error) {
          if (ok) field.input.focus();
          ok = false;
        } else if (field.spec.kind !== 'summary') values[field.spec.name] = read.value;
      }
      if (ok) finish(values);
    };
    const onClose = () => finish(null); // Escape closes the dialog itself
    const onCancel = () => finish(null);
    form.addEventListener('submit', onSubmit);
    dialog.addEventListener('close', onClose);
    $('#confirm-cancel').addEventListener('click', onCancel);
    dialog.showModal(); // modal: focus is trapped inside until it closes
  });
}

function dialogField(spec) {
  const id = `dialog-${spec.name}`;
  const errorEl = h('p', { id: `${id}-error`, class: 'field-error', testid: `${id}-error`, 'aria-live': 'polite' });
  const hint = spec.hint ? h('p', { id: `${id}-hint`, class: 'hint' }, spec.hint) : null;
  const describedBy = [hint && `${id}-hint`, `${id}-error`].filter(Boolean).join(' ');
  let input;
  if (spec.kind === 'checkbox') {
    input = h('input', { type: 'checkbox', id, testid: id, checked: Boolean(spec.value) });
    const wrapper = h('div', { class: 'field check' }, input, h('label', { for: id }, spec.label), hint);
    return { spec, input, wrapper, read: () => ({ value: input.checked }) };
  }
  if (spec.kind === 'summary') {
    input = h('pre', { id, class: 'json', testid: id }, spec.value);
    const wrapper = h('div', { class: 'field wide' }, h('p', { class: 'label' }, spec.label), input);
    return { spec, input, wrapper, read: () => ({}) };
  }
  input = spec.kind === 'json'
    ? h('textarea', { id, testid: id, rows: 4, spellcheck: 'false', 'aria-describedby': describedBy })
    : h('input', { id, testid: id, autocomplete: 'off', 'aria-describedby': describedBy });
  input.value = spec.value ?? '';
  const wrapper = h('div', { class: 'field wide' }, h('label', { for: id }, spec.label), input, hint, errorEl);
  const read = () => {
    const raw = input.value.trim();
    let result = { value: raw };
    if (spec.required && !raw) result = { error: `${spec.label} is required.` };
    else if (spec.kind === 'json') result = parseJsonField(raw);
    setFieldError(input, errorEl, result.error);
    return result;
  };
  return { spec, input, wrapper, read };
}

/** JSON.parse of a form field: undefined when empty, or the parse error to show. */
function parseJsonField(raw) {
  if (!raw.trim()) return { value: undefined };
  try {
    return { value: JSON.parse(raw) };
  } catch (error) {
    return { error: `Not valid JSON: ${error.message}` };
  }
}

function setFieldError(input, errorEl, message) {
  errorEl.textContent = message ?? '';
  if (message) input.setAttribute('aria-invalid', 'true');
  else input.removeAttribute('aria-invalid');
}

/** The role=status region where an action shows the backend's answer. */
function actionResultRegion() {
  return h('div', { class: 'action-result', role: 'status', 'aria-live': 'polite', testid: 'action-result' });
}

function showResult(region, outcome, ...content) {
  region.dataset.outcome = outcome;
  // Counts answers, so a test (or a user) can tell a new answer from an identical old one.
  if (outcome !== 'pending') region.dataset.seq = String(Number(region.dataset.seq ?? 0) + 1);
  region.replaceChildren(...content.filter((c) => c != null));
}

/** Runs a confirmed action: POST, then shows the backend's answer (or error) in `region`. */
async function runAction(region, label, path, body) {
  showResult(region, 'pending', `${label}: sending…`);
  try {
    const answer = await api(path, { method: 'POST', body });
    // A "note" is the backend saying the action changed nothing (e.g. already finished).
    showResult(region, 'ok', h('strong', {}, `${label}: done.`), ' ',
      typeof answer?.note === 'string' ? h('span', { testid: 'action-note' }, `${answer.note}. `) : null,
      h('code', { testid: 'action-answer' }, JSON.stringify(answer)));
    return answer;
  } catch (error) {
    showResult(region, 'error', h('strong', {}, `${label} failed:`), ' ',
      h('span', { testid: 'action-error' }, error.message));
    return null;
  }
}

// ---------------------------------------------------------------------------------------
// Page scaffolding

function pageError(error) {
  return h('p', { class: 'error', role: 'alert', testid: 'page-error' }, `Could not load this page: ${error.message}`);
}

function pager(path, params, nextCursor) {
  const first = params.cursor ? h('a', { href: withQuery(path, { ...params, cursor: '' }), testid: 'first-page' }, 'First page') : null;
  const next = nextCursor ? h('a', { href: withQuery(path, { ...params, cursor: nextCursor }), testid: 'next-page', rel: 'next' }, 'Next page') : null;
  return h('nav', { class: 'pager', 'aria-label': 'Pages' }, first, next,
    !next ? h('span', { class: 'muted', testid: 'last-page' }, 'No more pages') : null);
}

// ---------------------------------------------------------------------------------------
// Instances page

function instanceFilters(query) {
  return {
    status: query.getAll('status'),
    name: param(query, 'name') ?? '',
    prefix: param(query, 'prefix') ?? '',
    created_from: param(query, 'created_from') ?? '',
    created_to: param(query, 'created_to') ?? '',
    page_size: param(query, 'page_size') ?? '',
    cursor: param(query, 'cursor') ?? '',
  };
}

async function instancesPage(view, query) {
  const filters = instanceFilters(query);
  const countsSlot = h('div', { class: 'counts-slot' });
  const listSlot = h('div', { class: 'list-slot' });
  const formSlot = h('div');
  let lastKey = '';
  let rowsRendered = Promise.resolve();

  const refresh = async () => {
    const [overview, list] = await Promise.all([
      loadOverview(view.signal),
      api(`/api/instances${view.search}`, { signal: view.signal }),
    ]);
    if (!view.alive) return false;
    if (!formSlot.firstChild) formSlot.append(instanceFilterForm(filters, overview));
    // Re-render only what changed, so a refresh does not steal focus or scroll.
    const key = JSON.stringify([overview.counts, list]);
    if (key !== lastKey) {
      // The first rendering shows a screenful of rows with its first frame and the rest
      // after it (500 rows took Chromium ~150 ms to lay out on the bench's machine); a
      // refresh renders all rows at once, so a page scrolled down keeps its place.
      const firstScreen = lastKey === '' ? firstScreenRows() : Infinity;
      lastKey = key;
      countsSlot.replaceChildren(countsList(overview, filters.status));
      const note = list.scan_limited ? [scanNote(list)] : [];
      const { table, rest } = instanceTable(list, firstScreen);
      rowsRendered = rest;
      listSlot.replaceChildren(table, ...note, pager('/instances', filters, list.next_cursor));
    }
    const countsActive = [...ACTIVE_STATUSES].some((s) => (overview.counts?.[s] ?? 0) > 0);
    return countsActive || list.instances.some((i) => ACTIVE_STATUSES.has(i.status));
  };

  const live = new Live(view, refresh);
  main().append(h('h1', {}, 'Instances'), live.element, countsSlot, formSlot, listSlot);
  try {
    live.start(await refresh());
    view.shown();
    await rowsRendered;
  } catch (error) {
    if (!view.alive || error.name === 'AbortError') return;
    // Keep the form, so a filter the backend refused (say page_size=0) can be fixed here.
    if (!formSlot.firstChild) formSlot.append(instanceFilterForm(filters, lastOverview ?? {}));
    listSlot.replaceChildren(pageError(error));
  }
  view.loaded();
}

function countsList(overview, selected) {
  const counts = overview.counts ?? {};
  const names = [...STATUSES, ...Object.keys(counts).filter((s) => !STATUSES.includes(s))];
  const shown = (n) => {
    if (overview.counts_exact !== false) return String(n);
    const cap = overview.counts_cap;
    return cap == null ? `${n}+` : n >= cap ? `${cap}+` : String(n);
  };
  return h('ul', { class: 'counts', testid: 'counts', 'aria-label': 'Instances by status' },
    names.map((status) => h('li', {},
      h('a', { href: withQuery('/instances', { status }), testid: `count-${status}`, 'data-status': status,
        'aria-current': selected.length === 1 && selected[0] === status ? 'true' : null },
      badge(status), ' ', h('span', { class: 'count', testid: 'count-value' }, shown(counts[status] ?? 0))))));
}

function instanceFilterForm(filters, overview) {
  const statusBoxes = STATUSES.map((status) => h('span', { class: 'check' },
    h('input', { type: 'checkbox', id: `f-status-${status}`, name: 'status', value: status,
      checked: filters.status.includes(status), testid: `filter-status-${status}` }),
    h('label', { for: `f-status-${status}` }, status)));
  const text = (id, label, name, value, extra = {}) => h('div', { class: 'field' },
    h('label', { for: id }, label), h('input', { id, name, value, autocomplete: 'off', testid: id, ...extra }));
  const form = h('form', { class: 'filters', role: 'search', 'aria-label': 'Filter instances', testid: 'filter-form' },
    h('fieldset', { class: 'statuses' }, h('legend', {}, 'Status'), statusBoxes),
    text('f-name', 'Name', 'name', filters.name, { list: 'orchestrator-names' }),
    h('datalist', { id: 'orchestrator-names' }, (overview.orchestrators ?? []).map((n) => h('option', { value: n }))),
    text('f-prefix', 'Instance ID prefix', 'prefix', filters.prefix),
    text('f-from', 'Created from (local time)', 'created_from', utcToLocalInput(filters.created_from), { type: 'datetime-local', step: 1 }),
    text('f-to', 'Created to (local time)', 'created_to', utcToLocalInput(filters.created_to), { type: 'datetime-local', step: 1 }),
    text('f-page-size', 'Page size', 'page_size', filters.page_size || DEFAULT_PAGE_SIZE, { type: 'number', min: 1, max: 500 }),
    h('div', { class: 'buttons' },
      h('button', { type: 'submit', class: 'primary', testid: 'filter-apply' }, 'Apply filters'),
      h('a', { href: '/instances', testid: 'filter-clear' }, 'Clear filters')));
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const data = new FormData(form);
    const pageSize = String(data.get('page_size') ?? '').trim();
    // A new filter starts from the first page: no cursor.
    navigate(withQuery('/instances', {
      status: data.getAll('status'),
      name: String(data.get('name') ?? '').trim(),
      prefix: String(data.get('prefix') ?? '').trim(),
      created_from: localInputToUtc(data.get('created_from')),
      created_to: localInputToUtc(data.get('created_to')),
      page_size: pageSize === DEFAULT_PAGE_SIZE ? '' : pageSize,
    }));
  });
  return form;
}

/**
 * The instances table with its first `firstScreen` rows; `rest` resolves once the others
 * are in it too, appended after the next frame is painted (at once when the page is not
 * visible, since a hidden page paints no frame).
 */
function instanceTable(list, firstScreen) {
  if (!list.instances.length) {
    return { table: h('p', { class: 'empty', testid: 'no-rows' }, 'No instances match.'), rest: Promise.resolve() };
  }
  const head = ['Instance ID', 'Name', 'Status', 'Created', 'Last updated'];
  const now = document.visibilityState === 'visible' ? firstScreen : Infinity;
  const body = h('tbody', {}, list.instances.slice(0, now).map(instanceRow));
  const deferred = list.instances.slice(now);
  const table = h('table', { testid: 'instances-table' },
    h('thead', {}, h('tr', {}, head.map((t) => h('th', { scope: 'col' }, t)))), body);
  const rest = deferred.length
    ? afterNextPaint().then(() => body.append(...deferred.map(instanceRow)))
    : Promise.resolve();
  return { table, rest };
}

/** Rows enough to fill the screen below the page's header, counts and filters (more than
 *  300 px): a row is at least 30 px tall. (The screen, not the window: reading
 *  window.innerHeight would make Chromium lay out the page there, before the rows are in.) */
function firstScreenRows() {
  return Math.max(10, Math.ceil((window.screen.height - 300) / 30));
}

/** Resolves once the next frame has been painted and the page is idle (200 ms at most),
 *  or on the next task where the browser has no idle callbacks. */
function afterNextPaint() {
  return new Promise((resolve) => requestAnimationFrame(() => {
    if (window.requestIdleCallback) requestIdleCallback(() => resolve(), { timeout: 200 });
    else setTimeout(resolve, 0);
  }));
}

// A page lists up to 500 instances: each row is a copy of this one, filled in (a fresh
// load of 500 rows took ~20 ms less than with each row's elements built one by one).
const INSTANCE_ROW = h('tr', { testid: 'instance-row' },
  h('th', { scope: 'row' }, h('a', { testid: 'instance-link' }, h('code'))),
  h('td', { testid: 'instance-name' }),
  h('td', {}, h('span', { testid: 'status-badge' })),
  h('td', {}, h('time')),
  h('td', {}, h('time')));

function instanceRow(i) {
  const row = INSTANCE_ROW.cloneNode(true);
  row.dataset.id = i.instance_id;
  const [idCell, nameCell, statusCell, createdCell, updatedCell] = row.children;
  idCell.firstChild.href = instanceHref(i.instance_id);
  idCell.firstChild.firstChild.textContent = i.instance_id;
  nameCell.textContent = i.name;
  fillBadge(statusCell.firstChild, i.status);
  fillTime(createdCell, i.created_at);
  fillTime(updatedCell, i.last_updated_at);
  return row;
}

/** Fills the <time> of a cell copied from INSTANCE_ROW, as timeEl would render `iso`. */
function fillTime(cell, iso) {
  const text = localTime(iso);
  if (!text) {
    cell.replaceChildren(timeEl(iso));
    return;
  }
  const time = cell.firstChild;
  time.dateTime = iso;
  time.title = iso;
  time.textContent = text;
}

function scanNote(list) {
  return h('p', { class: 'note', testid: 'scan-limited' },
    `Scanned ${list.scanned} instances, more may match: use Next page to keep looking.`);
}

// ---------------------------------------------------------------------------------------
// Instance page

async function instancePage(view, query) {
  const id = param(query, 'id');
  if (!id) {
    main().append(h('h1', {}, 'Instance'), h('p', { class: 'error', role: 'alert' }, 'No instance id in the address (?id=…).'));
    return view.loaded();
  }
  const facts = h('div', { class: 'instance-summary' });
  const payloads = h('div');
  const timeline = h('div');
  const result = actionResultRegion();
  let lastKey = '';
  let lastHistoryKey = '';

  const refresh = async () => {
    // The server reads the state, then the history: the history is then at least as new
    // as the state, so the last refresh (the one that sees it finished) also shows the
    // final events.
    const { state, history } = await api(`/api/instance${view.search}`, { signal: view.signal });
    if (!view.alive) return false;
    const events = history?.events ?? [];
    const key = JSON.stringify(state);
    const historyKey = JSON.stringify(events);
    if (key !== lastKey || historyKey !== lastHistoryKey) {
      lastKey = key;
      facts.replaceChildren(...instanceFacts(state, events));
      payloads.replaceChildren(...instancePayloads(state));
    }
    if (historyKey !== lastHistoryKey) {
      lastHistoryKey = historyKey;
      timeline.replaceChildren(historyTimeline(events, id));
    }
    return !FINISHED.has(state.status);
  };

  const live = new Live(view, refresh, 'Finished: not refreshing');
  const heading = h('h1', {}, 'Instance ', h('code', { testid: 'instance-id' }, id));
  main().append(heading, facts, live.element, instanceActions(view, id, result), result, payloads, timeline);
  try {
    live.start(await refresh());
  } catch (error) {
    if (!view.alive) return;
    const gone = error instanceof ApiError && error.status === 404;
    main().replaceChildren(heading, gone
      ? h('p', { class: 'note', testid: 'not-found' }, `Instance ${id} does not exist (it may have been purged).`)
      : pageError(error));
  }
  view.loaded();
}

function instanceFacts(state, events) {
  const started = events.find((e) => e.kind === 'executionStarted');
  const parentId = state.parent_instance_id ?? started?.parentInstance?.orchestrationInstance?.instanceId;
  const children = events.filter((e) => e.kind === 'subOrchestrationInstanceCreated' && e.instanceId);
  const parts = [
    h('p', { class: 'status-line', testid: 'instance-status' }, 'Status: ', badge(state.status)),
    definitionList([
      ['Name', state.name, 'instance-name'],
      ['Version', state.version || '—', 'instance-version'],
      ['Created', timeEl(state.created_at)],
      ['Last updated', timeEl(state.last_updated_at)],
      parentId && ['Parent', instanceLink(parentId, 'parent-link')],
    ]),
  ];
  if (children.length) {
    parts.push(section('Sub-orchestrations', 'sub-orchestrations', h('ul', {}, children.map((e) =>
      h('li', {}, instanceLink(e.instanceId, 'sub-orchestration-link'), ' ', e.name ?? '')))));
  }
  return parts;
}

function instancePayloads(state) {
  return [
    state.failure_details ? section('Failure', 'failure', failureChain(state.failure_details)) : null,
    h('div', { class: 'payloads' },
      section('Input', null, jsonBlock(state.input, 'instance-input')),
      section('Output', null, jsonBlock(state.output, 'instance-output')),
      section('Custom status', null, jsonBlock(state.custom_status, 'instance-custom-status'))),
  ].filter(Boolean);
}

/** The failure and each inner failure, outermost first. */
function failureChain(failure) {
  const levels = [];
  for (let f = failure; f && levels.length < 50; f = f.inner_failure) levels.push(f);
  return h('ol', { class: 'failure-chain' }, levels.map((f, depth) => h('li', { testid: 'failure-level' },
    h('p', {}, depth ? h('span', { class: 'muted' }, 'caused by ') : null,
      h('strong', { testid: 'failure-type' }, f.error_type ?? '(no type)'),
      f.is_non_retriable ? h('span', { class: 'tag' }, 'non-retriable') : null),
    h('p', { class: 'failure-message', testid: 'failure-message' }, f.message ?? ''),
    f.stack_trace ? h('details', {}, h('summary', {}, 'Stack trace'), h('pre', {}, f.stack_trace)) : null)));
}

function historyTimeline(events, selfId) {
  return section(`History (${events.length} events)`, null,
    h('ol', { class: 'timeline', testid: 'history' }, events.map((e) => historyEvent(e, selfId))));
}

/** One event: kind, name, id, time, links to the instances it names, its fields as JSON. */
function historyEvent(event, selfId) {
  const { event_id: eventId, timestamp, kind, ...fields } = event;
  const linked = [fields.instanceId, fields.parentInstance?.orchestrationInstance?.instanceId]
    .filter((x) => typeof x === 'string' && x && x !== selfId);
  // Small field sets stay on one line, like a log; large ones are pretty and folded.
  const compact = Object.keys(fields).length ? JSON.stringify(fields) : '';
  const text = compact.length > 120 ? prettyJson(fields) : compact;
  const pre = text ? h('pre', { class: 'json', testid: 'event-fields' }, text) : null;
  const large = text.length > LARGE_FIELDS_CHARS || text.split('\n').length > 15;
  return h('li', { class: 'event', testid: 'history-event', 'data-kind': kind },
    h('div', { class: 'event-head' },
      h('span', { class: 'event-kind', testid: 'event-kind' }, kind),
      typeof fields.name === 'string' ? h('span', { class: 'event-name', testid: 'event-name' }, fields.name) : null,
      h('span', { class: 'muted' }, `#${eventId}`),
      timeEl(timestamp)),
    linked.map((lid) => h('p', { class: 'event-link' }, 'instance ', instanceLink(lid, 'event-instance-link'))),
    large ? h('details', {}, h('summary', {}, `fields (${text.length} characters)`), pre) : pre);
}

/** The action buttons; each opens the confirmation dialog, then POSTs. */
function instanceActions(view, id, result) {
  const target = ['on instance ', h('code', {}, id)];
  const after = () => view.live?.kick(); // show the new state at once
  const q = `?id=${encodeURIComponent(id)}`;
  const reasonField = { name: 'reason', label: 'Reason', kind: 'text' };
  const actions = [
    ['raise-event', 'Raise event', [{ name: 'event-name', label: 'Event name', kind: 'text', required: true },
      { name: 'data', label: 'Event data (JSON, optional)', kind: 'json' }],
    (v) => ({ path: '/api/raise-event', body: { name: v['event-name'], data: v.data } })],
    ['suspend', 'Suspend', [reasonField], (v) => ({ path: '/api/suspend', body: { reason: v.reason || undefined } })],
    ['resume', 'Resume', [reasonField], (v) => ({ path: '/api/resume', body: { reason: v.reason || undefined } })],
    ['terminate', 'Terminate', [{ name: 'reason', label: 'Reason (JSON, optional; becomes the output)', kind: 'json',
      hint: 'For example "cancelled by operator" (with the quotes).' },
    { name: 'recursive', label: 'Also terminate its sub-orchestrations (recursive)', kind: 'checkbox' }],
    (v) => ({ path: '/api/terminate', body: { reason: v.reason, recursive: v.recursive } })],
    ['rewind', 'Rewind', [reasonField], (v) => ({ path: '/api/rewind', body: { reason: v.reason || undefined } })],
    ['restart', 'Restart', [{ name: 'new-id', label: 'Restart under a new instance id', kind: 'checkbox' }],
      (v) => ({ path: '/api/restart', body: { new_instance_id: v['new-id'] } })],
    ['purge', 'Purge', [], () => ({ path: '/api/purge', body: {} })],
  ];
  const danger = new Set(['terminate', 'purge']);
  const buttons = actions.map(([key, label, fields, request]) => h('button', {
    type: 'button', testid: `action-${key}`, class: danger.has(key) ? 'danger' : null,
    onclick: async () => {
      const values = await confirmDialog({ title: `${label}?`, target, fields, confirmLabel: label, danger: danger.has(key) });
      if (!values || !view.alive) return;
      const { path, body } = request(values);
      const answer = await runAction(result, label, path + q, body);
      if (!answer || !view.alive) return;
      if (key === 'purge') return showPurged(view, id, result);
      if (key === 'restart' && answer.instance_id && answer.instance_id !== id) {
        result.append(' ', h('a', { href: instanceHref(answer.instance_id), testid: 'restarted-link' },
          `Open the restarted instance ${answer.instance_id}`));
        return;
      }
      after();
    },
  }, label));
  return h('div', { class: 'actions', role: 'toolbar', 'aria-label': 'Actions' }, buttons);
}

function showPurged(view, id, result) {
  view.dispose(); // nothing left to refresh
  main().replaceChildren(h('h1', {}, 'Instance ', h('code', { testid: 'instance-id' }, id)), result,
    h('p', { class: 'note', testid: 'gone' }, `Instance ${id} was purged: it is gone.`),
    h('p', {}, h('a', { href: '/instances' }, 'Back to the instances')));
}

// ---------------------------------------------------------------------------------------
// Start an orchestration (the header's Start button opens the form)

function setUpStartForm() {
  const sectionEl = $('#start');
  const openButton = $('#start-open');
  const form = $('#start-form');
  const setOpen = (open) => {
    sectionEl.hidden = !open;
    openButton.setAttribute('aria-expanded', String(open));
    if (open) { fillStartNames(); $('#start-name').focus(); }
  };
  openButton.addEventListener('click', () => setOpen(sectionEl.hidden));
  $('#start-close').addEventListener('click', () => { setOpen(false); openButton.focus(); });
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const result = $('#start-result');
    const inputEl = $('#start-input');
    const parsed = parseJsonField(inputEl.value);
    // Checked before anything is sent: a typo never reaches the backend.
    setFieldError(inputEl, $('#start-input-error'), parsed.error);
    if (parsed.error) { inputEl.focus(); return; }
    const name = $('#start-name').value.trim();
    if (!name) { showResult(result, 'error', 'Choose an orchestrator name.'); return; }
    const body = { name };
    if (parsed.value !== undefined) body.input = parsed.value;
    const version = $('#start-version').value.trim();
    const instanceId = $('#start-id').value.trim();
    if (version) body.version = version;
    if (instanceId) body.instance_id = instanceId;
    const ok = await confirmDialog({
      title: 'Start orchestration?',
      target: ['Start ', h('code', {}, name), instanceId ? [' as ', h('code', {}, instanceId)] : ''],
      fields: [{ name: 'summary', label: 'Request', kind: 'summary', value: prettyJson(body) }],
      confirmLabel: 'Start',
    });
    if (!ok) return;
    const answer = await runAction(result, `Start ${name}`, '/api/instances', body);
    if (answer?.instance_id) {
      setOpen(false);
      navigate(instanceHref(answer.instance_id), { focus: true });
    }
  });
}

/** Name field: a <select> of the loaded orchestrators, or free text on a backend-only host. */
async function fillStartNames() {
  let overview = lastOverview;
  try { overview ??= await loadOverview(); } catch { overview = null; }
  const current = $('#start-name');
  const keep = current.value;
  const freeText = !overview || overview.plugins_loaded === false || !(overview.orchestrators ?? []).length;
  const replacement = freeText
    ? h('input', { id: 'start-name', name: 'name', required: true, autocomplete: 'off', testid: 'start-name' })
    : h('select', { id: 'start-name', name: 'name', required: true, testid: 'start-name' },
      overview.orchestrators.map((n) => h('option', { value: n }, n)));
  if (keep) replacement.value = keep;
  $('#start-version').placeholder = overview?.default_version ? `default: ${overview.default_version}` : '';
  const hadFocus = document.activeElement === current;
  current.replaceWith(replacement);
  if (hadFocus) replacement.focus();
}

// ---------------------------------------------------------------------------------------
// Entities

async function entitiesPage(view, query) {
  const params = { prefix: param(query, 'prefix') ?? '', page_size: param(query, 'page_size') ?? '', cursor: param(query, 'cursor') ?? '' };
  main().append(h('h1', {}, 'Entities'), entityFilterForm(params));
  let list;
  try {
    list = await api(`/api/entities${view.search}`, { signal: view.signal });
  } catch (error) {
    if (view.alive) { main().append(pageError(error)); view.loaded(); }
    return;
  }
  if (!view.alive) return;
  main().append(entityTable(list.entities ?? []), pager('/entities', params, list.next_cursor));
  view.loaded();
}

function entityFilterForm(params) {
  const names = lastOverview?.entities ?? [];
  const form = h('form', { class: 'filters', role: 'search', 'aria-label': 'Filter entities', testid: 'entity-filter-form' },
    h('div', { class: 'field' }, h('label', { for: 'e-prefix' }, 'Entity ID prefix'),
      h('input', { id: 'e-prefix', name: 'prefix', value: params.prefix, list: 'entity-names', autocomplete: 'off',
        placeholder: '@account@', testid: 'e-prefix' })),
    h('datalist', { id: 'entity-names' }, names.map((n) => h('option', { value: `@${n}@` }))),
    h('div', { class: 'field' }, h('label', { for: 'e-page-size' }, 'Page size'),
      h('input', { id: 'e-page-size', name: 'page_size', type: 'number', min: 1, max: 500,
        value: params.page_size || DEFAULT_PAGE_SIZE })),
    h('div', { class: 'buttons' }, h('button', { type: 'submit', class: 'primary' }, 'Apply filter'),
      h('a', { href: '/entities' }, 'Clear filter')));
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const data = new FormData(form);
    const pageSize = String(data.get('page_size') ?? '').trim();
    navigate(withQuery('/entities', { prefix: String(data.get('prefix') ?? '').trim(),
      page_size: pageSize === DEFAULT_PAGE_SIZE ? '' : pageSize }));
  });
  return form;
}

const truncate = (text, max = 80) => (text.length > max ? `${text.slice(0, max - 1)}…` : text);

function entityTable(entities) {
  if (!entities.length) return h('p', { class: 'empty', testid: 'no-rows' }, 'No entities match.');
  const head = ['Entity ID', 'State', 'Locked by', 'Backlog', 'Last modified'];
  return h('table', { testid: 'entities-table' },
    h('thead', {}, h('tr', {}, head.map((t) => h('th', { scope: 'col', class: t === 'Backlog' ? 'num' : null }, t)))),
    h('tbody', {}, entities.map((e) => {
      const state = JSON.stringify(e.state) ?? '';
      return h('tr', { testid: 'entity-row', 'data-id': e.entity_id },
        h('th', { scope: 'row' }, h('a', { href: entityHref(e.entity_id), testid: 'entity-link' }, h('code', {}, e.entity_id))),
        h('td', {}, h('code', { testid: 'entity-state', title: truncate(state, 2000) }, truncate(state))),
        h('td', {}, e.locked_by ? instanceLink(e.locked_by, 'lock-holder') : h('span', { class: 'muted' }, '—')),
        h('td', { class: 'num', testid: 'entity-backlog' }, e.backlog_queue_size ?? 0),
        h('td', {}, timeEl(e.last_modified_time)));
    })));
}

async function entityPage(view, query) {
  const id = param(query, 'id');
  const heading = h('h1', {}, 'Entity ', h('code', { testid: 'entity-id' }, id ?? ''));
  if (!id) {
    main().append(heading, h('p', { class: 'error', role: 'alert' }, 'No entity id in the address (?id=@name@key).'));
    return view.loaded();
  }
  const details = h('div');
  const result = actionResultRegion();
  let watchUntil = 0; // after a signal, watch a while for it to be processed
  let lastKey = '';
  const refresh = async () => {
    let entity;
    try {
      entity = await api(`/api/entity${view.search}`, { signal: view.signal });
    } catch (error) {
      if (!(error instanceof ApiError && error.status === 404)) throw error;
      // Not there (yet): a signal creates it, so the page keeps its Signal action.
      if (view.alive && lastKey !== 'missing') {
        lastKey = 'missing';
        details.replaceChildren(h('p', { class: 'note', testid: 'not-found' },
          `Entity ${id} does not exist (yet): a signal creates it.`));
      }
      return Date.now() < watchUntil;
    }
    if (!view.alive) return false;
    const key = JSON.stringify(entity);
    if (key !== lastKey) { lastKey = key; details.replaceChildren(...entityDetails(entity)); }
    return Date.now() < watchUntil || entity.backlog_queue_size > 0 || Boolean(entity.locked_by);
  };
  const live = new Live(view, refresh);
  const signalButton = h('button', { type: 'button', testid: 'action-signal', onclick: async () => {
    const values = await confirmDialog({ title: 'Signal entity?', target: ['Signal ', h('code', {}, id)], confirmLabel: 'Signal',
      fields: [{ name: 'operation', label: 'Operation', kind: 'text', required: true },
        { name: 'input', label: 'Input (JSON, optional)', kind: 'json' }] });
    if (!values || !view.alive) return;
    const answer = await runAction(result, `Signal ${values.operation}`,
      `/api/signal-entity?id=${encodeURIComponent(id)}`, { operation: values.operation, input: values.input });
    if (answer) { watchUntil = Date.now() + 10000; live.kick(); }
  } }, 'Signal…');
  main().append(heading, live.element, h('div', { class: 'actions', role: 'toolbar', 'aria-label': 'Actions' }, signalButton),
    result, details);
  try {
    live.start(await refresh());
  } catch (error) {
    if (!view.alive) return;
    main().replaceChildren(heading, pageError(error));
  }
  view.loaded();
}

function entityDetails(entity) {
  return [
    definitionList([
      ['Exists', entity.exists === false ? 'no' : 'yes'],
      ['Locked by', entity.locked_by ? instanceLink(entity.locked_by, 'lock-holder') : 'nobody', 'entity-locked-by'],
      ['Backlog', String(entity.backlog_queue_size ?? 0), 'entity-backlog'],
      ['Last modified', timeEl(entity.last_modified_time)],
    ]),
    section('State', null, jsonBlock(entity.state, 'entity-state')),
  ];
}

// ---------------------------------------------------------------------------------------
// Plugins

async function pluginsPage(view) {
  main().append(h('h1', {}, 'Plugins'));
  let data;
  try {
    data = await api('/api/plugins', { signal: view.signal });
  } catch (error) {
    if (view.alive) { main().append(pageError(error)); view.loaded(); }
    return;
  }
  if (!view.alive) return;
  const generations = data.generations ?? [];
  main().append(generations.length
    ? h('div', { class: 'plugins' }, generations.map(pluginCard))
    : h('p', { class: 'empty', testid: 'no-rows' }, 'No plugins are loaded.'));
  view.loaded();
}

function pluginCard(g) {
  const names = (title, list, link) => h('div', {}, h('h3', {}, `${title} (${(list ?? []).length})`),
    (list ?? []).length ? h('ul', { class: 'names', testid: `plugin-${title.toLowerCase()}` },
      list.map((n) => h('li', {}, link ? h('a', { href: link(n) }, h('code', {}, n)) : h('code', {}, n))))
      : h('p', { class: 'muted' }, 'none'));
  return h('section', { class: 'card', testid: 'plugin-generation' },
    h('h2', {}, g.label ?? `${g.plugin} ${g.version}`),
    definitionList([['Plugin', g.plugin], ['Version', g.version], ['Build', h('code', {}, g.build ?? '—')],
      ['Runs', g.runs ?? '—']]),
    h('div', { class: 'registrations' },
      names('Orchestrators', g.orchestrators, (n) => withQuery('/instances', { name: n })),
      names('Activities', g.activities),
      names('Entities', g.entities, (n) => withQuery('/entities', { prefix: `@${n}@` }))));
}

// ---------------------------------------------------------------------------------------
// Router

const routes = {
  '/': ['instances', instancesPage],
  '/instances': ['instances', instancesPage],
  '/instance': ['instance', instancePage],
  '/entities': ['entities', entitiesPage],
  '/entity': ['entity', entityPage],
  '/plugins': ['plugins', pluginsPage],
};

let currentView = null;
const main = () => $('#main');

function render({ focus = false } = {}) {
  if (currentView) {
    currentView.dispose();
    firstView.clear(); // a later view shows what is current, not what came with the page
  }
  delete document.body.dataset.loaded;
  delete document.body.dataset.shown;
  const [route, page] = routes[location.pathname] ?? ['not-found', notFoundPage];
  const view = new View(route);
  currentView = view;
  for (const a of document.querySelectorAll('nav a[data-nav]')) {
    const here = a.dataset.nav === route || (a.dataset.nav === 'instances' && route === 'instance')
      || (a.dataset.nav === 'entities' && route === 'entity');
    if (here) a.setAttribute('aria-current', 'page'); else a.removeAttribute('aria-current');
  }
  main().replaceChildren();
  // After a click, move focus to the new content so keyboard and screen reader users follow.
  if (focus) main().focus({ preventScroll: true });
  window.scrollTo(0, 0);
  page(view, new URLSearchParams(location.search)).catch((error) => {
    if (!view.alive || error.name === 'AbortError') return;
    main().append(pageError(error));
    view.loaded();
  });
}

async function notFoundPage(view) {
  main().append(h('h1', {}, 'Not found'), h('p', {}, 'No page here. ', h('a', { href: '/instances' }, 'See the instances.')));
  view.loaded();
}

function navigate(url, { replace = false, focus = true } = {}) {
  history[replace ? 'replaceState' : 'pushState'](null, '', url);
  render({ focus });
}

/** Real links everywhere; same-origin page links become pushState navigations. */
function interceptLinks(event) {
  if (event.defaultPrevented || event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
  const a = event.target.closest?.('a[href]');
  if (!a || (a.target && a.target !== '_self') || a.hasAttribute('download')) return;
  const url = new URL(a.href, location.href);
  if (url.origin !== location.origin || !routes[url.pathname]) return;
  // An in-page anchor (the skip link) stays the browser's business.
  if (url.hash && url.pathname === location.pathname && url.search === location.search) return;
  event.preventDefault();
  navigate(url.pathname + url.search);
}

function boot() {
  takeTokenFromFragment();
  document.addEventListener('click', interceptLinks);
  window.addEventListener('popstate', () => render());
  document.addEventListener('visibilitychange', () => currentView?.live?.visibilityChanged());
  setUpStartForm();
  render();
  // The header's version line; pages that need the overview fetch their own.
  if (currentView.route !== 'instances') currentView.afterLoaded(() => loadOverview().catch(() => {}));
}

boot();
