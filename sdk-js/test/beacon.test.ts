import { describe, expect, test, vi } from 'vitest';
import { ENDPOINT, collector, pagehide, reload, tab, wait } from './harness';

const hidden = (state: 'hidden' | 'visible') => {
  vi.spyOn(document, 'visibilityState', 'get').mockReturnValue(state);
  document.dispatchEvent(new Event('visibilitychange'));
};

describe('unload', () => {
  test('pagehide sends the queued tail by sendBeacon, with the key in the query string', async () => {
    const sdk = tab({ apiKey: 'rk 1', batchInterval: 60_000 });
    for (let i = 0; i < 45; i++) sdk.track('tail', { i });
    pagehide();
    expect(collector.requests).toHaveLength(0);
    expect(collector.beacons.map((b) => b.events.length)).toEqual([20, 20, 5]);
    expect(collector.beacons[0].url).toBe(ENDPOINT + '?api_key=rk%201');
    expect(collector.events().map((e) => e.properties.i)).toEqual([...Array(45).keys()]);
    expect(collector.events().every((e) => e.sent_at)).toBe(true);
    reload();
    tab({ apiKey: 'rk 1', batchInterval: 1000 });
    await wait(10_000);
    expect(collector.requests).toHaveLength(0); // beaconed events are not sent again
  });

  test('a hidden tab beacons its queue and keeps working when shown again', async () => {
    const sdk = tab({ batchInterval: 60_000 });
    sdk.track('before-hide');
    hidden('hidden');
    hidden('visible');
    sdk.track('after-show');
    await sdk.flush();
    expect(collector.beacons.flatMap((b) => b.events.map((e) => e.event_name))).toEqual(['before-hide']);
    expect(collector.requests.flatMap((r) => r.events.map((e) => e.event_name))).toEqual(['after-show']);
  });

  test('after a failed send no beacon is tried: the events stay for the next page', async () => {
    const sdk = tab({ batchInterval: 60_000 });
    collector.replies = ['network-error'];
    sdk.track('a');
    await sdk.flush();
    sdk.track('b');
    reload();
    expect(collector.beacons).toHaveLength(0);
    tab({ batchInterval: 1000 });
    await wait(5000);
    expect(collector.delivered().map((e) => e.event_name)).toEqual(['a', 'b']);
  });

  test("another tab's failed send also keeps this tab from beaconing", async () => {
    const failing = tab({ batchInterval: 60_000 });
    const other = tab({ batchInterval: 60_000 });
    collector.replies = ['network-error'];
    failing.track('a');
    await failing.flush();
    other.track('b');
    await wait(70_000); // past the retry time: the failure is still unresolved
    collector.replies = [];
    reload();
    expect(collector.beacons).toHaveLength(0);
    tab({ batchInterval: 1000 });
    await wait(2000);
    expect(collector.delivered().map((e) => e.event_name).sort()).toEqual(['a', 'b']);
  });

  test('a refused beacon keeps the rest of the queue for the next page', async () => {
    const sdk = tab({ batchInterval: 60_000 });
    sdk.track('a');
    collector.beaconAccepted = false;
    reload();
    tab({ batchInterval: 1000 });
    await wait(2000);
    expect(collector.delivered().map((e) => e.event_name)).toEqual(['a']);
  });

  test('the batch in flight at unload is not beaconed again', async () => {
    const sdk = tab({ batchSize: 1, batchInterval: 60_000 });
    let answer!: () => void;
    vi.stubGlobal('fetch', () => new Promise((resolve) => (answer = () => resolve(new Response('', { status: 202 })))));
    sdk.track('in-flight');
    await wait(1);
    sdk.track('tail');
    pagehide();
    answer();
    expect(collector.beacons.flatMap((b) => b.events.map((e) => e.event_name))).toEqual(['tail']);
  });
});
