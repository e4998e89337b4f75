import { describe, expect, test, vi } from 'vitest';
import { collector, reload, tab, wait } from './harness';

const queueKeys = () => Object.keys(localStorage).filter((k) => k.includes('_q.'));
const sentIds = () => collector.events().map((e) => e.event_id);
const offline = () => (collector.replies = Array(1000).fill('network-error'));
const online = () => (collector.replies = []);

describe('persisted queue', () => {
  test('offline: events wait in localStorage; a reload sends them once, same event ids', async () => {
    const before = tab({ batchInterval: 1000 });
    offline();
    for (let i = 0; i < 5; i++) before.track('e', { i });
    await wait(3000);
    const attempted = new Set(sentIds());
    expect(attempted.size).toBe(5);
    reload(); // after failures, no beacon: the queue is released to the next page
    expect(collector.beacons).toHaveLength(0);

    online();
    collector.requests = [];
    const after = tab({ batchInterval: 1000 });
    after.track('after-reload');
    await wait(65_000); // the backoff of the first page is shared: at most 60 s
    const names = collector.events().map((e) => e.event_name);
    expect(names).toEqual(['e', 'e', 'e', 'e', 'e', 'after-reload']);
    expect(new Set(sentIds().slice(0, 5))).toEqual(attempted);
    await wait(30_000);
    expect(collector.events()).toHaveLength(6); // and never again, by either page
    expect(queueKeys()).toEqual([]);
  });

  test('the cap drops the oldest first and every later batch reports the count', async () => {
    const sdk = tab({ maxQueueSize: 5, batchInterval: 1000 });
    offline();
    for (let i = 0; i < 8; i++) sdk.track('e', { i });
    await wait(1000);
    online();
    await wait(70_000);
    const delivered = collector.requests.at(-1)!.events;
    expect(delivered.map((e) => e.properties.i)).toEqual([3, 4, 5, 6, 7]);
    expect(delivered.every((e) => e.queue_dropped == 3)).toBe(true);
  });

  test('storage full: the oldest quarter is dropped and counted, the new event kept', async () => {
    const sdk = tab({ batchInterval: 60_000 });
    for (let i = 0; i < 8; i++) sdk.track('e', { i });
    const setItem = localStorage.setItem.bind(localStorage);
    let refuse = 1; // the next queue write fails once, as when the quota is reached
    const spy = vi.spyOn(localStorage, 'setItem').mockImplementation((k, v) => {
      if (k.includes('_q.') && refuse-- > 0) throw new DOMException('full', 'QuotaExceededError');
      setItem(k, v);
    });
    sdk.track('e', { i: 8 });
    spy.mockRestore();
    await sdk.flush();
    expect(collector.events().map((e) => e.properties.i)).toEqual([3, 4, 5, 6, 7, 8]);
    expect(collector.events()[0].queue_dropped).toBe(3);
  });

  test("memory persistence stores nothing: a reload loses the queue", async () => {
    const before = tab({ persistence: 'memory', batchInterval: 1000 });
    offline();
    before.track('e');
    await wait(100);
    expect(Object.keys(localStorage)).toEqual([]);
    reload();
    online();
    collector.requests = [];
    tab({ persistence: 'memory', batchInterval: 1000 });
    await wait(2000);
    expect(collector.requests).toHaveLength(0);
  });
});

describe('several tabs', () => {
  test("a live tab's queue is never sent by another tab", async () => {
    const a = tab({ batchInterval: 1000 });
    const b = tab({ batchInterval: 1000 });
    offline();
    a.track('from-a');
    b.track('from-b');
    await wait(1000);
    online();
    await wait(120_000);
    const delivered = collector.delivered();
    expect(delivered.map((e) => e.event_name).sort()).toEqual(['from-a', 'from-b']);
    expect(new Set(delivered.map((e) => e.event_id)).size).toBe(2);
    // Every request carried one tab's events only.
    expect(collector.requests.every((r) => r.events.length == 1)).toBe(true);
  });

  test('a closed tab\'s queue is adopted by exactly one of the open tabs', async () => {
    const closing = tab({ batchInterval: 1000 });
    offline();
    for (let i = 0; i < 3; i++) closing.track('orphan', { i });
    await wait(100);
    reload(); // this tab goes; two others open
    online();
    collector.requests = [];
    tab({ batchInterval: 1000 });
    tab({ batchInterval: 1000 });
    await wait(70_000);
    expect(collector.events().map((e) => e.properties.i)).toEqual([0, 1, 2]); // sent once, by one tab
  });

  test('a crashed tab (no pagehide) is adopted once its queue is 5 minutes stale', async () => {
    const crashed = tab({ batchInterval: 1000 });
    offline();
    crashed.track('orphan');
    await wait(100);
    // Simulate the crash: its timers stop, its stored queue stays.
    vi.clearAllTimers();
    online();
    collector.requests = [];
    tab({ batchInterval: 1000 });
    await wait(290_000);
    expect(collector.events()).toHaveLength(0);
    await wait(15_000);
    expect(collector.events().map((e) => e.event_name)).toEqual(['orphan']);
  });
});
