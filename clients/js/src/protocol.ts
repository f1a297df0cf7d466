/**
 * The frames of fanout's client protocol, as the server sends them: the
 * SDK's names for the generated wire types (`wire.ts`, generated from the
 * server's Rust types and checked by its tests).
 */

import type { ServerFrame } from "./wire.js";

export type {
  Action,
  ErrorCode as ServerErrorCode,
  PresenceMember,
  PresenceNoticeFields,
  Right,
  Sender,
  ServerFrame,
} from "./wire.js";
export { ACTIONS } from "./wire.js";

/** The server frame of type `T`. */
export type FrameOf<T extends ServerFrame["type"]> = Extract<ServerFrame, { type: T }>;

/** A reply's fields, without its `type` and `requestId`. */
export type ReplyFields<T extends ServerFrame["type"]> = Omit<FrameOf<T>, "type" | "requestId">;

/** A delivered message. `seq` is set when the room stores it in its stream. */
export type Message = FrameOf<"message">;

/** A stored message's new version; `ref` is the edited message's `seq`. */
export type MessageUpdated = FrameOf<"message.updated">;

/** A stored message's deletion; `ref` is the deleted message's `seq`. */
export type MessageDeleted = FrameOf<"message.deleted">;

/** Anything a room's stream holds. */
export type StreamEvent = Message | MessageUpdated | MessageDeleted;

/** A stream event that carries its `seq` (everything stored). */
export type SequencedEvent = StreamEvent & { seq: number };

/** An ephemeral signal (typing): never stored, no `seq`. */
export type Signal = FrameOf<"signal">;

/** A change in a room's presence. */
export type PresenceNotice = FrameOf<"presence.joined" | "presence.updated" | "presence.left" | "presence.count">;

/** A page of a room's present users; `next` is the cursor of the next page. */
export type PresencePage = ReplyFields<"presence">;

/** A page of a room's stream, in `seq` order; `more` says whether the stream holds more in the direction asked. */
export type HistoryPage = Omit<ReplyFields<"history">, "messages"> & { messages: SequencedEvent[] };

/**
 * The answer to `join`: the room's last stored `seq` when the membership
 * was stored; with `since`, whether everything after it was replayed
 * (`recovered`) and otherwise the oldest `seq` still stored after it.
 */
export type Joined = ReplyFields<"joined">;

/** The answer to `whoami`; `expiresAt` is the token's expiry, seconds since the epoch. */
export type WhoAmI = ReplyFields<"whoami">;

/** Any frame, before it is told apart by `type`. */
export interface Frame {
  type: string;
  requestId?: string;
  room?: string;
  [field: string]: unknown;
}
