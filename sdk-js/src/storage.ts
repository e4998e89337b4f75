/** Key-value persistence for ids, session and opt-out (the event queue has its own, in outbox.ts). */
export interface KV {
  get(key: string): string | null;
  set(key: string, value: string): void;
  del(key: string): void;
}

/** localStorage if it works here: it throws in some privacy modes and sandboxed frames. */
export const usableLocalStorage = (): Storage | undefined => {
  try {
    const s = localStorage;
    s.setItem('ri_probe', '1');
    s.removeItem('ri_probe');
    return s;
  } catch {}
};

export const storageKV = (s: Storage): KV => ({
  get: (k) => s.getItem(k),
  set: (k, v) => {
    try {
      s.setItem(k, v);
    } catch {} // storage full: ids then live for this page only
  },
  del: (k) => s.removeItem(k),
});

export const memoryKV = (): KV => {
  const m = new Map<string, string>();
  return { get: (k) => m.get(k) ?? null, set: (k, v) => void m.set(k, v), del: (k) => void m.delete(k) };
};

/** First-party cookies, one a key, kept a year; `domain` shares them across subdomains. */
export const cookieKV = (domain?: string): KV => {
  const put = (k: string, v: string, maxAge: number) =>
    (document.cookie =
      `${k}=${encodeURIComponent(v)};path=/;max-age=${maxAge};SameSite=Lax` +
      (domain ? ';domain=' + domain : '') +
      (location.protocol == 'https:' ? ';Secure' : ''));
  return {
    get: (k) => {
      const m = document.cookie.match('(?:^|; )' + k + '=([^;]*)');
      return m && decodeURIComponent(m[1]);
    },
    set: (k, v) => put(k, v, 31536e3),
    del: (k) => put(k, '', 0),
  };
};
