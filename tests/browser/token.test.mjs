// Browser tests of the web dashboard on a host whose embedded backend has
// `[embedded] token_file`: the API answers 401 {"token_required": true} without one of its
// tokens, and the page asks for one.
//
//   DASHBOARD_URL=http://127.0.0.1:9466 DASHBOARD_TOKEN=dashboard-secret \
//     node --test tests/browser/token.test.mjs
//
// Environment:
//   DASHBOARD_URL    the host's admin listener (default http://127.0.0.1:9464)
//   DASHBOARD_TOKEN  a token of the backend's token_file (default dashboard-secret)
//   CHROMIUM_PATH    optional: the browser (default /usr/bin/chromium)
//
// The host loads the hello and orders_v1 sample plugins (tests/tests/dashboard.rs).
// Each test opens a fresh browser context, so no token is remembered from another test.
// Every assertion is about what the page shows; waits are on DOM conditions.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { launchChromium } from './chromium.mjs';

const BASE = (process.env.DASHBOARD_URL ?? 'http://127.0.0.1:9464').replace(/\/+$/, '');
const TOKEN = process.env.DASHBOARD_TOKEN || 'dashboard-secret';
const TIMEOUT = 30_000;
const TEST_TIMEOUT = { timeout: 180_000 };

// hello_cities greets the cities in this order (sample-plugins/hello/src/lib.rs).
const HELLO_CITIES_OUTPUT = ['Hello Tokyo!', 'Hello Seattle!', 'Hello London!'];
const STATUSES = ['RUNNING', 'PENDING', 'SUSPENDED', 'COMPLETED', 'FAILED', 'TERMINATED',
  'CANCELED', 'CONTINUED_AS_NEW'];

let browser;

before(async () => {
  browser = await launchChromium();
});

after(async () => {
  await browser?.close();
});

// ---------------------------------------------------------------------------------------
// helpers

/**
 * A tab in a new browser context (nothing remembered); uncaught page errors fail the test.
 * window.__tokenFormShown counts the times the token form appeared.
 */
async function freshPage(t) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  context.setDefaultTimeout(TIMEOUT);
  await context.addInitScript(() => {
    window.__tokenFormShown = 0;
    new MutationObserver((records) => {
      for (const r of records) {
        if (r.target.id === 'token-section' && !r.target.hidden) window.__tokenFormShown += 1;
      }
    }).observe(document, { subtree: true, attributes: true, attributeFilter: ['hidden'] });
  });
  const page = await context.newPage();
  const errors = [];
  page.on('pageerror', (error) => errors.push(error));
  t.after(async () => {
    await context.close();
    assert.deepEqual(errors.map(String), [], 'the page threw');
  });
  return page;
}

/** Waits until the page says `route` has rendered its data. */
async function loaded(page, route) {
  await page.waitForFunction((r) => document.body.dataset.loaded === r, route, { timeout: TIMEOUT });
}

const tokenSection = (page) => page.getByTestId('token-section');
const tokenFormShown = (page) => page.evaluate(() => window.__tokenFormShown);

/** Types `token` into the token form and submits it. */
async function enterToken(page, token) {
  await page.getByLabel('Bearer token').fill(token);
  await page.getByRole('button', { name: 'Use token' }).click();
}

/** The page shows no instance data: no counts, no rows, no host line, not loaded. */
async function assertNoData(page) {
  assert.equal(await page.evaluate(() => document.body.dataset.loaded), undefined, 'the page did not load');
  assert.equal(await page.getByTestId('counts').count(), 0, 'no counts');
  assert.equal(await page.getByTestId('instances-table').count(), 0, 'no instances table');
  assert.equal(await page.getByTestId('instance-row').count(), 0, 'no instance rows');
  assert.equal(await page.getByTestId('no-rows').count(), 0, 'not even "No instances match"');
  assert.equal(await page.getByTestId('host-info').textContent(), '', 'no host line');
}

/** The counts of every status are shown, as numbers; answers them by status. */
async function shownCounts(page) {
  await page.getByTestId('counts').waitFor();
  const counts = {};
  for (const status of STATUSES) {
    const text = await page.locator(`[data-testid="count-${status}"] [data-testid="count-value"]`).textContent();
    assert.match(text, /^\d+\+?$/, `count of ${status}`);
    counts[status] = Number.parseInt(text, 10);
  }
  return counts;
}

const badge = (page) => page.locator('[data-testid="instance-status"] [data-testid="status-badge"]');

async function waitForStatus(page, status) {
  await page.locator(`[data-testid="instance-status"] [data-testid="status-badge"][data-status="${status}"]`)
    .waitFor({ timeout: TIMEOUT });
  assert.equal(await badge(page).textContent(), status);
}

// ---------------------------------------------------------------------------------------
// tests

