import type { EventRecord } from './types';

declare const __VERSION__: string;

/** What the browser knows about where and by whom an event happened. */
export const browserContext = (): EventRecord['context'] => ({
  locale: navigator.language,
  timezone: Intl.DateTimeFormat().resolvedOptions().timeZone,
  page: { url: location.href, referrer: document.referrer, title: document.title },
  user_agent: navigator.userAgent,
  screen: { width: screen.width, height: screen.height },
  library: { name: 'radixinsight-js', version: __VERSION__ },
});
