import { createClient } from './client';

export type { EventRecord, Options, Properties, RadixInsightApi } from './types';
export { createClient };

/** The page's SDK instance. */
export const RadixInsight = createClient();
export default RadixInsight;
