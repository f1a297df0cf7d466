/** A room as the app sees it: its events in `seq` order, once each. */

import { Emitter } from "./emitter.js";
import { FanoutError } from "./errors.js";
import { SeqOrderer } from "./ordering.js";
import { SeenIds } from "./seen.js";
import type {
  Action,
  Frame,
  HistoryPage,
  Joined,
  Message,
  MessageDeleted,
  MessageUpdated,
  PresenceMember,
  PresenceNotice,
  PresencePage,
  SequencedEvent,
  Signal,
} from "./protocol.js";

/** What a room needs from its client. */
export interface RoomTransport {
  request(action: Action, fields: Record<string, unknown>): Promise<Frame>;
  /** Sends without waiting for the app-facing `connected` state (rejoins). */
  requestNow(action: Action, fields: Record<string, unknown>): Promise<Frame>;
  forget(room: Room): void;
  readonly orderingDefaults: { waitMs: number; maxBuffered: number; maxFills: number };
}

export interface RoomOptions {
  /** Enter the room's presence (needs the `presence` right). */
  presence?: boolean;
  /** Presence state (at most 1 KB of JSON); with `presence`. */
  state?: unknown;
  /**
   * A room grant from your backend, or a function that fetches a fresh
   * one: it is called again on every rejoin, so a short-lived grant works
   * across reconnects.
   */
  grant?: string | (() => Promise<string> | string);
  /**
   * Resume from here: the last `seq` the app already has (e.g. stored
   * from a previous session). Without it, the room starts with what is
   * published after the join.
   */
  since?: number;
}

/** Why a room's continuity was broken. */
export interface RoomReset {
  room: string;
  /** The first `seq` that will never be delivered. */
  from: number;
  /** The last `seq` that will never be delivered. */
  to: number;
  /** The room's last `seq` when it was rejoined. */
  head: number;
}

export interface RoomEvents {
  /** A new message, in `seq` order (or, unstored, as it arrives). */
  message: Message;
  /** An edit of an earlier message (`ref`), in `seq` order. */
  update: MessageUpdated;
  /** A deletion of an earlier message (`ref`), in `seq` order. */
  delete: MessageDeleted;
  /** An ephemeral signal from another member (typing…). */
  signal: Signal;
  /** A presence change, already ordered per member by `version`. */
  presence: PresenceNotice;
  /** The room's present users changed (`presence: true` rooms). */
  members: PresenceMember[];
  /**
   * Events the room can no longer deliver (retention or the per-room cap
   * dropped them while the client was away): refetch your state.
   */
  reset: RoomReset;
  /** Every (re)join's answer. */
  joined: Joined;
  /** A rejoin or a background fetch failed. */
  error: FanoutError;
}

/** Presence pages read to seed the member list. */
const PRESENCE_PAGES_MAX = 10;

export class Room extends Emitter<RoomEvents> {
  readonly name: string;
  /** Resolves with the first join's answer; rejects if it was refused. */
  readonly ready: Promise<Joined>;
  #transport: RoomTransport;
  #options: RoomOptions;
  #orderer: SeqOrderer;
  #seen = new SeenIds();
  #members = new Map<string, PresenceMember>();
  /** Highest presence version seen per user (left users included). */
  #versions = new Map<string, number>();
  #left = false;
  #settleReady!: { resolve: (j: Joined) => void; reject: (e: unknown) => void };
  #readySettled = false;

