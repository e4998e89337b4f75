/** Longest wait between retries, and the most of a server's Retry-After we honour. */
const MAX_BACKOFF_MS = 6e4;
const MAX_RETRY_AFTER_MS = 36e5;

/**
 * Wait before retry number `attempt` (1, 2, ...): 1 s doubling up to 60 s, with "equal jitter"
 * (half fixed, half random) so browsers that failed together do not come back together.
 */
export const backoff = (attempt: number, random: () => number = Math.random): number => {
  const ceiling = Math.min(MAX_BACKOFF_MS, 1e3 * 2 ** (attempt - 1));
  return Math.ceil(ceiling / 2 + (random() * ceiling) / 2); // whole ms: timers truncate fractions
};

/** A Retry-After header (delta-seconds or HTTP date) in milliseconds from `now`; undefined if absent or unreadable. */
export const retryAfter = (header: string | null, now: number): number | undefined => {
  if (!header) return;
  const seconds = +header;
  const ms = seconds >= 0 ? seconds * 1e3 : Date.parse(header) - now;
  if (ms == ms) return Math.min(Math.max(ms, 0), MAX_RETRY_AFTER_MS); // ms == ms: not NaN
};