test('without a token the page asks for one, refuses a wrong one, loads with the right one', TEST_TIMEOUT, async (t) => {
  const page = await freshPage(t);
  await page.goto(`${BASE}/instances`);
  await tokenSection(page).waitFor();
  assert.equal(await page.getByLabel('Bearer token').isVisible(), true);
  assert.equal(await page.getByLabel('Bearer token').getAttribute('type'), 'password');
  const reason = page.locator('#token-reason');
  assert.match(await reason.textContent(), /\[embedded\] token_file/);
  assert.doesNotMatch(await reason.textContent(), /refused/);
  await assertNoData(page);

  // A wrong token: the form stays (shown again), and says the token was refused.
  await enterToken(page, `${TOKEN}-wrong`);
  await page.waitForFunction(() => /refused/.test(document.querySelector('#token-reason').textContent)
    && !document.querySelector('[data-testid="token-section"]').hidden, null, { timeout: TIMEOUT });
  assert.match(await reason.textContent(), /^The token was refused\. .*\[embedded\] token_file/);
  assert.equal(await tokenSection(page).isVisible(), true);
  assert.equal(await page.getByLabel('Bearer token').inputValue(), '', 'the refused token is not kept in the field');
  await assertNoData(page);

  // The right token: the instances page and its counts.
  await enterToken(page, TOKEN);
  await loaded(page, 'instances');
  assert.equal(await tokenSection(page).isHidden(), true, 'the token form is gone');
  assert.equal(await page.getByRole('heading', { level: 1 }).textContent(), 'Instances');
  await shownCounts(page);
  assert.equal(await page.getByTestId('page-error').count(), 0);
  assert.equal(await page.locator('[data-testid="instances-table"], [data-testid="no-rows"]').count(), 1,
    'the list (or its empty note) is shown');
  assert.match(await page.getByTestId('host-info').textContent(), /embedded/);
  assert.ok(!page.url().includes(TOKEN), 'the token is not in the URL');
});

test('#token= in the address: loaded without the form, and the token leaves the URL', TEST_TIMEOUT, async (t) => {
  const page = await freshPage(t);
  await page.goto(`${BASE}/instances#token=${encodeURIComponent(TOKEN)}`);
  await loaded(page, 'instances');
  assert.equal(await tokenFormShown(page), 0, 'the token form never appeared');
  assert.equal(await tokenSection(page).isHidden(), true);
  assert.equal(await page.evaluate(() => location.hash), '');
  assert.ok(!page.url().includes(TOKEN), page.url());
  assert.equal(new URL(page.url()).pathname, '/instances');
  await shownCounts(page);
  assert.equal(await page.getByTestId('page-error').count(), 0);

  // The tab keeps the token: a reload and another page need no form either.
  await page.reload();
  await loaded(page, 'instances');
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Plugins' }).click();
  await loaded(page, 'plugins');
  assert.ok((await page.getByTestId('plugin-generation').allTextContents()).some((text) => text.includes('hello_cities')));
  assert.equal(await tokenFormShown(page), 0, 'the token form never appeared');
  assert.equal(await page.evaluate(() => location.hash), '');
});

test('a #token= that is not percent-encoded still boots the page and leaves the URL', TEST_TIMEOUT, async (t) => {
  const page = await freshPage(t);
  // "50%off" is no valid escape: taken as is, it is a wrong token, refused like a typed one.
  await page.goto(`${BASE}/instances#token=50%off`);
  await tokenSection(page).waitFor();
  await page.waitForFunction(() => /refused/.test(document.querySelector('#token-reason').textContent),
    null, { timeout: TIMEOUT });
  assert.equal(await page.evaluate(() => location.hash), '');
  assert.equal(await page.getByRole('heading', { level: 1 }).textContent(), 'Instances');
  await assertNoData(page);
  await enterToken(page, TOKEN);
  await loaded(page, 'instances');
  await shownCounts(page);
});

test('hello_cities started from the Start form with the token completes', TEST_TIMEOUT, async (t) => {
  const page = await freshPage(t);
  await page.goto(`${BASE}/instances`);
  await tokenSection(page).waitFor();
  await enterToken(page, TOKEN);
  await loaded(page, 'instances');
  const shownBefore = await tokenFormShown(page);

  await page.getByTestId('start-open').click();
  await page.locator('#start-name option[value="hello_cities"]').waitFor({ state: 'attached' });
  await page.getByLabel('Orchestrator name').selectOption('hello_cities');
  await page.getByLabel('Input (JSON, empty for none)').fill('');
  await page.getByTestId('start-submit').click();
  await page.getByTestId('confirm-dialog').waitFor();
  assert.match(await page.getByTestId('confirm-target').textContent(), /Start hello_cities/);
  const before = page.url();
  await page.getByTestId('confirm').click();
  await page.waitForFunction((url) => location.href !== url && location.pathname === '/instance'
    && document.body.dataset.loaded === 'instance', before, { timeout: TIMEOUT });
  const id = new URL(page.url()).searchParams.get('id');
  assert.ok(id, 'the instance page names the new instance');
  assert.equal(await page.getByTestId('instance-id').textContent(), id);
  assert.equal(await page.getByTestId('instance-name').textContent(), 'hello_cities');

  await waitForStatus(page, 'COMPLETED');
  assert.deepEqual(JSON.parse(await page.getByTestId('instance-output').textContent()), HELLO_CITIES_OUTPUT);
  await page.locator('[data-testid="history-event"][data-kind="executionCompleted"]').waitFor();
  assert.equal(await tokenFormShown(page), shownBefore, 'the token was not asked for again');
  assert.equal(await tokenSection(page).isHidden(), true);
  assert.equal(await page.getByTestId('page-error').count(), 0);
});
