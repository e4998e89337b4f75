/** Custom event properties or user traits: any JSON-serialisable values. */
export type Properties = Record<string, unknown>;

export interface Options {
  /** Project the events belong to (`project_id` on every event). */
  projectId: string;
  /** The collector's `POST /collect` URL. */
  endpoint: string;
  /** Write key, sent as `X-API-Key` (and `?api_key=` on beacons). Leave out for keyless browser ingestion. */
  apiKey?: string;
  /** Send as soon as this many events are queued. Default 10. */
  batchSize?: number;
  /** Otherwise send queued events every this many milliseconds. Default 5000. */
  batchInterval?: number;
  /** Log every event and delivery outcome to the console. Default false. */
  debug?: boolean;
  /** A new session starts after this many milliseconds without an event. Default 30 minutes. */
  sessionTimeout?: number;
  /**
   * Where ids, session and opt-out live: `localStorage` (default), `cookie` (first-party cookies,
   * shareable across subdomains with `cookieDomain`) or `memory` (nothing stored; nothing survives a
   * reload). The event queue uses localStorage unless `memory`.
   */
  persistence?: 'localStorage' | 'cookie' | 'memory';
  /** `true`: a `page_view` at init; `'history'`: also on every pushState/replaceState/popstate URL change. */
  autoPageviews?: boolean | 'history';
  /** Track nothing when the browser sends Do Not Track or Global Privacy Control. Default false. */
  respectDoNotTrack?: boolean;
  /** Cookie domain for `persistence: 'cookie'`, e.g. `.example.com`. */
  cookieDomain?: string;
  /** Most events kept in a tab's persisted queue; the oldest are dropped first (and counted). Default 1000. */
  maxQueueSize?: number;
}

/** One event as sent to the collector (the design's schema). */
export interface EventRecord {
  event_id: string;
  event_name: string;
  project_id: string;
  timestamp: string;
  user: { user_id: string | null; anonymous_id: string; session_id: string };
  context: {
    locale: string;
    timezone: string;
    page: { url: string; referrer: string; title: string };
    user_agent: string;
    screen: { width: number; height: number };
    library: { name: string; version: string };
  };
  properties: Properties;
}

export interface RadixInsightApi {
  init(options: Options): void;
  track(eventName: string, properties?: Properties): void;
  /** A `page_view` event; page URL, referrer and title are in its context. */
  page(properties?: Properties): void;
  /** Remember the user id; this and every later event carries it with the anonymous id. */
  identify(userId: string, traits?: Properties): void;
  /** Forget the user: new anonymous id and session, no user id (e.g. on logout). */
  reset(): void;
  /** Send what is queued now; resolves when the queue is empty or a send failed. */
  flush(): Promise<void>;
  /** Stop tracking in this browser (remembered) and discard queued events. */
  optOut(): void;
  /** Undo `optOut()`. */
  optIn(): void;
}
