import { describe, expect, test, vi } from 'vitest';
import { backoff, retryAfter } from '../src/backoff';
import { collector, tab, wait } from './harness';

const names = () => collector.requests.map((r) => r.events.map((e) => e.event_name));

describe('batching', () => {
  test('batchSize events go at once, in one request', async () => {
    const sdk = tab({ batchSize: 3, batchInterval: 60_000 });
    sdk.track('a');
    sdk.track('b');
    await wait(10);
    expect(collector.requests).toHaveLength(0);
    sdk.track('c');
    await wait(10);
    expect(names()).toEqual([['a', 'b', 'c']]);
  });

  test('fewer than batchSize go when batchInterval elapses', async () => {
    const sdk = tab({ batchSize: 10, batchInterval: 2000 });
    sdk.track('a');
    sdk.track('b');
    await wait(1999);
    expect(collector.requests).toHaveLength(0);
    await wait(1);
    expect(names()).toEqual([['a', 'b']]);
  });

  test('flush() sends now and resolves once delivered', async () => {
    const sdk = tab({ batchInterval: 60_000 });
    sdk.track('a');
    await sdk.flush();
    expect(names()).toEqual([['a']]);
  });

  test('a backlog drains in requests of at most 100 events, every event once', async () => {
    const sdk = tab({ batchInterval: 60_000, batchSize: 1000 });
    for (let i = 0; i < 250; i++) sdk.track('e', { i });
    await sdk.flush();
    expect(collector.requests.map((r) => r.events.length)).toEqual([100, 100, 50]);
    expect(collector.events().map((e) => e.properties.i)).toEqual([...Array(250).keys()]);
  });
});

describe('backoff and retries', () => {
  test('schedule: 1 s doubling to a 60 s cap, jitter within the upper half', () => {
    const low = [1, 2, 3, 4, 5, 6, 7, 8, 9].map((n) => backoff(n, () => 0));
    const high = [1, 2, 3, 4, 5, 6, 7, 8, 9].map((n) => backoff(n, () => 1));
    expect(low).toEqual([500, 1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000]);
    expect(high).toEqual([1000, 2000, 4000, 8000, 16000, 32000, 60000, 60000, 60000]);
  });

  test('Retry-After: seconds or an HTTP date, clamped to [0, 1 h]', () => {
    const now = Date.parse('2026-11-25T10:00:00Z');
    expect(retryAfter('7', now)).toBe(7000);
    expect(retryAfter('Wed, 25 Nov 2026 10:00:30 GMT', now)).toBe(30000);
    expect(retryAfter('Wed, 25 Nov 2026 09:00:00 GMT', now)).toBe(0);
    expect(retryAfter('99999', now)).toBe(3_600_000);
    expect(retryAfter(null, now)).toBeUndefined();
    expect(retryAfter('soon', now)).toBeUndefined();
  });

  test('network errors retry on the backoff schedule with the same event ids', async () => {
    const sdk = tab({ batchInterval: 600_000 });
    collector.replies = ['network-error', 'network-error', 'network-error'];
    const times: number[] = [];
    const fetch = globalThis.fetch;
    globalThis.fetch = (...a: Parameters<typeof fetch>) => (times.push(Date.now()), fetch(...a));
    const start = Date.now();
    sdk.track('a');
    sdk.track('b');
    await sdk.flush();
    await wait(20_000);
    // Jitter puts retry n in [2^(n-1) / 2, 2^(n-1)] seconds after the previous attempt.
    const gaps = times.slice(1).map((t, i) => t - times[i]);
    expect(times[0] - start).toBe(0);
    expect(gaps).toHaveLength(3);
    gaps.forEach((gap, i) => {
      expect(gap).toBeGreaterThanOrEqual(500 * 2 ** i);
      expect(gap).toBeLessThanOrEqual(1000 * 2 ** i);
    });
    const ids = collector.requests.map((r) => r.events.map((e) => e.event_id).join());
    expect(new Set(ids).size).toBe(1); // the same events, same ids, each attempt
    expect(collector.requests[3].events[0].sent_at).not.toBe(collector.requests[0].events[0].sent_at);
  });

  test.each([429, 503])('%i with Retry-After: nothing is sent before it, then the batch is', async (status) => {
    const sdk = tab({ batchInterval: 1000 });
    collector.replies = [[status, { 'Retry-After': '7' }]];
    sdk.track('a');
    await sdk.flush();
    await wait(6990);
    expect(collector.requests).toHaveLength(1); // interval ticks came and went
    sdk.track('b');
    await sdk.flush(); // an explicit flush honours it too
    expect(collector.requests).toHaveLength(1);
    await wait(20);
    expect(names()).toEqual([['a'], ['a', 'b']]);
  });

  test('the Retry-After wait is shared by the tabs and survives a reload', async () => {
    const first = tab({ batchInterval: 1000 });
    collector.replies = [[429, { 'Retry-After': '30' }]];
    first.track('a');
    await first.flush();
    const second = tab({ batchInterval: 1000 });
    second.track('b');
    await wait(29_000);
    expect(collector.requests).toHaveLength(1);
    await wait(2000);
    expect(collector.events().map((e) => e.event_name).sort()).toEqual(['a', 'a', 'b']);
  });

  test('a request with no answer is abandoned after 30 s and retried', async () => {
    const sdk = tab({ batchInterval: 600_000 });
    const timeouts: number[] = [];
    const controllers: AbortController[] = [];
    vi.spyOn(AbortSignal, 'timeout').mockImplementation((ms) => {
      timeouts.push(ms);
      const c = new AbortController();
      controllers.push(c);
      setTimeout(() => c.abort(new DOMException('timeout', 'TimeoutError')), ms);
      return c.signal;
    });
    const stalled = vi.fn(
      (_url: string, init: RequestInit) =>
        new Promise<Response>((_resolve, reject) => init.signal!.addEventListener('abort', () => reject(init.signal!.reason))),
    );
    vi.stubGlobal('fetch', stalled);
    sdk.track('a');
    void sdk.flush();
    await wait(29_999);
    expect(stalled).toHaveBeenCalledTimes(1);
    await wait(1 + 1000); // abandoned, then the first backoff (at most 1 s)
    expect(stalled).toHaveBeenCalledTimes(2);
    expect(timeouts).toEqual([30_000, 30_000]);
  });

  test.each([500, 502])('%i is retried', async (status) => {
    const sdk = tab();
    collector.replies = [status];
    sdk.track('a');
    await sdk.flush();
    await wait(1000);
    expect(names()).toEqual([['a'], ['a']]);
  });

  test.each([400, 401, 403, 413, 415])('%i is not retried: the batch is dropped, later events go', async (status) => {
    const sdk = tab({ batchInterval: 1000 });
    collector.replies = [status];
    sdk.track('a');
    await sdk.flush();
    sdk.track('b');
    await wait(60_000);
    expect(names()).toEqual([['a'], ['b']]);
  });
});