  /** @internal Rooms are made with `client.room(name)`. */
  constructor(name: string, options: RoomOptions, transport: RoomTransport) {
    super();
    this.name = name;
    this.#options = options;
    this.#transport = transport;
    this.#orderer = new SeqOrderer({
      ...transport.orderingDefaults,
      fetchAfter: async (after) => {
        try {
          return await this.history({ after, limit: 100 });
        } catch (error) {
          // Not connected (or closed): the rejoin's replay and `joined`
          // answer take over; polling meanwhile would only spin.
          if (error instanceof FanoutError && (error.code === "disconnected" || error.code === "closed")) return null;
          throw error;
        }
      },
      deliver: (event) => this.#deliver(event),
    });
    if (options.since !== undefined) this.#orderer.start(options.since);
    this.ready = new Promise<Joined>((resolve, reject) => {
      this.#settleReady = { resolve, reject };
    });
    // The app may never await `ready`: a refused join is then reported
    // through the `error` event only, not as an unhandled rejection.
    this.ready.catch(() => undefined);
  }

  /** The last `seq` delivered to the app (store it to resume later). */
  get lastSeq(): number | undefined {
    return this.#orderer.last;
  }

  /** The present users as last heard (`presence: true` rooms). */
  get members(): PresenceMember[] {
    return [...this.#members.values()].sort((a, b) => a.user.localeCompare(b.user));
  }

  /** Publishes `data` (any JSON) to the room; resolves on the server's ack. */
  async publish(data: unknown): Promise<void> {
    await this.#transport.request("publish", { room: this.name, data });
  }

  /** Sends an ephemeral signal (e.g. `{typing: true}`) to the other members. */
  async signal(data: unknown): Promise<void> {
    await this.#transport.request("signal", { room: this.name, data });
  }

  /** Replaces one of your own messages' data. */
  async update(seq: number, data: unknown): Promise<void> {
    await this.#transport.request("update", { room: this.name, seq, data });
  }

  /** Deletes one of your own messages. */
  async delete(seq: number): Promise<void> {
    await this.#transport.request("delete", { room: this.name, seq });
  }

  /**
   * A page of the room's stream: the newest (no argument), `before` a
   * `seq` (scrolling back) or `after` one; `limit` up to 100.
   */
  async history(range: { before?: number; after?: number; limit?: number } = {}): Promise<HistoryPage> {
    const reply = await this.#transport.request("history", { room: this.name, ...range });
    return reply as unknown as HistoryPage;
  }

  /** One page of the room's present users. */
  async presence(page: { cursor?: string; limit?: number } = {}): Promise<PresencePage> {
    const reply = await this.#transport.request("presence", { room: this.name, ...page });
    return reply as unknown as PresencePage;
  }

  /** Sets your presence state in the room. */
  async setPresence(state: unknown): Promise<void> {
    this.#options.state = state;
    await this.#transport.request("presence.update", { room: this.name, state });
  }

  /** Leaves the room: no more events, no rejoin on reconnect. */
  async leave(): Promise<void> {
    if (this.#left) return;
    this.#left = true;
    this.#orderer.close();
    this.#transport.forget(this);
    try {
      await this.#transport.request("leave", { room: this.name });
    } catch (error) {
      if (!(error instanceof FanoutError) || !["disconnected", "closed"].includes(error.code)) {
        throw error;
      }
      // Not connected: the membership ends with the connection anyway.
    }
  }

  /** @internal (Re)joins on a fresh connection, resuming after `lastSeq`. */
  async join(): Promise<void> {
    if (this.#left) return;
    const fields: Record<string, unknown> = { room: this.name };
    const since = this.#orderer.last;
    if (since !== undefined) fields.since = since;
    if (this.#options.presence) {
      fields.presence = true;
      if (this.#options.state !== undefined) fields.state = this.#options.state;
    }
    const grant = this.#options.grant;
    if (grant !== undefined) fields.grant = typeof grant === "function" ? await grant() : grant;
    let reply: Joined;
    try {
      reply = (await this.#transport.requestNow("join", fields)) as unknown as Joined;
    } catch (error) {
      const failure = error instanceof FanoutError ? error : new FanoutError("internal", String(error));
      if (!this.#readySettled && !["disconnected", "closed", "timeout", "rate_limited", "internal"].includes(failure.code)) {
        // Refused for good (forbidden, limit_exceeded…): stop rejoining it.
        this.#left = true;
        this.#orderer.close();
        this.#transport.forget(this);
        this.#readySettled = true;
        this.#settleReady.reject(failure);
      }
      this.emit("error", failure);
      throw failure;
    }
    this.#joined(reply, since);
    if (this.#options.presence) void this.#loadMembers();
  }

  #joined(reply: Joined, since: number | undefined): void {
    if (since === undefined) {
      this.#orderer.start(reply.seq);
    } else if (reply.recovered === false) {
      // Replay stopped at its cap when `oldest` is right after `since`:
      // the orderer pages the rest from history. Otherwise events between
      // `since` and `oldest` (or the head) are gone.
      const lostTo = reply.oldest !== undefined ? reply.oldest - 1 : reply.seq;
      if (lostTo > since) {
        this.#orderer.skipTo(lostTo);
        this.emit("reset", { room: this.name, from: since + 1, to: lostTo, head: reply.seq });
      }
    }
    this.#orderer.expectUpTo(reply.seq);
    if (!this.#readySettled) {
      this.#readySettled = true;
      this.#settleReady.resolve(reply);
    }
    this.emit("joined", reply);
  }

  /** @internal A frame for this room. */
  receive(frame: Frame): void {
    if (this.#left) return;
    switch (frame.type) {
      case "replay":
        for (const event of (frame.messages as SequencedEvent[] | undefined) ?? []) this.#stream(event);
        return;
      case "message":
      case "message.updated":
      case "message.deleted":
        this.#stream(frame as unknown as SequencedEvent);
        return;
      case "signal":
        if (this.#seen.firstSight(frame.id)) this.emit("signal", frame as unknown as Signal);
        return;
      default:
        if (frame.type.startsWith("presence.")) this.#presence(frame as unknown as PresenceNotice);
    }
  }

  #stream(event: SequencedEvent): void {
    if (typeof event.seq === "number") {
      this.#orderer.push(event);
    } else if (this.#seen.firstSight(event.id)) {
      // Not stored (ephemeral room or `stream: false`): no order to keep.
      this.#deliver(event);
    }
  }

  #deliver(event: SequencedEvent | Message): void {
    if (event.type === "message") this.emit("message", event);
    else if (event.type === "message.updated") this.emit("update", event);
    else this.emit("delete", event);
  }

  /** True the first time an unstored event's id is seen. */

  #presence(notice: PresenceNotice): void {
    if (notice.type === "presence.count" || notice.user === undefined) {
      this.emit("presence", notice);
      return;
    }
    if (!this.#newer(notice.user, notice.version)) return;
    if (notice.type === "presence.left") {
      this.#members.delete(notice.user);
    } else {
      this.#members.set(notice.user, {
        user: notice.user,
        connections: notice.connections ?? this.#members.get(notice.user)?.connections ?? 1,
        state: notice.state,
        version: notice.version ?? 0,
      });
    }
    this.emit("presence", notice);
    this.emit("members", this.members);
  }

  /** Records `version` for `user` if it is newer than what is known. */
  #newer(user: string, version: number | undefined): boolean {
    const known = this.#versions.get(user);
    if (version !== undefined && known !== undefined && version <= known) return false;
    if (version !== undefined) this.#versions.set(user, version);
    return true;
  }

  /** Reads the member list (after every join: notices were missed meanwhile). */
  async #loadMembers(): Promise<void> {
    // Notices that arrive while the pages are read are newer than the
    // pages: remember what was known before, so a page never undoes them.
    const before = new Map(this.#versions);
    try {
      const seen = new Map<string, PresenceMember>();
      let cursor: string | undefined;
      for (let i = 0; i < PRESENCE_PAGES_MAX; i++) {
        const page = await this.presence(cursor === undefined ? {} : { cursor });
        for (const member of page.members) seen.set(member.user, member);
        cursor = page.next;
        if (cursor === undefined) break;
      }
      for (const member of seen.values()) {
        const known = this.#versions.get(member.user);
        if (known === undefined || member.version >= known) {
          this.#versions.set(member.user, member.version);
          this.#members.set(member.user, member);
        }
      }
      // A member no page lists has left, unless a notice about it came
      // in while the pages were read (or the list was too long to read).
      for (const user of cursor === undefined ? [...this.#members.keys()] : []) {
        if (!seen.has(user) && this.#versions.get(user) === before.get(user)) {
          this.#members.delete(user);
        }
      }
      this.emit("members", this.members);
    } catch (error) {
      this.emit("error", error instanceof FanoutError ? error : new FanoutError("internal", String(error)));
    }
  }
}
