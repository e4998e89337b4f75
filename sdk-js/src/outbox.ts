import type { EventRecord } from './types';
import { uuid } from './uuid';

/**
 * The persisted event queue, safe with several tabs open.
 *
 * Each tab keeps its queue under its own localStorage key (`<prefix>q.<tab id>` -> `{t, e}`) and
 * is the only writer of that key while it lives, so tabs never overwrite each other's events and a
 * stored event is sent by one tab only. `t` is the owner's last write; a tab that goes away
 * (reload, navigation, close) sets it to 0 on pagehide. Any tab adopts a queue whose `t` is 0 or
 * older than STALE_MS (a crashed or killed tab): it removes that key and appends the events to its
 * own queue, under a Web Lock where the browser has them so two tabs never adopt the same queue.
 */
const STALE_MS = 3e5;

interface Stored {
  t: number;
  e: EventRecord[];
}

export interface Outbox {
  /** Append (dropping the oldest beyond the cap); returns the queue length. */
  add(event: EventRecord): number;
  /** The oldest events, at most `max` of them and about `maxChars` of JSON (at least one). */
  peek(max: number, maxChars?: number): EventRecord[];
  remove(ids: string[]): void;
  /** Take over the queues of tabs that are gone. */
  adopt(): Promise<unknown>;
  /** Heartbeat: this tab still owns its queue. */
  touch(): void;
  /** This tab is going away: let the next tab (or this page, reloaded) adopt what is left. */
  release(): void;
  /** Discard every queued event of this project, in every tab. */
  clear(): void;
}

export function openOutbox(
  prefix: string,
  ls: Storage | undefined,
  cap: number,
  onDrop: (count: number) => void,
): Outbox {
  const tag = prefix + 'q.';
  const own = tag + uuid();
  let memory: EventRecord[] = [];

  const read = (key: string): Stored | null => {
    try {
      return JSON.parse(ls!.getItem(key)!);
    } catch {
      return null;
    }
  };
  const load = (): EventRecord[] => (ls ? read(own)?.e || [] : memory);
  const save = (events: EventRecord[], t = Date.now()) => {
    if (events.length > cap) {
      onDrop(events.length - cap);
      events = events.slice(-cap);
    }
    if (!ls) return void (memory = events);
    for (;;) {
      try {
        return events.length ? ls.setItem(own, JSON.stringify({ t, e: events })) : ls.removeItem(own);
      } catch {
        if (!events.length) return;
        const n = Math.ceil(events.length / 4); // storage full: the oldest quarter goes
        onDrop(n);
        events = events.slice(n);
      }
    }
  };
  const keys = () => {
    const found: string[] = [];
    for (let i = ls!.length; i--; ) {
      const key = ls!.key(i);
      if (key && key != own && key.startsWith(tag)) found.push(key);
    }
    return found;
  };
  const adoptNow = () => {
    const mine = load();
    const seen = new Set(mine.map((e) => e.event_id));
    const adopted: EventRecord[] = [];
    for (const key of keys()) {
      const other = read(key);
      if (!other?.t || Date.now() - other.t > STALE_MS) {
        ls!.removeItem(key);
        for (const e of other?.e || []) if (!seen.has(e.event_id)) seen.add(e.event_id), adopted.push(e);
      }
    }
    if (adopted.length) save(adopted.concat(mine));
  };

  return {
    add(event) {
      const events = load();
      events.push(event);
      save(events);
      return Math.min(events.length, cap);
    },
    peek(max, maxChars = Infinity) {
      let chars = 0;
      return load()
        .slice(0, max)
        .filter((e, i) => (chars += JSON.stringify(e).length) <= maxChars || !i);
    },
    remove(ids) {
      save(load().filter((e) => !ids.includes(e.event_id)));
    },
    adopt: () =>
      !ls
        ? Promise.resolve()
        : navigator.locks
          ? navigator.locks.request(tag, { ifAvailable: true }, (lock) => lock && adoptNow())
          : Promise.resolve(adoptNow()),
    touch() {
      const events = load();
      if (events.length) save(events);
    },
    release() {
      const events = load();
      if (events.length) save(events, 0);
    },
    clear() {
      memory = [];
      if (ls) for (const key of keys().concat(own)) ls.removeItem(key);
    },
  };
}
