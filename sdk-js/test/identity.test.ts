import { describe, expect, test } from 'vitest';
import { collector, reload, tab, wait } from './harness';

const MIN = 60_000;
const users = () => collector.events().map((e) => e.user);

describe('sessions', () => {
  test('one session while active; a new one after sessionTimeout of inactivity', async () => {
    const sdk = tab({ sessionTimeout: 30 * MIN, batchInterval: 1000 });
    sdk.track('a');
    await wait(29 * MIN);
    sdk.track('b'); // 29 min after a: same session
    await wait(29 * MIN);
    sdk.track('c'); // 29 min after b (58 after a): still the same
    await wait(30 * MIN + 1);
    sdk.track('d'); // 30 min and 1 ms of inactivity: new session
    await sdk.flush();
    const [a, b, c, d] = users().map((u) => u.session_id);
    expect(new Set([a, b, c]).size).toBe(1);
    expect(d).not.toBe(a);
    expect(new Set(users().map((u) => u.anonymous_id)).size).toBe(1);
  });

  test('the session and anonymous id are shared by tabs and survive a reload', async () => {
    const first = tab();
    first.track('a');
    await first.flush();
    reload();
    const second = tab();
    const third = tab();
    second.track('b');
    third.track('c');
    await second.flush();
    await third.flush();
    expect(new Set(users().map((u) => u.session_id)).size).toBe(1);
    expect(new Set(users().map((u) => u.anonymous_id)).size).toBe(1);
  });

  test('activity in any tab keeps the session alive for all', async () => {
    const a = tab({ sessionTimeout: 10 * MIN, batchInterval: 1000 });
    const b = tab({ sessionTimeout: 10 * MIN, batchInterval: 1000 });
    a.track('a');
    await wait(8 * MIN);
    b.track('b');
    await wait(8 * MIN);
    a.track('c'); // 16 min after a's last event, 8 after b's
    await a.flush();
    await b.flush();
    expect(new Set(users().map((u) => u.session_id)).size).toBe(1);
  });

  test("cookie persistence keeps ids in first-party cookies", async () => {
    const sdk = tab({ persistence: 'cookie' });
    sdk.identify('u-9');
    await sdk.flush();
    const { anonymous_id } = users()[0];
    expect(document.cookie).toContain(`_a=${anonymous_id}`);
    expect(document.cookie).toContain('_u=u-9');
    expect(Object.keys(localStorage).filter((k) => !k.includes('_q.'))).toEqual([]);
    reload();
    const again = tab({ persistence: 'cookie' });
    again.track('b');
    await again.flush();
    expect(users()[1]).toMatchObject({ anonymous_id, user_id: 'u-9' });
  });
});

describe('identify and reset', () => {
  test('identify links the anonymous id to the user id, in its own and every later event', async () => {
    const sdk = tab();
    sdk.track('before');
    sdk.identify('user-123', { plan: 'pro' });
    sdk.track('after');
    await sdk.flush();
    reload();
    const later = tab();
    later.track('next-page');
    await later.flush();
    const [before, identify, after, next] = collector.events();
    expect(before.user.user_id).toBeNull();
    expect(identify).toMatchObject({ event_name: 'identify', properties: { plan: 'pro' } });
    for (const e of [identify, after, next]) {
      expect(e.user).toEqual({ ...before.user, user_id: 'user-123' });
    }
  });

  test('reset forgets the user: no user id, a new anonymous id and session', async () => {
    const sdk = tab();
    sdk.identify('user-123');
    sdk.reset();
    sdk.track('after-logout');
    await sdk.flush();
    const [identified, anonymous] = users();
    expect(anonymous.user_id).toBeNull();
    expect(anonymous.anonymous_id).not.toBe(identified.anonymous_id);
    expect(anonymous.session_id).not.toBe(identified.session_id);
  });
});
