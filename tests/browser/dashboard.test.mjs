// Browser tests of the web dashboard: a real (Debian) Chromium, driven by playwright-core,
// against a running host.
//
//   node --test tests/browser/dashboard.test.mjs
//
// Environment:
//   DASHBOARD_URL    the host's admin listener (default http://127.0.0.1:9464)
//   SCREENSHOTS_DIR  optional: save 1280x800 PNGs of the main pages there
//   CHROMIUM_PATH    optional: the browser (default /usr/bin/chromium)
//
// The host is seeded beforehand (tests/tests/dashboard.rs): the hello, entities and orders
// sample plugins are loaded, bulk-0000..bulk-0499 (fan_out_fan_in) have completed, and the
// accounts alice (100) and bob (0) are open.
//
// Every assertion is about what the page shows. Waits are on DOM conditions (locators,
// waitForFunction), never fixed sleeps; document.body.dataset.loaded says a route is done.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { launchChromium } from './chromium.mjs';

const BASE = (process.env.DASHBOARD_URL ?? 'http://127.0.0.1:9464').replace(/\/+$/, '');
const SCREENSHOTS = process.env.SCREENSHOTS_DIR || null;
const TIMEOUT = 30_000;
const TEST_TIMEOUT = { timeout: 180_000 };

// hello_cities greets the cities in this order (sample-plugins/hello/src/lib.rs).
const HELLO_CITIES_OUTPUT = ['Hello Tokyo!', 'Hello Seattle!', 'Hello London!'];

let browser;
let context;

before(async () => {
  browser = await launchChromium();
  context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  context.setDefaultTimeout(TIMEOUT);
  if (SCREENSHOTS) mkdirSync(SCREENSHOTS, { recursive: true });
});

after(async () => {
  await browser?.close();
});

// ---------------------------------------------------------------------------------------
// helpers

/** A new tab at `path`, once its route has rendered; uncaught page errors fail the test. */
async function open(t, path, route) {
  const page = await context.newPage();
  const errors = [];
  page.on('pageerror', (error) => errors.push(error));
  t.after(async () => {
    await page.close();
    assert.deepEqual(errors.map(String), [], 'the page threw');
  });
  await page.goto(BASE + path);
  await loaded(page, route);
  return page;
}

/** Waits until the page says `route` has rendered its data. */
async function loaded(page, route) {
  await page.waitForFunction((r) => document.body.dataset.loaded === r, route, { timeout: TIMEOUT });
}

/** Clicks a link or button that navigates, then waits for the new URL's route to render. */
async function navigateBy(page, locator, route) {
  const before = page.url();
  await locator.click();
  await page.waitForFunction(([url, r]) => location.href !== url && document.body.dataset.loaded === r,
    [before, route], { timeout: TIMEOUT });
}

async function screenshot(page, name) {
  if (!SCREENSHOTS) return;
  await page.screenshot({ path: join(SCREENSHOTS, `${name}.png`) });
}

const badge = (page) => page.locator('[data-testid="instance-status"] [data-testid="status-badge"]');

async function waitForStatus(page, status) {
  await page.locator(`[data-testid="instance-status"] [data-testid="status-badge"][data-status="${status}"]`)
    .waitFor({ timeout: TIMEOUT });
  assert.equal(await badge(page).textContent(), status);
}

async function jsonOf(locator) {
  return JSON.parse(await locator.textContent());
}

/** Starts `name` from the header's Start form; answers the new instance's id. */
async function startFromForm(page, name, input = '') {
  if (await page.locator('#start').isHidden()) await page.getByTestId('start-open').click();
  // The name list comes from /api/overview: wait for the option to be there.
  await page.locator(`#start-name option[value="${name}"]`).waitFor({ state: 'attached' });
  await page.getByLabel('Orchestrator name').selectOption(name);
  await page.getByLabel('Input (JSON, empty for none)').fill(input);
  await page.getByTestId('start-submit').click();
  const dialog = page.getByTestId('confirm-dialog');
  await dialog.waitFor();
  assert.match(await page.getByTestId('confirm-target').textContent(), new RegExp(`Start ${name}`));
  const before = page.url();
  await page.getByTestId('confirm').click();
  await page.waitForFunction((url) => location.href !== url && location.pathname === '/instance'
    && document.body.dataset.loaded === 'instance', before, { timeout: TIMEOUT });
  assert.equal(await dialog.isVisible(), false);
  const id = new URL(page.url()).searchParams.get('id');
  assert.ok(id, 'the instance page names the new instance');
  assert.equal(await page.getByTestId('instance-id').textContent(), id);
  return id;
}

