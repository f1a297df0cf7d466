// Generated from fanout-core's protocol types (shared/core/src/protocol/wire_types.rs);
// do not edit. Regenerate: FANOUT_REGENERATE=1 cargo test -p fanout-core --test generated

/** Every action a client may send. */
export const ACTIONS = [
  "join",
  "leave",
  "publish",
  "signal",
  "history",
  "update",
  "delete",
  "presence",
  "presence.update",
  "ping",
  "whoami",
  "refresh",
] as const;

/** The `action` of a client frame. */
export type Action = (typeof ACTIONS)[number];

export type ErrorCode = "bad_request" | "unknown_action" | "payload_too_large" | "forbidden" | "token_expired" | "not_member" | "not_found" | "limit_exceeded" | "rate_limited" | "internal";

export type Right = "subscribe" | "publish" | "presence" | "history" | "signal";

export type Sender = { user: string, connection: string, } | { service: string, };

export type PresenceMember = { user: string, connections: number, state?: unknown, version: number, };

export type PresenceNoticeFields = { room: string, user?: string, state?: unknown, version?: number, connections?: number, members?: number, sentAt: string, };

export type ServerFrame =
  | { "type": "ack", requestId?: string, }
  | { "type": "pong", requestId?: string, }
  | { "type": "error", requestId?: string, code: ErrorCode, message: string, room?: string, right?: Right, retryAfterMs?: number, }
  | { "type": "refreshed", requestId?: string, expiresAt: number, }
  | { "type": "whoami", requestId?: string, connectionId: string, tenant: string, user: string, expiresAt: number, }
  | { "type": "message", id: string, room?: string, seq?: number, from?: Sender, data: unknown, sentAt: string, updatedAt?: string, deleted?: boolean, }
  | { "type": "signal", id: string, room: string, from?: Sender, data: unknown, sentAt: string, }
  | { "type": "message.updated", id: string, room: string, seq: number, ref: number, from?: Sender, data: unknown, sentAt: string, }
  | { "type": "message.deleted", id: string, room: string, seq: number, ref: number, from?: Sender, sentAt: string, }
  | { "type": "joined", requestId?: string, room: string, seq: number, recovered?: boolean, oldest?: number, }
  | { "type": "history", requestId?: string, room: string, messages: Array<ServerFrame>, more: boolean, }
  | { "type": "replay", room: string, messages: Array<ServerFrame>, }
  | { "type": "presence", requestId?: string, room: string, count: number, members: Array<PresenceMember>, next?: string, }
  | { "type": "presence.joined" } & PresenceNoticeFields
  | { "type": "presence.left" } & PresenceNoticeFields
  | { "type": "presence.updated" } & PresenceNoticeFields
  | { "type": "presence.count" } & PresenceNoticeFields;
