import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { expect, test, vi } from 'vitest';
import { collector, newProject } from './harness';

const snippet = readFileSync(resolve(__dirname, '../snippet.html'), 'utf8').match(/<script>([\s\S]*?)<\/script>/)![1];
type Global = { RadixInsight?: Record<string, unknown> & { q?: unknown[] } };

test('the loader snippet queues calls until the SDK loads, which replays them in order', async () => {
  const project = newProject();
  const w = window as unknown as Global;
  delete w.RadixInsight;
  // The snippet as published, with its own init swapped for this test's endpoint.
  new Function(snippet.replace(/RadixInsight\.init\(.*\);/, ''))();
  const added = document.head.querySelector('script[src="/radixinsight.min.js"]') as HTMLScriptElement;
  expect(added.async).toBe(true);
  const stub = w.RadixInsight!;
  (stub.init as (o: object) => void)({ projectId: project, endpoint: 'https://c.example/collect', batchInterval: 1000 });
  (stub.track as (n: string, p: object) => void)('button_click', { button_id: 'submit-form' });
  (stub.identify as (u: string) => void)('user-123');
  expect(stub.q).toHaveLength(3);
  expect(collector.requests).toHaveLength(0);

  vi.resetModules();
  await import('../src/global'); // what the script tag runs once loaded
  const sdk = w.RadixInsight!;
  expect(sdk).not.toBe(stub);
  expect(sdk.q).toBeUndefined();
  await (sdk.flush as () => Promise<void>)();
  expect(collector.events().map((e) => [e.project_id, e.event_name, e.user.user_id])).toEqual([
    [project, 'button_click', null],
    [project, 'identify', 'user-123'],
  ]);

  vi.resetModules();
  await import('../src/global'); // loaded twice: the running SDK stays
  expect(w.RadixInsight).toBe(sdk);
  added.remove();
});
