import { createClient } from './client';
import type { RadixInsightApi } from './types';

/**
 * The script-tag build: replaces the loader snippet's stub `window.RadixInsight` (which queued
 * calls in `q` while this file loaded) with the real SDK and replays those calls in order.
 */
type Stub = Partial<RadixInsightApi> & { q?: [keyof RadixInsightApi, ArrayLike<unknown>][] };
const w = window as unknown as { RadixInsight?: Stub };
const stub = w.RadixInsight;
if (!stub?.track || stub.q) {
  const sdk = createClient();
  w.RadixInsight = sdk;
  for (const [method, args] of stub?.q || []) (sdk[method] as (...a: unknown[]) => void)(...Array.from(args));
}
