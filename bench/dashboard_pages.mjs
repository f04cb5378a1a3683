// The page-time half of bench/dashboard: seeds a host's task hub through the dashboard's
// API, then loads each page in Chromium and times it.
//
//   node bench/dashboard_pages.mjs <dashboard URL> <N> <repeats>
//
// A page's time runs from the start of its navigation (performance's time origin) to
// the moment the page marks its data rendered (body[data-loaded], watched by a
// MutationObserver installed before the page's own script runs).

import { launchChromium } from '../tests/browser/chromium.mjs';

const [url, countText = '50000', repeatsText = '7'] = process.argv.slice(2);
if (!url) {
  console.error('usage: node bench/dashboard_pages.mjs <dashboard URL> [N] [repeats]');
  process.exit(2);
}
const count = Number(countText);
const repeats = Number(repeatsText);

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
  const hello = await api('/api/instances', { name: 'hello_cities' });
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
  return hello.instance_id;
}

function median(values) {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

async function timePage(page, path) {
  const times = [];
  for (let run = 0; run < repeats; run++) {
    await page.goto(new URL(path, url).href, { waitUntil: 'commit' });
    await page.waitForFunction(() => window.__dashboardLoadedAt !== undefined, null, { timeout: 30000 });
    times.push(await page.evaluate(() => window.__dashboardLoadedAt));
  }
  return times;
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

const helloId = await seed();
const pages = [
  ['instances, first page (50)', '/instances', '/api/instances?page_size=50'],
  ['instances, 500 per page', '/instances?page_size=500', '/api/instances?page_size=500'],
  ['instances, status COMPLETED', '/instances?status=COMPLETED', '/api/instances?status=COMPLETED&page_size=50'],
  ['instances, status RUNNING (1 of N)', '/instances?status=RUNNING', '/api/instances?status=RUNNING&page_size=50'],
  ['instances, id prefix', '/instances?prefix=seed-0424', '/api/instances?prefix=seed-0424&page_size=50'],
  ['instances, name (scans)', '/instances?name=bench_empty', '/api/instances?name=bench_empty&page_size=50'],
  ['instances, rare name (scan budget)', '/instances?name=hello_cities', '/api/instances?name=hello_cities&page_size=50'],
  ['instance with history', `/instance?id=${encodeURIComponent(helloId)}`, `/api/history?id=${encodeURIComponent(helloId)}`],
  ['entities', '/entities', '/api/entities?page_size=50'],
  ['plugins', '/plugins', '/api/plugins'],
  ['counts (overview)', null, '/api/overview'],
];

const browser = await launchChromium();
const page = await browser.newPage();
await page.addInitScript(() => {
  const observer = new MutationObserver(() => {
    if (document.body?.dataset.loaded && window.__dashboardLoadedAt === undefined) {
      window.__dashboardLoadedAt = performance.now();
      observer.disconnect();
    }
  });
  observer.observe(document, { subtree: true, attributes: true, attributeFilter: ['data-loaded'] });
});

console.log(`\n${count} instances, ${repeats} loads each; milliseconds`);
console.log('| page | page median | page worst | API median | API worst |');
console.log('|---|---|---|---|---|');
let worstPage = 0;
for (const [label, path, apiPath] of pages) {
  const pageTimes = path ? await timePage(page, path) : [];
  const apiTimes = await timeApi(apiPath);
  if (pageTimes.length) worstPage = Math.max(worstPage, median(pageTimes));
  const show = (values, pick) => (values.length ? pick(values).toFixed(1) : '–');
  console.log(`| ${label} | ${show(pageTimes, median)} | ${show(pageTimes, (v) => Math.max(...v))} | ${show(apiTimes, median)} | ${show(apiTimes, (v) => Math.max(...v))} |`);
}
await browser.close();
console.log(`\nslowest page median: ${worstPage.toFixed(1)} ms (target: under 100 ms)`);
