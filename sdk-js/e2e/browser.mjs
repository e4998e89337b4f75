// End-to-end driver: real Chromium (playwright-core) against a page on one origin and the real
// collector on another, so every /collect request is cross-origin (CORS). Run by
// tests/sdk/test_browser_e2e.py, which owns the servers, the project registry and Kafka and checks
// what arrived; this script drives the browser and prints ONE JSON line of what it saw. Usage:
//   node e2e/browser.mjs '{"base": "http://localhost:P1", "other": "http://127.0.0.1:P1",
//     "log": "http://127.0.0.1:P1/log", "endpoint": "http://127.0.0.1:P2/collect", "key": "...",
//     "projects": {"design": "...", "keyed": "...", "limited": "...", "elsewhere": "..."}}'
// `base` serves the page (`/?opts=<init options as JSON>`, the loader snippet calling
// `RadixInsight.init(opts)`) and `/empty`; `log` lists the /collect requests the collector saw.
// Projects: `design` keyless from `base`; `keyed` needs `key`; `limited` keyless with a tiny rate limit;
// `elsewhere` keyless from another origin only. `other` serves the same pages from an origin no project allows.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const { base, other, log, endpoint, projects, key } = JSON.parse(process.argv[2]);
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
// Without the background-networking flags Chromium keeps dialling Google hosts the closed network refuses.
const ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'];
/** A request to the collector's /collect (the page URL carries the endpoint too, percent-encoded). */
const COLLECT = (url) => (typeof url == 'string' ? url : url.href).split('?')[0] == endpoint;
const keyless = { projectId: projects.design, endpoint };

const pageUrl = (options, at = base) => `${at}/?opts=${encodeURIComponent(JSON.stringify(options))}`;
const queued = () => Object.keys(localStorage).filter((k) => k.includes('_q.')).flatMap((k) => JSON.parse(localStorage.getItem(k)).e);
const collectorLog = async () => (await fetch(log)).json();
/** Waits until the collector has seen a request more than `before` (a log length). */
const nextRequest = (before) => until('a request to the collector', async () => (await collectorLog()).length > before, 10_000);

