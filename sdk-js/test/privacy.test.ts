import { describe, expect, onTestFinished, test, vi } from 'vitest';
import { createClient } from '../src/client';
import { ENDPOINT, collector, reload, tab, wait } from './harness';

describe('privacy', () => {
  test('nothing is sent or stored before init; calls made before it are replayed by it', async () => {
    const sdk = createClient();
    sdk.track('early', { n: 1 });
    sdk.identify('user-1');
    await sdk.flush();
    await wait(60_000);
    expect(collector.requests).toHaveLength(0);
    expect(Object.keys(localStorage)).toEqual([]);
    sdk.init({ projectId: 'early-project', endpoint: ENDPOINT });
    await sdk.flush();
    expect(collector.events().map((e) => [e.event_name, e.user.user_id])).toEqual([
      ['early', null],
      ['identify', 'user-1'],
    ]);
  });

  test('optOut: queued events are discarded, nothing is sent, and it survives a reload', async () => {
    const sdk = tab({ batchInterval: 1000 });
    sdk.track('queued');
    sdk.optOut();
    sdk.track('after');
    sdk.identify('u');
    sdk.page();
    await wait(10_000);
    window.dispatchEvent(new Event('pagehide'));
    reload();
    const next = tab({ batchInterval: 1000 });
    next.track('next-page');
    await wait(10_000);
    expect(collector.requests).toHaveLength(0);
    expect(collector.beacons).toHaveLength(0);
    expect(Object.keys(localStorage).filter((k) => k.includes('_q.'))).toEqual([]);

    next.optIn();
    next.track('back');
    await next.flush();
    expect(collector.events().map((e) => e.event_name)).toEqual(['back']);
  });

  test('optOut in one tab stops the others, including a send already scheduled', async () => {
    const a = tab({ batchInterval: 1000 });
    const b = tab({ batchInterval: 1000 });
    b.track('b');
    a.optOut();
    await wait(5000);
    expect(collector.requests).toHaveLength(0);
  });

  test.each([
    ['doNotTrack', '1'],
    ['globalPrivacyControl', true],
  ])('respectDoNotTrack: %s=%s means nothing is stored or sent', async (name, value) => {
    Object.defineProperty(navigator, name, { get: () => value, configurable: true });
    onTestFinished(() => void delete (navigator as unknown as Record<string, unknown>)[name]);
    const sdk = tab({ respectDoNotTrack: true, autoPageviews: true });
    sdk.identify('u');
    sdk.track('x');
    await sdk.flush();
    window.dispatchEvent(new Event('pagehide'));
    expect(collector.requests).toHaveLength(0);
    expect(collector.beacons).toHaveLength(0);
    expect(Object.keys(localStorage)).toEqual([]);
  });

  test('Do Not Track is ignored unless respectDoNotTrack is set', async () => {
    vi.spyOn(navigator, 'doNotTrack', 'get').mockReturnValue('1');
    const sdk = tab();
    sdk.track('x');
    await sdk.flush();
    expect(collector.events()).toHaveLength(1);
  });
});
