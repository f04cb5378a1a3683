// The Node half of bench/dashboard: seeds a host's task hub through the dashboard's API,
// or loads each page in Chromium and times it (the host restarted in between, so every
// finished instance is read from disk, as on any host that has been running a while).
//
//   node bench/dashboard_pages.mjs seed <dashboard URL> <N>
//   node bench/dashboard_pages.mjs time <dashboard URL> <N> <repeats>
//
// Each page is loaded afresh, as a new tab opening a shared link would: from about:blank
// (no earlier page torn down on the clock), round after round, every page once per round.
// Four times from the start of its navigation (performance's time origin): until the page
// marks the first screen of its data rendered (body[data-shown], watched by a
// MutationObserver installed before the page's own script runs); until the frame showing it
// has been painted (the next animation frame's style, layout and paint on the page's
// thread); until that frame was presented on screen, after its raster and compositing on
// other threads (the page's first contentful paint, when no frame without the data came
// before it); and until all of its data is in the page (body[data-loaded]: later than
// data-shown only for a long page of instances, whose rows below the first screen follow
// the first frame). The page reports them on the console, so nothing of Playwright's runs
// in it while it loads. The same is timed for an
// empty page from Node's own HTTP server: Chromium's floor on this machine, which every
// page pays before any of the dashboard's work. Then each page is reached by a link
// inside the loaded dashboard (its own router, no new document), as a user moves between
// pages, and timed from the click until the first screen of its data is rendered.

import http from 'node:http';
import { launchChromium } from '../tests/browser/chromium.mjs';

const [mode, url, countText = '50000', repeatsText = '7'] = process.argv.slice(2);
if (!['seed', 'time'].includes(mode) || !url) {
  console.error('usage: node bench/dashboard_pages.mjs seed|time <dashboard URL> [N] [repeats]');
  process.exit(2);
}
const count = Number(countText);
const repeats = Number(repeatsText);
/** The seeded hello_cities instance (the page of an instance with its history). */
const HELLO_ID = 'hello-cities';