/** Opens an action's confirmation dialog, fills it, confirms, waits for the answer. */
async function act(page, action, fill = async () => {}) {
  const result = page.getByTestId('action-result');
  const answered = Number(await result.getAttribute('data-seq') ?? 0);
  await page.getByTestId(`action-${action}`).click();
  const dialog = page.getByTestId('confirm-dialog');
  await dialog.waitFor();
  await fill(dialog);
  await page.getByTestId('confirm').click();
  await dialog.waitFor({ state: 'hidden' });
  // data-seq counts the answers shown: wait for this action's own.
  await page.waitForFunction((n) => Number(document.querySelector('[data-testid="action-result"]').dataset.seq ?? 0) > n,
    answered, { timeout: TIMEOUT });
  return result;
}

async function historyKinds(page) {
  return page.$$eval('[data-testid="history"] > [data-testid="history-event"]', (items) => items.map((li) => ({
    kind: li.dataset.kind,
    name: li.querySelector('[data-testid="event-name"]')?.textContent ?? null,
  })));
}

/** The rows' instance ids in the instances table. */
async function rowIds(page) {
  return page.$$eval('[data-testid="instance-row"]', (rows) => rows.map((r) => r.dataset.id));
}

/** An entity's state as the entities table or entity page shows it; a balance. */
function balanceOf(state) {
  return typeof state === 'number' ? state : state?.balance ?? 0;
}

async function accountBalances(page) {
  const cells = await page.$$eval('[data-testid="entity-row"]', (rows) => rows.map((r) =>
    [r.dataset.id, r.querySelector('[data-testid="entity-state"]').textContent]));
  return Object.fromEntries(cells.map(([id, text]) => [id, balanceOf(JSON.parse(text))]));
}

// ---------------------------------------------------------------------------------------
// tests

test('hello_cities started from the Start form completes live, with output and history', TEST_TIMEOUT, async (t) => {
  const page = await open(t, '/instances', 'instances');
  const id = await startFromForm(page, 'hello_cities');
  // A marker that a reload would wipe: the status must change without one.
  await page.evaluate(() => { window.__noReload = true; });
  await waitForStatus(page, 'COMPLETED');
  assert.equal(await page.evaluate(() => window.__noReload), true, 'no reload happened');
  assert.deepEqual(await jsonOf(page.getByTestId('instance-output')), HELLO_CITIES_OUTPUT);
  assert.equal(await page.getByTestId('instance-name').textContent(), 'hello_cities');

  await page.locator('[data-testid="history-event"][data-kind="executionCompleted"]').waitFor();
  const events = await historyKinds(page);
  const count = (kind) => events.filter((e) => e.kind === kind).length;
  assert.equal(count('executionStarted'), 1);
  assert.equal(count('taskScheduled'), 3);
  assert.deepEqual(events.filter((e) => e.kind === 'taskScheduled').map((e) => e.name),
    ['say_hello', 'say_hello', 'say_hello']);
  assert.equal(count('taskCompleted'), 3);
  assert.equal(count('executionCompleted'), 1);
  const order = events.map((e) => e.kind).filter((k) => ['executionStarted', 'taskScheduled',
    'taskCompleted', 'executionCompleted'].includes(k));
  assert.equal(order[0], 'executionStarted');
  assert.equal(order.at(-1), 'executionCompleted');
  // Finished: live refresh has nothing left to watch, and says when it last looked.
  assert.match(await page.getByTestId('live-updated').textContent(), /^updated \d\d:\d\d:\d\d$/);
  await screenshot(page, 'instance');

  // The instances list, filtered by name, links to it.
  await page.goto(`${BASE}/instances?name=hello_cities&page_size=500`);
  await loaded(page, 'instances');
  while (!(await rowIds(page)).includes(id) && await page.getByTestId('next-page').count() > 0) {
    await navigateBy(page, page.getByTestId('next-page'), 'instances');
  }
  await navigateBy(page, page.locator(`[data-testid="instance-row"][data-id="${id}"] [data-testid="instance-link"]`), 'instance');
  await waitForStatus(page, 'COMPLETED');
});