async function until(what, check, timeoutMs = 30_000) {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** A browser with a fresh profile (its own --user-data-dir), closed and deleted afterwards. */
async function withBrowser(scenario) {
  const dir = mkdtempSync(join(tmpdir(), 'ri-chromium-'));
  const context = await chromium.launchPersistentContext(dir, { executablePath: CHROMIUM, headless: true, args: ARGS });
  let accepted = 0; // events the collector answered 202 for, over fetch
  context.on('response', async (r) => {
    if (COLLECT(r.url()) && r.status() == 202) accepted += (await r.json()).accepted;
  });
  try {
    return await scenario(context, () => accepted);
  } finally {
    await context.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * The design's example (section 3.1), as written (no key: the project is keyless from this origin),
 * on a page that loads the SDK with the loader snippet.
 */
const design = () =>
  withBrowser(async (context, accepted) => {
    const page = await context.newPage();
    const options = { projectId: projects.design, endpoint, batchSize: 10, batchInterval: 5000, debug: false };
    await page.goto(pageUrl(options));
    const seen = await page.evaluate(() => {
      RadixInsight.identify('user-123', { email: 'user@company.com', department: 'Sales', role: 'Manager' });
      RadixInsight.track('button_click', { button_id: 'submit-form', form_id: 'lead-capture', page_section: 'hero' });
      return {
        url: location.href,
        title: document.title,
        user_agent: navigator.userAgent,
        locale: navigator.language,
        timezone: Intl.DateTimeFormat().resolvedOptions().timeZone,
        screen: { width: screen.width, height: screen.height },
      };
    });
    await until('2 events accepted', () => accepted() >= 2, 20_000); // the 5 s batch interval
    return { ...seen, options };
  });

/**
 * Offline: the collector route is aborted, events queue, the page reloads (more events), the network
 * comes back. Every event must then arrive exactly once, with the ids of the failed attempts.
 */
const offline = () =>
  withBrowser(async (context, accepted) => {
    const attempted = new Set();
    let aborts = 0;
    await context.route(COLLECT, (route) => {
      for (const e of JSON.parse(route.request().postData())) attempted.add(e.event_id);
      aborts++;
      return route.abort('internetdisconnected');
    });
    const page = await context.newPage();
    const url = pageUrl({ ...keyless, batchSize: 5, batchInterval: 1000 });
    await page.goto(url);
    await page.evaluate(() => {
      for (let seq = 0; seq < 12; seq++) RadixInsight.track('offline_event', { seq });
    });
    await until('a failed send', () => aborts > 0);
    await page.reload();
    await page.evaluate(() => {
      for (let seq = 12; seq < 15; seq++) RadixInsight.track('offline_event', { seq });
    });
    // The reloaded page takes over the first page's stored events and retries them with its own.
    await until('all 15 events attempted', () => attempted.size == 15);
    const stored = await page.evaluate(() =>
      Object.keys(localStorage)
        .filter((k) => k.includes('_q.'))
        .flatMap((k) => JSON.parse(localStorage.getItem(k)).e.map((e) => e.event_id)),
    );
    const abortsOffline = aborts;
    await context.unroute(COLLECT);
    await until('15 events accepted', () => accepted() >= 15, 90_000); // backoff: at most 60 s
    await page.waitForTimeout(3000); // three more ticks: nothing may be sent again
    return { attempted: [...attempted], stored, aborts: abortsOffline, accepted: accepted() };
  });

/**
 * Two tabs of one site, offline, each with its own queued events; one tab closes, the network comes
 * back: the open tab sends its own events and the closed tab's, and each event arrives once.
 */
const tabs = () =>
  withBrowser(async (context, accepted) => {
    const attempted = new Set();
    await context.route(COLLECT, (route) => {
      for (const e of JSON.parse(route.request().postData())) attempted.add(e.event_id);
      return route.abort('internetdisconnected');
    });
    const url = pageUrl({ ...keyless, batchSize: 50, batchInterval: 1000 });
    const [first, second] = [await context.newPage(), await context.newPage()];
    await first.goto(url);
    await second.goto(url);
    await first.evaluate(() => {
      for (let seq = 0; seq < 5; seq++) RadixInsight.track('tab_event', { seq, tab: 'first' });
    });
    await second.evaluate(() => {
      for (let seq = 5; seq < 10; seq++) RadixInsight.track('tab_event', { seq, tab: 'second' });
    });
    // The first failure sets a retry time shared by the tabs, so the second may not have tried yet.
    await until('a failed send', () => attempted.size >= 5);
    const stored = await second.evaluate(() => Object.keys(localStorage).filter((k) => k.includes('_q.')).length);
    // runBeforeUnload: a close with pagehide (its queue is left to the open tab); it does not wait.
    await Promise.all([first.waitForEvent('close'), first.close({ runBeforeUnload: true })]);
    await context.unrouteAll({ behavior: 'ignoreErrors' }); // a handler may still answer for the closed tab
    await until('10 events accepted', () => accepted() >= 10, 90_000);
    await second.waitForTimeout(3000);
    return { accepted: accepted(), queues_before_close: stored };
  });

/** A page unload delivers the queued tail by a keyless sendBeacon; the next page does not send it again. */
const beacon = () =>
  withBrowser(async (context, accepted) => {
    const page = await context.newPage();
    const options = { ...keyless, batchSize: 50, batchInterval: 60_000 };
    await page.goto(pageUrl(options));
    await page.evaluate(() => {
      for (let seq = 0; seq < 4; seq++) RadixInsight.track('tail_event', { seq });
    });
    const before = (await collectorLog()).length;
    await page.goto(base + '/empty'); // pagehide
    await nextRequest(before);
    await page.goto(pageUrl({ ...options, batchInterval: 500 }));
    await page.waitForTimeout(2000);
    return { accepted_by_fetch: accepted() };
  });

/**
 * With `apiKey`: two fetches carry X-API-Key (the first is preflighted, the second uses the cached
 * preflight), then a page unload sends the tail by beacon with `?api_key=`.
 */
const keyed = () =>
  withBrowser(async (context, accepted) => {
    const page = await context.newPage();
    await page.goto(pageUrl({ projectId: projects.keyed, endpoint, apiKey: key, batchSize: 50, batchInterval: 60_000 }));
    await page.evaluate(() => {
      RadixInsight.track('keyed_event', { seq: 0 });
      RadixInsight.track('keyed_event', { seq: 1 });
      return RadixInsight.flush();
    });
    await until('2 events accepted', () => accepted() >= 2, 10_000);
    await page.evaluate(() => {
      RadixInsight.track('keyed_event', { seq: 2 });
      return RadixInsight.flush();
    });
    await until('3 events accepted', () => accepted() >= 3, 10_000);
    await page.evaluate(() => {
      RadixInsight.track('keyed_event', { seq: 3 });
      RadixInsight.track('keyed_event', { seq: 4 });
    });
    const before = (await collectorLog()).length;
    await page.goto(base + '/empty'); // pagehide: the beacon
    await nextRequest(before);
    await page.waitForTimeout(500);
    return { accepted_by_fetch: accepted() };
  });

/**
 * A project with a tiny rate limit: the second batch is answered 429 with Retry-After; the SDK must
 * read that header across origins and resend the same events no sooner. (The collector's log has
 * the times; this only records what the browser saw.)
 */
const limited = () =>
  withBrowser(async (context, accepted) => {
    const statuses = [];
    context.on('response', (r) => COLLECT(r.url()) && r.request().method() == 'POST' && statuses.push(r.status()));
    const page = await context.newPage();
    await page.goto(pageUrl({ projectId: projects.limited, endpoint, batchSize: 2, batchInterval: 200 }));
    await page.evaluate(() => {
      RadixInsight.track('limited_event', { seq: 0 });
      RadixInsight.track('limited_event', { seq: 1 });
    });
    await until('2 events accepted', () => accepted() >= 2, 10_000);
    await page.evaluate(() => {
      RadixInsight.track('limited_event', { seq: 2 });
      RadixInsight.track('limited_event', { seq: 3 });
    });
    await until('4 events accepted', () => accepted() >= 4, 20_000);
    await page.waitForTimeout(1000);
    return { statuses, accepted: accepted() };
  });

/**
 * Origins the collector refuses (403). From an origin no project allows, the answer has no CORS
 * headers: the SDK sees a network error, keeps the event and retries. From an allowed origin, for a
 * project that does not allow it, the SDK reads the 403 and drops the batch (no retry on 4xx).
 */
const foreign = () =>
  withBrowser(async (context, accepted) => {
    const postsFrom = async (origin) => (await collectorLog()).filter((r) => r.method == 'POST' && r.origin == origin);
    const stranger = await context.newPage();
    await stranger.goto(pageUrl({ ...keyless, batchSize: 1, batchInterval: 500 }, other));
    await stranger.evaluate(() => RadixInsight.track('stranger_event', {}));
    await until('a retry from the stranger origin', async () => (await postsFrom(other)).length >= 2, 15_000);
    const kept = (await stranger.evaluate(queued)).map((e) => e.event_name);
    const page = await context.newPage();
    await page.goto(pageUrl({ projectId: projects.elsewhere, endpoint, batchSize: 1, batchInterval: 500 }));
    await page.evaluate(() => RadixInsight.track('elsewhere_event', {}));
    await until('the 403', async () => (await postsFrom(base)).some((r) => r.status == 403), 10_000);
    await page.waitForTimeout(2000); // four ticks: it is not sent again
    const left = (await page.evaluate(queued)).length;
    return { kept, left, accepted: accepted() };
  });

const result = { ms: {} };
for (const [name, scenario] of Object.entries({ design, offline, tabs, beacon, keyed, limited, foreign })) {
  const start = Date.now();
  result[name] = await scenario();
  result.ms[name] = Date.now() - start;
}
console.log(JSON.stringify(result));
