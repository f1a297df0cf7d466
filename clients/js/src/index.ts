/**
 * fanout's client SDK: a WebSocket connection to a fanout stage that
 * survives API Gateway's forced reconnects, and rooms that deliver every
 * message once, in `seq` order, across them.
 *
 * @packageDocumentation
 */

export { FanoutClient } from "./client.js";
export type {
  ClientEvents,
  ClientOptions,
  ConnectionState,
  StateChange,
  WebSocketConstructor,
  WebSocketLike,
} from "./client.js";
export { Room } from "./room.js";
export type { RoomEvents, RoomOptions, RoomReset } from "./room.js";
export { FanoutError } from "./errors.js";
export type { ClientErrorCode, ErrorCode, ErrorFrame, ServerErrorCode } from "./errors.js";
export type { Listener } from "./emitter.js";
export { backoffDelay } from "./backoff.js";
export type { BackoffOptions } from "./backoff.js";
export { SeqOrderer } from "./ordering.js";
export type { OrdererOptions } from "./ordering.js";
export type * from "./protocol.js";
export { ACTIONS } from "./protocol.js";
