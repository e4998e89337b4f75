// Unit-test harness: a fake collector behind fetch and sendBeacon, fake timers, and "tabs"
// (SDK instances sharing this window's localStorage, as tabs of one origin do).
import { afterEach, beforeEach, vi } from 'vitest';
import { createClient } from '../src/client';
import type { EventRecord, Options, RadixInsightApi } from '../src/types';

export type Sent = EventRecord & { sent_at: string; queue_dropped?: number };
export interface Request {
  url: string;
  headers: Record<string, string>;
  events: Sent[];
  /** The fake collector's answer (0: network error); beacons get none. */
  status?: number;
}
type Reply = number | [number, Record<string, string>] | 'network-error';

export const collector = {
  requests: [] as Request[],
  beacons: [] as Request[],
  /** Replies for the next requests, in order; then 202. */
  replies: [] as Reply[],
  beaconAccepted: true,
  /** Every event received, by fetch or beacon. */
  events(): Sent[] {
    return [...this.requests, ...this.beacons].flatMap((r) => r.events);
  },
  /** Events the collector accepted (2xx) or got by beacon. */
  delivered(): Sent[] {
    return [...this.requests.filter((r) => r.status! >= 200 && r.status! < 300), ...this.beacons].flatMap((r) => r.events);
  },
};

let project = 0;
/** A fresh project id per test, so one test's tabs never see another's storage keys. */
export const newProject = () => `p${++project}`;

export const ENDPOINT = 'https://collect.example/collect';

export function tab(options: Partial<Options> = {}, projectId = `p${project}`): RadixInsightApi {
  const sdk = createClient();
  sdk.init({ projectId, endpoint: ENDPOINT, ...options });
  return sdk;
}

/** Let timers up to `ms` from now fire, with the promises they start. */
export const wait = (ms = 0) => vi.advanceTimersByTimeAsync(ms);

export const pagehide = () => window.dispatchEvent(new Event('pagehide'));

/** The page unloads (pagehide) and its scripts stop: the SDK instances so far are gone. */
export const reload = () => {
  pagehide();
  vi.clearAllTimers();
};

beforeEach(() => {
  vi.useFakeTimers({ now: Date.parse('2026-11-25T10:00:00Z') });
  localStorage.clear();
  newProject();
  collector.requests = [];
  collector.beacons = [];
  collector.replies = [];
  collector.beaconAccepted = true;
  vi.stubGlobal(
    'fetch',
    vi.fn(async (url: string, init: RequestInit) => {
      const reply = collector.replies.shift() ?? 202;
      const [status, headers] = typeof reply == 'number' ? [reply, {}] : reply == 'network-error' ? [0, {}] : reply;
      collector.requests.push({
        url,
        headers: { ...(init.headers as Record<string, string>) },
        events: JSON.parse(init.body as string),
        status,
      });
      if (!status) throw new TypeError('Failed to fetch');
      return new Response(status == 202 ? '{"accepted":1}' : '{}', { status, headers });
    }),
  );
  vi.spyOn(navigator, 'sendBeacon').mockImplementation((url, body) => {
    if (collector.beaconAccepted) collector.beacons.push({ url: String(url), headers: {}, events: JSON.parse(String(body)) });
    return collector.beaconAccepted;
  });
});

afterEach(() => {
  vi.useRealTimers();
  vi.unstubAllGlobals();
  vi.restoreAllMocks();
});