async function api(path, body) {
  const response = await fetch(new URL(path, url), body === undefined ? {} : {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  const answer = await response.json();
  if (!response.ok) throw new Error(`${path}: ${response.status} ${JSON.stringify(answer)}`);
  return answer;
}

async function seed() {
  const started = performance.now();
  let next = 0;
  const worker = async () => {
    while (next < count) {
      const index = next++;
      await api('/api/instances', {
        name: 'bench_empty',
        instance_id: `seed-${String(index).padStart(6, '0')}`,
        input: { index },
      });
    }
  };
  await Promise.all(Array.from({ length: 32 }, worker));
  await api('/api/instances', { name: 'hello_cities', instance_id: HELLO_ID });
  await api('/api/instances', { name: 'approve_order', instance_id: 'waiting-order', input: { id: 'o-1' } });
  await api('/api/instances', {
    name: 'open_accounts',
    input: [{ key: 'alice', amount: 100 }, { key: 'bob', amount: 5 }],
  });
  for (;;) {
    const overview = await api('/api/overview');
    if (overview.counts.FAILED > 0) throw new Error(`a seeded orchestration failed: ${JSON.stringify(overview.counts)}`);
    if (overview.counts.COMPLETED >= count + 2) break;
    await new Promise((resolve) => setTimeout(resolve, 1000));
  }
  const seconds = (performance.now() - started) / 1000;
  console.log(`seeded ${count} instances (+3) in ${seconds.toFixed(1)} s (${(count / seconds).toFixed(0)}/s through POST /api/instances)`);
}

function median(values) {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

async function timeApi(path) {
  const times = [];
  for (let run = 0; run < repeats; run++) {
    const started = performance.now();
    await api(path);
    times.push(performance.now() - started);
  }
  return times;
}

if (mode === 'seed') {
  await seed();
  process.exit(0);
}

/** An empty page that marks itself loaded at once: what Chromium's navigation costs. */
async function floorServer() {
  const server = http.createServer((request, response) => {
    response.setHeader('content-type', 'text/html; charset=utf-8');
    response.end('<!doctype html><html lang="en"><head><meta charset="utf-8"><title>floor</title></head>'
      + '<body><p>empty</p><script>document.body.dataset.shown = document.body.dataset.loaded = "floor";</script></body></html>');
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return server;
}

const pages = [
  ['instances, first page (50)', '/instances', '/api/instances?page_size=50'],
  ['instances, 500 per page', '/instances?page_size=500', '/api/instances?page_size=500'],
  ['instances, status COMPLETED', '/instances?status=COMPLETED', '/api/instances?status=COMPLETED&page_size=50'],
  ['instances, status RUNNING (1 of N)', '/instances?status=RUNNING', '/api/instances?status=RUNNING&page_size=50'],
  ['instances, id prefix', '/instances?prefix=seed-0424', '/api/instances?prefix=seed-0424&page_size=50'],
  ['instances, name (scans)', '/instances?name=bench_empty', '/api/instances?name=bench_empty&page_size=50'],
  ['instances, rare name (scan budget)', '/instances?name=hello_cities', '/api/instances?name=hello_cities&page_size=50'],
  ['instance with history', `/instance?id=${encodeURIComponent(HELLO_ID)}`, `/api/instance?id=${encodeURIComponent(HELLO_ID)}`],
  ['entities', '/entities', '/api/entities?page_size=50'],
  ['plugins', '/plugins', '/api/plugins'],
  ['counts (overview)', null, '/api/overview'],
];

const browser = await launchChromium();
const page = await browser.newPage();
// The page reports on the console when the first screen of its data is in the page, when
// the frame showing it has been drawn, and when all its data is in, so nothing of Playwright's runs in the page while it loads (waiting
// with page.waitForFunction would inject Playwright's own script into the page, where it
// competes with the page for the main thread).
await page.addInitScript(() => {
  let shown = null;
  let painted = null;
  let loaded = null;
  let contentful = null;
  const report = () => {
    if (painted === null || loaded === null || contentful === null) return;
    // The first contentful paint shows the data only if it is not earlier than the data.
    const presented = contentful >= shown ? contentful : NaN;
    console.debug(`dashboard-loaded ${shown} ${painted} ${loaded} ${presented}`);
  };
  new PerformanceObserver((entries) => {
    const first = entries.getEntriesByName('first-contentful-paint')[0];
    if (first && contentful === null) {
      contentful = first.startTime;
      report();
    }
  }).observe({ type: 'paint', buffered: true });
  const observer = new MutationObserver(() => {
    const data = document.body?.dataset;
    if (shown === null && data?.shown) {
      shown = performance.now();
      // The next frame's style, layout and paint run before this timer's task.
      requestAnimationFrame(() => setTimeout(() => {
        painted = performance.now();
        report();
      }, 0));
    }
    if (loaded === null && data?.loaded) {
      loaded = performance.now();
      observer.disconnect();
      report();
    }
  });
  observer.observe(document, { subtree: true, attributes: true, attributeFilter: ['data-shown', 'data-loaded'] });
});

/** Loads `href` afresh, as a new tab would (from about:blank, so no earlier page is torn
 *  down on the clock): the milliseconds from the start of the navigation until the page
 *  marks the first screen of its data rendered, until the frame showing it has been
 *  painted, until all its data is in the page, and until the frame showing the data was
 *  presented (NaN: a frame without the data was the first contentful one). */
async function loadOnce(href) {
  await page.goto('about:blank');
  const loaded = page.waitForEvent('console', {
    predicate: (message) => message.text().startsWith('dashboard-loaded '),
    timeout: 30000,
  });
  await page.goto(href, { waitUntil: 'commit' });
  const [rendered, painted, complete, presented] = (await loaded).text().split(' ').slice(1).map(Number);
  return { rendered, painted, complete, presented };
}

const floor = await floorServer();
const floorHref = `http://127.0.0.1:${floor.address().port}/`;
const timed = [["Chromium's floor: an empty page from Node's HTTP server", floorHref],
  ...pages.filter(([, path]) => path).map(([label, path]) => [label, new URL(path, url).href])];
// Warm up: Chromium's first navigations start processes and fill caches.
for (const [, href] of timed) await loadOnce(href);
// Round after round, each page (and the floor) once per round: the machine's load, which
// drifts, weighs on every page alike.
const loads = new Map(timed.map(([label]) => [label, []]));
for (let round = 0; round < repeats; round++) {
  for (const [label, href] of timed) loads.get(label).push(await loadOnce(href));
}
floor.close();

console.log(`\n${count} instances; each page loaded ${repeats} times afresh, round-robin; milliseconds, median (worst)`);
console.log('| page | first screen of data in the page | painted | presented | all data in the page | API alone |');
console.log('|---|---|---|---|---|---|');
const show = (values) => (values.length ? `${median(values).toFixed(1)} (${Math.max(...values).toFixed(1)})` : '–');
/** Presentation times, and how many loads showed a frame without the data first. */
const showPresented = (loadsOfPage) => {
  const known = loadsOfPage.map((l) => l.presented).filter((t) => !Number.isNaN(t));
  const early = loadsOfPage.length - known.length;
  return show(known) + (early ? ` [${early} loads painted before the data]` : '');
};
let worstPage = 0;
let worstPainted = 0;
let worstPresented = 0;
const floorLoads = loads.get(timed[0][0]);
console.log(`| ${timed[0][0]} | ${show(floorLoads.map((l) => l.rendered))} | ${show(floorLoads.map((l) => l.painted))} | ${showPresented(floorLoads)} | ${show(floorLoads.map((l) => l.complete))} | – |`);
for (const [label, path, apiPath] of pages) {
  const times = loads.get(label) ?? [];
  const rendered = times.map((l) => l.rendered);
  const painted = times.map((l) => l.painted);
  const presented = times.map((l) => l.presented).filter((t) => !Number.isNaN(t));
  if (times.length) {
    worstPage = Math.max(worstPage, median(rendered));
    worstPainted = Math.max(worstPainted, median(painted));
    if (presented.length) worstPresented = Math.max(worstPresented, median(presented));
  }
  const complete = times.map((l) => l.complete);
  const presentedText = times.length ? showPresented(times) : '–';
  console.log(`| ${label} | ${show(rendered)} | ${show(painted)} | ${presentedText} | ${show(complete)} | ${show(await timeApi(apiPath))} |`);
}
const floorTimes = floorLoads.map((l) => l.rendered);

/** Follows a link to `path` inside the loaded dashboard (the page's own router, no new
 *  document) and resolves with the milliseconds until the page marks the first screen of
 *  its data rendered. */
function clickTo(path) {
  return page.evaluate((target) => new Promise((resolve) => {
    const started = performance.now();
    let shown = null;
    // Resolves once the whole view is in (so the next click does not race the rest of
    // its rows), with the time its first screen was.
    const observer = new MutationObserver(() => {
      if (shown === null && document.body.dataset.shown) shown = performance.now() - started;
      if (document.body.dataset.loaded) {
        observer.disconnect();
        resolve(shown);
      }
    });
    observer.observe(document.body, { attributes: true, attributeFilter: ['data-shown', 'data-loaded'] });
    const link = document.createElement('a');
    link.href = target;
    document.body.append(link);
    link.click();
    link.remove();
  }), path);
}

console.log('\nThe same pages reached by a link inside the dashboard (no new document), from');
console.log('the plugins page (the entities page for the plugins page); milliseconds');
console.log('| page | median | worst |');
console.log('|---|---|---|');
let worstClick = 0;
await loadOnce(new URL('/plugins', url).href);
for (const [label, path] of pages) {
  if (!path) continue;
  const from = path === '/plugins' ? '/entities' : '/plugins';
  const times = [];
  for (let run = 0; run < repeats; run++) {
    await clickTo(from);
    times.push(await clickTo(path));
  }
  worstClick = Math.max(worstClick, median(times));
  console.log(`| ${label} | ${median(times).toFixed(1)} | ${Math.max(...times).toFixed(1)} |`);
}
await browser.close();
console.log(`\nslowest page median: ${worstPage.toFixed(1)} ms loaded afresh until the first screen of its data is in the page (${worstPainted.toFixed(1)} ms until painted, ${worstPresented.toFixed(1)} until presented), ${worstClick.toFixed(1)} ms by a link (target: under 100 ms); Chromium's floor ${median(floorTimes).toFixed(1)} ms`);
