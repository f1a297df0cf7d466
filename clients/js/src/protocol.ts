/** The frames of fanout's client protocol, as the server sends them. */

/** Who sent an event, as the server set it: a client or a service. */
export interface Sender {
  user?: string;
  connection?: string;
  /** A product service's event `Source`. */
  service?: string;
}

/** A delivered message. `seq` is set when the room stores it in its stream. */
export interface Message {
  type: "message";
  id: string;
  room?: string;
  seq?: number;
  from?: Sender;
  /** Absent on a deleted message (in history). */
  data?: unknown;
  sentAt: string;
  /** In history and replays: when the message was last edited. */
  updatedAt?: string;
  /** In history and replays: the message was deleted since. */
  deleted?: boolean;
}

/** A stored message's new version; `ref` is the edited message's `seq`. */
export interface MessageUpdated {
  type: "message.updated";
  id: string;
  room: string;
  seq: number;
  ref: number;
  from?: Sender;
  data: unknown;
  sentAt: string;
}

/** A stored message's deletion; `ref` is the deleted message's `seq`. */
export interface MessageDeleted {
  type: "message.deleted";
  id: string;
  room: string;
  seq: number;
  ref: number;
  from?: Sender;
  sentAt: string;
}

/** Anything a room's stream holds. */
export type StreamEvent = Message | MessageUpdated | MessageDeleted;

/** A stream event that carries its `seq` (everything stored). */
export type SequencedEvent = StreamEvent & { seq: number };

/** An ephemeral signal (typing): never stored, no `seq`. */
export interface Signal {
  type: "signal";
  id: string;
  room: string;
  from?: Sender;
  data: unknown;
  sentAt: string;
}

/** A change in a room's presence. */
export interface PresenceNotice {
  type: "presence.joined" | "presence.updated" | "presence.left" | "presence.count";
  room: string;
  user?: string;
  state?: unknown;
  /** Moves on with every change of the member: drop a lower one. */
  version?: number;
  connections?: number;
  /** `presence.count` only: how many users are present. */
  members?: number;
  sentAt: string;
}

/** One present user. */
export interface PresenceMember {
  user: string;
  connections: number;
  state?: unknown;
  version: number;
}

/** A page of a room's present users. */
export interface PresencePage {
  room: string;
  count: number;
  members: PresenceMember[];
  /** The cursor of the next page, when there is one. */
  next?: string;
}

/** A page of a room's stream, in `seq` order. */
export interface HistoryPage {
  room: string;
  messages: SequencedEvent[];
  /** Whether the stream holds more in the direction asked. */
  more: boolean;
}

/** The answer to `join`. */
export interface Joined {
  room: string;
  /** The room's last stored `seq` when the membership was stored. */
  seq: number;
  /** With `since`: whether everything after it was replayed. */
  recovered?: boolean;
  /** With `recovered: false`: the oldest `seq` still stored after `since`. */
  oldest?: number;
}

/** The answer to `whoami`. */
export interface WhoAmI {
  connectionId: string;
  tenant: string;
  user: string;
  /** When the connection's token expires, seconds since the epoch. */
  expiresAt: number;
}

/** Any frame, before it is told apart by `type`. */
export interface Frame {
  type: string;
  requestId?: string;
  room?: string;
  [field: string]: unknown;
}