test('approve_order waits for the approval event raised from the dialog', TEST_TIMEOUT, async (t) => {
  const page = await open(t, '/instances', 'instances');
  const id = await startFromForm(page, 'approve_order', '{"id":"o-42"}');
  await waitForStatus(page, 'RUNNING');
  assert.deepEqual(await jsonOf(page.getByTestId('instance-input')), { id: 'o-42' });

  const result = await act(page, 'raise-event', async (dialog) => {
    // The dialog names the action and the instance.
    assert.match(await dialog.locator('h2').textContent(), /Raise event/);
    assert.match(await page.getByTestId('confirm-target').textContent(), new RegExp(id));
    await dialog.getByLabel('Event name').fill('approval');
    await dialog.getByLabel('Event data (JSON, optional)').fill('{"by":"alice"}');
  });
  assert.equal(await result.getAttribute('data-outcome'), 'ok', await result.textContent());
  assert.equal(await result.getAttribute('role'), 'status');

  await waitForStatus(page, 'COMPLETED');
  assert.deepEqual(await jsonOf(page.getByTestId('instance-output')), { order: 'o-42', approved: { by: 'alice' } });
  await page.locator('[data-testid="history-event"][data-kind="eventRaised"]').waitFor();
});

test('terminate from the dialog: TERMINATED, and the backend answer is shown', TEST_TIMEOUT, async (t) => {
  const page = await open(t, '/instances', 'instances');
  const id = await startFromForm(page, 'approve_order', '{"id":"o-43"}');
  await waitForStatus(page, 'RUNNING');

  // Cancel first: nothing happens.
  await page.getByTestId('action-terminate').click();
  await page.getByTestId('confirm-dialog').waitFor();
  await page.getByTestId('confirm-cancel').click();
  await page.getByTestId('confirm-dialog').waitFor({ state: 'hidden' });
  assert.equal(await page.getByTestId('action-result').textContent(), '');

  const result = await act(page, 'terminate', async (dialog) => {
    assert.match(await dialog.locator('h2').textContent(), /Terminate/);
    assert.match(await page.getByTestId('confirm-target').textContent(), new RegExp(id));
    await dialog.getByLabel(/^Reason/).fill('"cancelled by test"');
  });
  assert.equal(await result.getAttribute('data-outcome'), 'ok', await result.textContent());
  const answer = JSON.parse(await result.getByTestId('action-answer').textContent());
  assert.equal(typeof answer, 'object', 'the backend answer is shown as JSON');
  await waitForStatus(page, 'TERMINATED');
  assert.equal(await jsonOf(page.getByTestId('instance-output')), 'cancelled by test');

  // Rewinding it is refused (only a failed orchestration can be): the page shows the
  // backend's message.
  const refused = await act(page, 'rewind', async (dialog) => {
    await dialog.getByLabel('Reason').fill('try again');
  });
  assert.equal(await refused.getAttribute('data-outcome'), 'error');
  assert.match(await refused.getByTestId('action-error').textContent(), /rewind|failed/i);
  await waitForStatus(page, 'TERMINATED');
});

