/**
 * Puts a room's stored events in `seq` order, exactly once, whatever order
 * and however many times they arrive: the client contract of the
 * protocol's room streams.
 *
 * - A `seq` at or below the last delivered one is a duplicate: dropped.
 * - A `seq` above `last + 1` waits in a bounded reorder buffer.
 * - A gap still open after `waitMs` (or a buffer past `maxBuffered`) is
 *   filled from history, `after` the last delivered `seq`.
 * - A `seq` a history page covers but does not return may still be on its
 *   way: concurrent planners number a room's events first and store them
 *   next, so a later number can be stored (and delivered) before an
 *   earlier one. It is waited for over `maxFills` tries, and skipped only
 *   on the last (its planner died between numbering and storing it).
 * - A gap that history cannot explain after `maxFills` tries is skipped
 *   too, so one lost number never stalls a room.
 */

import type { SequencedEvent } from "./protocol.js";

export interface OrdererOptions {
  /** How long a gap may stay open before history is asked (ms). */
  waitMs: number;
  /** Events held out of order at most; past it, history is asked at once. */
  maxBuffered: number;
  /** History fills of one gap before it is skipped. */
  maxFills: number;
  /**
   * Reads the stream after `after`: a history page in `seq` order, or
   * `null` when it cannot be read now (not connected): the gap then waits
   * for the next event or rejoin instead of polling.
   */
  fetchAfter: (after: number) => Promise<{ messages: SequencedEvent[]; more: boolean } | null>;
  /** Hands an event to the app, in order. */
  deliver: (event: SequencedEvent) => void;
  /** A gap that was skipped: `from`..`to` will never be delivered. */
  skipped?: (from: number, to: number) => void;
}

export class SeqOrderer {
  /** The last `seq` delivered; undefined until the first `join` answers. */
  #last: number | undefined;
  /** Events above `last + 1`, by `seq`. */
  #buffer = new Map<number, SequencedEvent>();
  /** The highest `seq` known to be stored (from `joined`). */
  #head = 0;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #filling = false;
  #fills = 0;
  /** The last fill could not read the stream: wait for new input. */
  #paused = false;
  #closed = false;
  readonly #options: OrdererOptions;

  constructor(options: OrdererOptions) {
    this.#options = options;
  }

  /** The last `seq` delivered to the app. */
  get last(): number | undefined {
    return this.#last;
  }

  /** Events waiting for an earlier `seq`. */
  get buffered(): number {
    return this.#buffer.size;
  }

  /**
   * Sets where delivery starts when it has not started yet (the first
   * `join` without `since`): events up to `seq` are history, not news.
   */
  start(seq: number): void {
    if (this.#last === undefined) {
      this.#last = seq;
      for (const s of this.#buffer.keys()) if (s <= seq) this.#buffer.delete(s);
      this.#drain();
    }
  }

  /** One stored event, live or replayed or from history. */
  push(event: SequencedEvent): void {
    if (this.#closed) return;
    this.#paused = false;
    if (this.#last !== undefined && event.seq <= this.#last) return;
    if (!this.#buffer.has(event.seq)) this.#buffer.set(event.seq, event);
    this.#head = Math.max(this.#head, event.seq);
    this.#drain();
  }

  /** The room's stream holds events up to `seq` (a `joined` answer). */
  expectUpTo(seq: number): void {
    this.#paused = false;
    this.#head = Math.max(this.#head, seq);
    this.#drain();
  }

  /** Events up to `seq` are gone for good: continue after it. */
  skipTo(seq: number): void {
    if (this.#last === undefined || seq > this.#last) {
      this.#last = seq;
      for (const s of this.#buffer.keys()) if (s <= seq) this.#buffer.delete(s);
    }
    this.#drain();
  }

  /** Stops timers; nothing more is delivered. */
  close(): void {
    this.#closed = true;
    this.#clearTimer();
    this.#buffer.clear();
  }

  #drain(): void {
    if (this.#closed || this.#last === undefined) return;
    for (;;) {
      const next = this.#buffer.get(this.#last + 1);
      if (!next) break;
      this.#buffer.delete(next.seq);
      this.#last = next.seq;
      this.#fills = 0;
      this.#options.deliver(next);
      if (this.#closed) return;
    }
    const gapOpen = this.#buffer.size > 0 || this.#head > this.#last;
    if (!gapOpen) {
      this.#clearTimer();
      this.#fills = 0;
      return;
    }
    if (this.#paused) return;
    if (this.#buffer.size > this.#options.maxBuffered) {
      this.#clearTimer();
      void this.#fill();
    } else if (!this.#timer && !this.#filling) {
      this.#timer = setTimeout(() => {
        this.#timer = undefined;
        void this.#fill();
      }, this.#options.waitMs);
    }
  }

  async #fill(): Promise<void> {
    if (this.#filling || this.#closed || this.#last === undefined) return;
    this.#filling = true;
    this.#fills += 1;
    try {
      const after = this.#last;
      const page = await this.#options.fetchAfter(after);
      if (this.#closed) return;
      if (page === null) {
        this.#paused = true;
        this.#fills -= 1;
        return;
      }
      const returned = page.messages.filter((m) => m.seq > after);
      for (const event of returned) {
        if (!this.#buffer.has(event.seq)) this.#buffer.set(event.seq, event);
      }
      if (this.#fills >= this.#options.maxFills) {
        // The page covers (after, its last seq]: on the last try, anything
        // in there it did not return is taken as never stored.
        const covered = returned.length > 0 ? returned[returned.length - 1]!.seq : after;
        this.#skipAbsent(covered);
        // Still open after every try: skip to the first event we hold.
        const first = Math.min(...this.#buffer.keys(), this.#head + 1);
        if (this.#last !== undefined && first > this.#last + 1) {
          this.#options.skipped?.(this.#last + 1, first - 1);
          this.#last = first - 1;
        }
      }
    } catch {
      // Disconnected or refused: the next wait tries again (and a
      // reconnect resumes with `since` anyway).
    } finally {
      this.#filling = false;
    }
    this.#drain();
  }

  /** Delivers buffered events up to `covered`, skipping absent numbers. */
  #skipAbsent(covered: number): void {
    while (this.#last !== undefined && this.#last < covered && !this.#closed) {
      const next = this.#buffer.get(this.#last + 1);
      if (next) {
        this.#buffer.delete(next.seq);
        this.#last = next.seq;
        this.#options.deliver(next);
        continue;
      }
      const present = [...this.#buffer.keys()].filter((s) => s > this.#last! && s <= covered);
      const to = present.length > 0 ? Math.min(...present) - 1 : covered;
      this.#options.skipped?.(this.#last + 1, to);
      this.#last = to;
    }
  }

  #clearTimer(): void {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
  }
}
