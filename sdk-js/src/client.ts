import { watchHistory } from './autopage';
import { backoff, retryAfter } from './backoff';
import { browserContext } from './context';
import { openOutbox, type Outbox } from './outbox';
import { cookieKV, type KV, memoryKV, storageKV, usableLocalStorage } from './storage';
import type { EventRecord, Options, Properties, RadixInsightApi } from './types';
import { uuid } from './uuid';

const MAX_BATCH_EVENTS = 100; // per request; the collector takes up to 500
const MAX_BATCH_CHARS = 5e5; // per request; the collector takes 5 MB
const MAX_EVENT_BYTES = 1e5; // the collector refuses events over 100 KiB (UTF-8); room left for sent_at
const REQUEST_TIMEOUT_MS = 3e4;
const BEACON_EVENTS = 20; // per beacon: a page may have only 64 KB of beacons in flight

type Config = Required<Pick<Options, 'batchSize' | 'batchInterval' | 'sessionTimeout' | 'maxQueueSize'>> & Options;

/** A new, uninitialised SDK instance. Calls made before `init` are kept and replayed by it. */
export function createClient(): RadixInsightApi {
  let cfg: Config;
  let kv: KV;
  let box: Outbox;
  let prefix: string; // storage keys: ids `a`/`u`, session `s`, opt-out `o`, retry time `n`, dropped count `d`
  let ready = false;
  let blocked = false; // Do Not Track
  let failures = 0; // consecutive failed sends of this tab
  let inflight: string[] = [];
  let busy: Promise<void> | undefined;
  const pending: [keyof RadixInsightApi, unknown[]][] = [];

  const log = (...args: unknown[]): void => void (cfg.debug && console.log('[RadixInsight]', ...args));
  const off = () => blocked || kv.get(prefix + 'o') == '1';
  const notBefore = () => +kv.get(prefix + 'n')!;
  const ids = (events: EventRecord[]) => events.map((e) => e.event_id);

  const enqueue = (name: string, properties?: Properties) => {
    if (off()) return;
    const now = new Date();
    let anonymous_id = kv.get(prefix + 'a');
    if (!anonymous_id) kv.set(prefix + 'a', (anonymous_id = uuid()));
    // Session id and last activity, shared by the tabs through the store.
    let [session_id, last] = (kv.get(prefix + 's') || '').split(' ');
    if (!session_id || +now - +last > cfg.sessionTimeout) session_id = uuid();
    kv.set(prefix + 's', session_id + ' ' + +now);
    const event: EventRecord = {
      event_id: uuid(),
      event_name: '' + name,
      project_id: cfg.projectId,
      timestamp: now.toISOString(),
      user: { user_id: kv.get(prefix + 'u'), anonymous_id, session_id },
      context: browserContext(),
      properties: { ...properties },
    };
    if (new TextEncoder().encode(JSON.stringify(event)).length > MAX_EVENT_BYTES) return log('dropped, over 100 KB:', name);
    log('queued', event);
    if (box.add(event) >= cfg.batchSize) setTimeout(send);
  };

  /** The request body: `sent_at` lets the pipeline correct client clock skew. */
  const body = (events: EventRecord[]) => {
    const sent_at = new Date().toISOString();
    const dropped = +kv.get(prefix + 'd')!;
    return JSON.stringify(events.map((e) => ({ ...e, sent_at, ...(dropped && { queue_dropped: dropped }) })));
  };

  const send = (): Promise<void> => (busy ||= drain().finally(() => (busy = undefined)));

  async function drain() {
    while (!off() && Date.now() >= notBefore()) {
      await box.adopt();
      const batch = box.peek(MAX_BATCH_EVENTS, MAX_BATCH_CHARS);
      if (!batch.length) return;
      inflight = ids(batch);
      let status = 0;
      let wait: number | undefined;
      try {
        const response = await fetch(cfg.endpoint, {
          method: 'POST',
          body: body(batch), // text/plain: a CORS "simple" request when keyless, no preflight
          headers: cfg.apiKey ? { 'X-API-Key': cfg.apiKey } : {},
          signal: AbortSignal.timeout?.(REQUEST_TIMEOUT_MS), // a stalled request must not stop sending
        });
        status = response.status;
        if (status == 429 || status == 503) wait = retryAfter(response.headers.get('Retry-After'), Date.now());
      } catch {} // network error: status 0
      inflight = [];
      if (!status || status == 429 || status >= 500) {
        const delay = wait ?? backoff(++failures);
        if (wait != null) failures++;
        kv.set(prefix + 'n', '' + (Date.now() + delay)); // shared: every tab waits
        setTimeout(send, delay);
        return log('send failed', status, 'retry in ms', delay);
      }
      // Delivered, or refused for good (other 4xx: a retry would be refused again).
      if (status >= 300) log('refused', status, batch);
      failures = 0;
      kv.del(prefix + 'n');
      box.remove(ids(batch));
    }
  }

  /** The page is hidden or going away: hand the queue to sendBeacon, which outlives the page. */
  const hide = (leaving?: boolean) => {
    // While a send of any tab has failed and not yet succeeded (`n` is set), a beacon would likely be
    // lost too: keep the events stored for the next page instead.
    if (!off() && !kv.get(prefix + 'n') && navigator.onLine !== false && navigator.sendBeacon) {
      const url = cfg.apiKey
        ? cfg.endpoint + (cfg.endpoint.includes('?') ? '&' : '?') + 'api_key=' + encodeURIComponent(cfg.apiKey)
        : cfg.endpoint;
      const rest = box.peek(cfg.maxQueueSize).filter((e) => !inflight.includes(e.event_id));
      for (let i = 0; i < rest.length; i += BEACON_EVENTS) {
        const chunk = rest.slice(i, i + BEACON_EVENTS);
        if (!navigator.sendBeacon(url, body(chunk))) break;
        box.remove(ids(chunk));
      }
    }
    if (leaving) box.release();
  };

  const init = (options: Options) => {
    if (ready) return log('init called twice; ignored');
    if (!options?.projectId || !options.endpoint) return console.error('[RadixInsight] init needs projectId and endpoint');
    cfg = { batchSize: 10, batchInterval: 5e3, sessionTimeout: 18e5, maxQueueSize: 1e3, ...options };
    prefix = 'ri_' + cfg.projectId.replace(/\W/g, '_') + '_';
    const ls = cfg.persistence == 'memory' ? undefined : usableLocalStorage();
    kv = cfg.persistence == 'cookie' ? cookieKV(cfg.cookieDomain) : ls ? storageKV(ls) : memoryKV();
    box = openOutbox(prefix, ls, cfg.maxQueueSize, (n) => {
      kv.set(prefix + 'd', '' + (+kv.get(prefix + 'd')! + n));
      log('queue full, dropped oldest:', n);
    });
    const nav = navigator as Navigator & { globalPrivacyControl?: boolean };
    blocked = !!cfg.respectDoNotTrack && (nav.doNotTrack == '1' || nav.globalPrivacyControl == true);
    ready = true;
    addEventListener('pagehide', () => hide(true));
    document.addEventListener('visibilitychange', () => document.visibilityState == 'hidden' && hide());
    addEventListener('pageshow', (e) => e.persisted && box.touch()); // back from the back/forward cache
    setInterval(() => {
      box.touch();
      send();
    }, cfg.batchInterval);
    if (cfg.autoPageviews) {
      api.page();
      if (cfg.autoPageviews == 'history') watchHistory(() => api.page());
    }
    // What earlier pages left behind goes with the first tick's batch.
    for (const [method, args] of pending.splice(0)) (api[method] as (...a: unknown[]) => void)(...args);
  };

  const api: RadixInsightApi = {
    init,
    track: (name, properties) => enqueue(name, properties),
    page: (properties) => enqueue('page_view', properties),
    identify(userId, traits) {
      if (off()) return;
      kv.set(prefix + 'u', '' + userId);
      enqueue('identify', traits);
    },
    reset() {
      for (const k of 'uas') kv.del(prefix + k);
    },
    flush: () => send(),
    optOut() {
      kv.set(prefix + 'o', '1');
      box.clear();
    },
    optIn: () => kv.del(prefix + 'o'),
  };
  // Before init, every call but init waits in `pending`.
  for (const method of Object.keys(api) as (keyof RadixInsightApi)[]) {
    const run = api[method] as (...a: unknown[]) => unknown;
    (api[method] as (...a: unknown[]) => unknown) = (...args) =>
      ready || method == 'init' ? run(...args) : method == 'flush' ? Promise.resolve() : void pending.push([method, args]);
  }
  return api;
}
