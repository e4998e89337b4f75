import { describe, expect, test } from 'vitest';
import { ENDPOINT, collector, tab, wait } from './harness';

const UUID4 = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

describe('event shape', () => {
  test('the design example, as written, sends events of the design schema', async () => {
    const RadixInsight = tab({ batchSize: 10, batchInterval: 5000, debug: false });
    document.title = 'Lead capture';
    RadixInsight.identify('user-123', { email: 'user@company.com', department: 'Sales', role: 'Manager' });
    RadixInsight.track('button_click', { button_id: 'submit-form', form_id: 'lead-capture', page_section: 'hero' });
    await wait(5000);

    expect(collector.requests).toHaveLength(1);
    const [identify, click] = collector.requests[0].events;
    expect(collector.requests[0].url).toBe(ENDPOINT);
    expect(collector.requests[0].headers).toEqual({}); // keyless: no X-API-Key
    expect(identify.event_name).toBe('identify');
    expect(identify.properties).toEqual({ email: 'user@company.com', department: 'Sales', role: 'Manager' });
    expect(click).toMatchObject({
      event_name: 'button_click',
      project_id: expect.stringMatching(/^p\d+$/),
      timestamp: '2026-11-25T10:00:00.000Z',
      sent_at: '2026-11-25T10:00:05.000Z',
      user: { user_id: 'user-123', anonymous_id: expect.stringMatching(UUID4), session_id: expect.stringMatching(UUID4) },
      context: {
        locale: navigator.language,
        timezone: Intl.DateTimeFormat().resolvedOptions().timeZone,
        page: { url: location.href, referrer: document.referrer, title: 'Lead capture' },
        user_agent: navigator.userAgent,
        screen: { width: screen.width, height: screen.height },
        library: { name: 'radixinsight-js', version: 'test' },
      },
      properties: { button_id: 'submit-form', form_id: 'lead-capture', page_section: 'hero' },
    });
    expect(identify.user).toEqual(click.user);
    expect(identify.event_id).toMatch(UUID4);
    expect(click.event_id).toMatch(UUID4);
    expect(identify.event_id).not.toBe(click.event_id);
  });

  test('apiKey goes in the X-API-Key header', async () => {
    const sdk = tab({ apiKey: 'rk_test' });
    sdk.track('a');
    await sdk.flush();
    expect(collector.requests[0].headers).toEqual({ 'X-API-Key': 'rk_test' });
  });

  test('page() sends page_view with its properties; autoPageviews sends one at init', async () => {
    const sdk = tab({ autoPageviews: true });
    sdk.page({ section: 'pricing' });
    await sdk.flush();
    expect(collector.events().map((e) => [e.event_name, e.properties])).toEqual([
      ['page_view', {}],
      ['page_view', { section: 'pricing' }],
    ]);
  });

  test("autoPageviews 'history' tracks pushState and popstate URL changes, not same-URL replaceState", async () => {
    const sdk = tab({ autoPageviews: 'history' });
    history.pushState({}, '', '/pricing');
    history.replaceState({}, '', '/pricing');
    history.pushState({}, '', '/signup');
    await sdk.flush();
    const urls = collector.events().map((e) => new URL(e.context.page.url).pathname);
    expect(urls).toEqual(['/', '/pricing', '/signup']);
    history.replaceState({}, '', '/');
  });

  test('an event over the collector limit of 100 KB is dropped, others go', async () => {
    const sdk = tab();
    sdk.track('huge', { blob: 'x'.repeat(100_001) });
    sdk.track('huge in UTF-8', { blob: 'é'.repeat(50_001) }); // 50 001 characters, 100 002 bytes
    sdk.track('small');
    await sdk.flush();
    expect(collector.events().map((e) => e.event_name)).toEqual(['small']);
  });
});