test('a transfer moves 30 from alice to bob, as the entities pages show', TEST_TIMEOUT, async (t) => {
  const page = await open(t, '/entities?prefix=%40account%40', 'entities');
  // An account that was never deposited into may not be listed yet: it holds 0.
  const before = { '@account@bob': 0, ...await accountBalances(page) };
  assert.ok('@account@alice' in before, JSON.stringify(before));

  await startFromForm(page, 'transfer', '{"from":"alice","to":"bob","amount":30}');
  await waitForStatus(page, 'COMPLETED');

  // Through the nav and the prefix filter, as a user would.
  await navigateBy(page, page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Entities' }), 'entities');
  await page.getByLabel('Entity ID prefix').fill('@account@');
  await navigateBy(page, page.getByRole('button', { name: 'Apply filter' }), 'entities');
  assert.equal(new URL(page.url()).searchParams.get('prefix'), '@account@');
  const after = await accountBalances(page);
  assert.equal(after['@account@bob'] - before['@account@bob'], 30);
  assert.equal(before['@account@alice'] - after['@account@alice'], 30);
  if (before['@account@bob'] === 0) {
    // The seeded host: alice 100 → 70, bob 0 → 30.
    assert.equal(after['@account@bob'], 30);
    assert.equal(after['@account@alice'], 70);
  }
  await screenshot(page, 'entities');

  await navigateBy(page, page.locator('[data-testid="entity-row"][data-id="@account@bob"] [data-testid="entity-link"]'), 'entity');
  assert.equal(await page.getByTestId('entity-id').textContent(), '@account@bob');
  assert.equal(balanceOf(await jsonOf(page.getByTestId('entity-state'))), after['@account@bob']);
});

test('instance filters and paging: 500 bulk instances in order, shareable URLs', TEST_TIMEOUT, async (t) => {
  const page = await open(t, '/instances?prefix=bulk-&page_size=50', 'instances');
  const ids = await rowIds(page);
  assert.equal(ids.length, 50);
  for (let n = 1; n < 10; n++) {
    const next = page.getByTestId('next-page');
    assert.equal(await next.count(), 1, `page ${n} has a next page`);
    await navigateBy(page, next, 'instances');
    const pageIds = await rowIds(page);
    assert.equal(pageIds.length, 50, `page ${n + 1} is full`);
    ids.push(...pageIds);
  }
  assert.equal(await page.getByTestId('next-page').count(), 0, 'the last page has no next');
  assert.equal(new Set(ids).size, 500);
  // Every one of them once (the list is oldest first, and they were started from several
  // threads, so not in id order).
  assert.deepEqual([...ids].sort(), Array.from({ length: 500 }, (_, i) => `bulk-${String(i).padStart(4, '0')}`));
  // Back to the start.
  await navigateBy(page, page.getByTestId('first-page'), 'instances');
  assert.equal((await rowIds(page))[0], ids[0]);
  await screenshot(page, 'instances');

  // The filter form writes the URL; the URL reopens the same view.
  await navigateBy(page, page.getByRole('link', { name: 'Clear filters' }), 'instances');
  await page.getByLabel('Instance ID prefix').fill('bulk-');
  await navigateBy(page, page.getByRole('button', { name: 'Apply filters' }), 'instances');
  const shared = page.url();
  assert.ok(shared.includes('prefix=bulk-'), shared);
  const fresh = await open(t, new URL(shared).pathname + new URL(shared).search, 'instances');
  assert.equal((await rowIds(fresh))[0], ids[0]);
  assert.equal((await rowIds(page))[0], ids[0]);

  // Status FAILED with the prefix: nothing.
  await page.getByLabel('FAILED', { exact: true }).check();
  await navigateBy(page, page.getByRole('button', { name: 'Apply filters' }), 'instances');
  assert.deepEqual(new URL(page.url()).searchParams.getAll('status'), ['FAILED']);
  assert.equal(await page.getByTestId('instance-row').count(), 0);
  await page.getByTestId('no-rows').waitFor();

  // Name filter: only hello_cities rows (test 1 started one; follow pages past a limited scan).
  await page.goto(`${BASE}/instances?name=hello_cities`);
  await loaded(page, 'instances');
  assert.equal(await page.getByLabel('Name', { exact: true }).inputValue(), 'hello_cities');
  while (await page.getByTestId('instance-row').count() === 0 && await page.getByTestId('next-page').count() > 0) {
    await navigateBy(page, page.getByTestId('next-page'), 'instances');
  }
  const names = await page.$$eval('[data-testid="instance-row"] [data-testid="instance-name"]', (cells) => cells.map((c) => c.textContent));
  assert.ok(names.length > 0, 'hello_cities instances are listed');
  assert.deepEqual([...new Set(names)], ['hello_cities']);

  // Counts: the 500 bulk instances at least, and the count links filter by status.
  const completed = await page.locator('[data-testid="count-COMPLETED"] [data-testid="count-value"]').textContent();
  assert.ok(Number.parseInt(completed, 10) >= 500, completed);
  await navigateBy(page, page.getByTestId('count-COMPLETED'), 'instances');
  assert.deepEqual(new URL(page.url()).searchParams.getAll('status'), ['COMPLETED']);
  assert.equal(await page.getByLabel('COMPLETED', { exact: true }).isChecked(), true);
  const statuses = await page.$$eval('[data-testid="instance-row"] [data-testid="status-badge"]', (b) => b.map((x) => x.textContent));
  assert.ok(statuses.length > 0 && statuses.every((s) => s === 'COMPLETED'), statuses.join());

  // Back and forward work on the pushState history.
  await page.goBack();
  await loaded(page, 'instances');
  assert.equal(new URL(page.url()).searchParams.get('name'), 'hello_cities');
  assert.equal(await page.getByLabel('Name', { exact: true }).inputValue(), 'hello_cities');
});

test('bad JSON in the Start form shows the parse error and sends nothing', TEST_TIMEOUT, async (t) => {
  const page = await open(t, '/instances', 'instances');
  const posts = [];
  page.on('request', (request) => { if (request.method() === 'POST') posts.push(request.url()); });
  await page.getByTestId('start-open').click();
  await page.locator('#start-name option[value="hello_cities"]').waitFor({ state: 'attached' });
  await page.getByLabel('Orchestrator name').selectOption('hello_cities');
  const input = page.getByLabel('Input (JSON, empty for none)');
  await input.fill('{"id": o-1}');
  await page.getByTestId('start-submit').click();
  const error = page.getByTestId('start-input-error');
  await error.waitFor();
  assert.match(await error.textContent(), /JSON/);
  assert.equal(await input.getAttribute('aria-invalid'), 'true');
  assert.equal(await page.getByTestId('confirm-dialog').isVisible(), false, 'no confirmation for bad input');
  assert.equal(new URL(page.url()).pathname, '/instances');
  assert.deepEqual(posts, []);

  // Fixed, the error goes away (and the dialog opens; cancelled, still nothing sent).
  await input.fill('{"id": "o-1"}');
  await page.getByTestId('start-submit').click();
  await page.getByTestId('confirm-dialog').waitFor();
  assert.equal(await error.isVisible(), false);
  await page.getByTestId('confirm-cancel').click();
  await page.getByTestId('confirm-dialog').waitFor({ state: 'hidden' });
  assert.deepEqual(posts, []);
});

test('a page opened afresh comes with its data; the pages after it ask the API', TEST_TIMEOUT, async (t) => {
  const page = await context.newPage();
  t.after(() => page.close());
  const asked = [];
  page.on('request', (request) => {
    const url = new URL(request.url());
    if (url.pathname.startsWith('/api/')) asked.push(url.pathname + url.search);
  });
  const pages = [
    ['/instances?prefix=bulk-00&status=COMPLETED', 'instances', '/api/instances?prefix=bulk-00&status=COMPLETED'],
    ['/instance?id=bulk-0007', 'instance', '/api/instance?id=bulk-0007'],
    ['/entities?prefix=%40account%40', 'entities', '/api/entities?prefix=%40account%40'],
    ['/plugins', 'plugins', '/api/plugins'],
  ];
  for (const [path, route, read] of pages) {
    asked.length = 0;
    await page.goto(BASE + path);
    await loaded(page, route);
    assert.ok(!asked.includes(read), `${path} was shown without asking for ${read} (asked: ${asked})`);
  }
  // What came with the page is what the API answers (the other tests, which open every
  // page afresh, check what such pages show).
  await page.goto(BASE + '/instances?prefix=bulk-00&status=COMPLETED');
  await loaded(page, 'instances');
  const listed = await (await fetch(`${BASE}/api/instances?prefix=bulk-00&status=COMPLETED`)).json();
  assert.equal(listed.instances.length, 50);
  assert.deepEqual(await rowIds(page), listed.instances.map((i) => i.instance_id));
  // A link inside the dashboard: that view asks the API.
  asked.length = 0;
  await navigateBy(page, page.getByRole('link', { name: 'Plugins' }), 'plugins');
  assert.ok(asked.includes('/api/plugins'), `the plugins view asked the API (asked: ${asked})`);
  // Back: the instances view asks again, nothing of the first view is reused.
  asked.length = 0;
  await page.goBack();
  await loaded(page, 'instances');
  assert.ok(asked.includes('/api/instances?prefix=bulk-00&status=COMPLETED'), `asked: ${asked}`);
});

test('a long page shows a screenful of rows with its first frame, then the rest in order', TEST_TIMEOUT, async (t) => {
  const page = await context.newPage();
  t.after(() => page.close());
  const errors = [];
  page.on('pageerror', (error) => errors.push(error));
  // What the page holds when it says its first screen is shown (before the rest can come).
  await page.addInitScript(() => {
    const observer = new MutationObserver(() => {
      if (!document.body?.dataset.shown) return;
      observer.disconnect();
      const rows = document.querySelectorAll('[data-testid="instance-row"]');
      window.firstScreen = {
        rows: rows.length,
        bottom: rows.length ? rows[rows.length - 1].getBoundingClientRect().bottom : 0,
        height: window.innerHeight,
        loaded: document.body.dataset.loaded ?? null,
      };
    });
    observer.observe(document, { subtree: true, attributes: true, attributeFilter: ['data-shown'] });
  });
  await page.goto(`${BASE}/instances?prefix=bulk-&page_size=500`);
  await loaded(page, 'instances');
  const first = await page.evaluate(() => window.firstScreen);
  assert.ok(first.rows > 0 && first.rows < 500, `the first screen held ${first.rows} rows`);
  assert.ok(first.bottom >= first.height, `its rows fill the window (${first.bottom} px of ${first.height})`);
  assert.equal(first.loaded, null, 'the page said it was loaded only once every row was in');
  const listed = await (await fetch(`${BASE}/api/instances?prefix=bulk-&page_size=500`)).json();
  assert.equal(listed.instances.length, 500);
  assert.deepEqual(await rowIds(page), listed.instances.map((i) => i.instance_id));
  assert.deepEqual(errors.map(String), [], 'the page threw');
});

test('plugins page lists each generation and what it registers', TEST_TIMEOUT, async (t) => {
  const page = await open(t, '/plugins', 'plugins');
  const hello = page.locator('[data-testid="plugin-generation"]', { hasText: 'hello_cities' });
  await hello.first().waitFor();
  const orchestrators = await hello.first().getByTestId('plugin-orchestrators').textContent();
  assert.match(orchestrators, /hello_cities/);
  assert.match(orchestrators, /fan_out_fan_in/);
  assert.match(await hello.first().getByTestId('plugin-activities').textContent(), /say_hello/);
  const all = await page.getByTestId('plugin-generation').allTextContents();
  assert.ok(all.some((text) => text.includes('approve_order')), 'orders registers approve_order');
  assert.ok(all.some((text) => /account/.test(text)), 'entities registers the account entity');
  await screenshot(page, 'plugins');
});

test('light and dark colour schemes both render', TEST_TIMEOUT, async (t) => {
  const page = await open(t, '/instances?prefix=bulk-&page_size=5', 'instances');
  const colours = () => page.evaluate(() => {
    const body = getComputedStyle(document.body);
    const badgeEl = document.querySelector('[data-testid="status-badge"]');
    return { bg: body.backgroundColor, fg: body.color, badge: badgeEl && getComputedStyle(badgeEl).backgroundColor };
  });
  await page.emulateMedia({ colorScheme: 'light' });
  const light = await colours();
  await page.emulateMedia({ colorScheme: 'dark' });
  const dark = await colours();
  assert.notEqual(light.bg, dark.bg, 'the body background changes');
  assert.notEqual(light.fg, dark.fg, 'the text colour changes');
  assert.notEqual(light.badge, dark.badge, 'the badges follow');
  await screenshot(page, 'instances-dark');
  await page.emulateMedia({ colorScheme: 'light' });
});

test('suspend, resume, restart, purge and an entity signal, each from its dialog', TEST_TIMEOUT, async (t) => {
  const page = await open(t, '/instances', 'instances');
  const first = await startFromForm(page, 'approve_order', '{"id":"o-77"}');
  await waitForStatus(page, 'RUNNING');

  // Suspend: SUSPENDED, and the history says so.
  const suspended = await act(page, 'suspend', async (dialog) => {
    assert.match(await dialog.locator('h2').textContent(), /Suspend/);
    assert.match(await page.getByTestId('confirm-target').textContent(), new RegExp(first));
    await dialog.getByLabel('Reason').fill('pause for audit');
  });
  assert.equal(await suspended.getAttribute('data-outcome'), 'ok', await suspended.textContent());
  await waitForStatus(page, 'SUSPENDED');
  await page.locator('[data-testid="history-event"][data-kind="executionSuspended"]').waitFor();

  // Resume: RUNNING again (still waiting for its approval).
  const resumed = await act(page, 'resume', async (dialog) => {
    assert.match(await dialog.locator('h2').textContent(), /Resume/);
    await dialog.getByLabel('Reason').fill('audit done');
  });
  assert.equal(await resumed.getAttribute('data-outcome'), 'ok', await resumed.textContent());
  await waitForStatus(page, 'RUNNING');
  await page.locator('[data-testid="history-event"][data-kind="executionResumed"]').waitFor();

  // The approval completes it.
  const raised = await act(page, 'raise-event', async (dialog) => {
    await dialog.getByLabel('Event name').fill('approval');
    await dialog.getByLabel('Event data (JSON, optional)').fill('{"by":"auditor"}');
  });
  assert.equal(await raised.getAttribute('data-outcome'), 'ok', await raised.textContent());
  await waitForStatus(page, 'COMPLETED');
  assert.deepEqual(await jsonOf(page.getByTestId('instance-output')), { order: 'o-77', approved: { by: 'auditor' } });

  // Restart under a new instance id: the answer links to it, and it waits again, same input.
  const restarted = await act(page, 'restart', async (dialog) => {
    assert.match(await dialog.locator('h2').textContent(), /Restart/);
    await dialog.getByLabel('Restart under a new instance id').check();
  });
  assert.equal(await restarted.getAttribute('data-outcome'), 'ok', await restarted.textContent());
  const second = JSON.parse(await restarted.getByTestId('action-answer').textContent()).instance_id;
  assert.ok(second && second !== first, `a new instance id: ${second}`);
  const link = page.getByTestId('restarted-link');
  assert.match(await link.textContent(), new RegExp(second));
  await navigateBy(page, link, 'instance');
  assert.equal(new URL(page.url()).searchParams.get('id'), second);
  assert.equal(await page.getByTestId('instance-id').textContent(), second);
  await waitForStatus(page, 'RUNNING');
  assert.equal(await page.getByTestId('instance-name').textContent(), 'approve_order');
  assert.deepEqual(await jsonOf(page.getByTestId('instance-input')), { id: 'o-77' });
  // Nothing left running.
  const terminated = await act(page, 'terminate');
  assert.equal(await terminated.getAttribute('data-outcome'), 'ok', await terminated.textContent());
  await waitForStatus(page, 'TERMINATED');

  // Purge the first one: the page says it is gone, and its address finds nothing.
  await page.goto(`${BASE}/instance?id=${encodeURIComponent(first)}`);
  await loaded(page, 'instance');
  await waitForStatus(page, 'COMPLETED');
  const purged = await act(page, 'purge', async (dialog) => {
    assert.match(await dialog.locator('h2').textContent(), /Purge/);
    assert.match(await page.getByTestId('confirm-target').textContent(), new RegExp(first));
  });
  assert.equal(await purged.getAttribute('data-outcome'), 'ok', await purged.textContent());
  assert.match(await page.getByTestId('gone').textContent(), new RegExp(`${first}.*gone`));
  assert.equal(await page.getByTestId('instance-id').textContent(), first);
  const reopened = await open(t, `/instance?id=${encodeURIComponent(first)}`, 'instance');
  await reopened.getByTestId('not-found').waitFor();
  assert.match(await reopened.getByTestId('not-found').textContent(), /does not exist/);

  // Signal a counter that does not exist yet `add 5` (counter:
  // sample-plugins/entities/src/counter.rs): the page offers the signal, which creates it.
  const counter = `@counter@dash-${Date.now()}`;
  const entityPath = `/entity?id=${encodeURIComponent(counter)}`;
  await page.goto(BASE + entityPath);
  await loaded(page, 'entity');
  assert.match(await page.getByTestId('not-found').textContent(), /does not exist \(yet\)/);
  assert.equal(await page.getByTestId('entity-id').textContent(), counter);
  const before = 0;
  const signalled = await act(page, 'signal', async (dialog) => {
    assert.match(await dialog.locator('h2').textContent(), /Signal/);
    assert.match(await page.getByTestId('confirm-target').textContent(), new RegExp(counter));
    await dialog.getByLabel('Operation').fill('add');
    await dialog.getByLabel('Input (JSON, optional)').fill('5');
  });
  assert.equal(await signalled.getAttribute('data-outcome'), 'ok', await signalled.textContent());
  assert.equal(JSON.parse(await signalled.getByTestId('action-answer').textContent()).signalled, true);
  // Live refresh shows the operation once the entity has run it.
  await page.waitForFunction((want) => document.querySelector('[data-testid="entity-state"]')?.textContent === want,
    String(before + 5), { timeout: TIMEOUT });
  // And so does a fresh load.
  const fresh = await open(t, entityPath, 'entity');
  assert.equal(await jsonOf(fresh.getByTestId('entity-state')), before + 5);
});
