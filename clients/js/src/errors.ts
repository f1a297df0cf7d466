/**
 * Errors the SDK rejects with: the server's error codes, plus the SDK's
 * own for requests that got no answer.
 */

import type { FrameOf, ServerErrorCode } from "./protocol.js";

export type { ServerErrorCode };

/**
 * The SDK's own codes: `timeout` (no reply within the request timeout),
 * `disconnected` (the connection dropped before the reply; the request
 * may or may not have been carried out), `closed` (the client was closed).
 */
export type ClientErrorCode = "timeout" | "disconnected" | "closed";

export type ErrorCode = ServerErrorCode | ClientErrorCode;

/** The fields of a server `error` frame. */
export type ErrorFrame = FrameOf<"error">;

/** A refused or failed request. `code` says why; the rest is optional detail. */
export class FanoutError extends Error {
  override readonly name = "FanoutError";
  readonly code: ErrorCode;
  /** The room a `forbidden` refusal is about. */
  readonly room: string | undefined;
  /** The right that was missing (`subscribe`, `publish`, `presence`, `history`, `signal`). */
  readonly right: string | undefined;
  /** For `rate_limited`: when to retry. */
  readonly retryAfterMs: number | undefined;
  readonly requestId: string | undefined;

  constructor(
    code: ErrorCode,
    message: string,
    detail: { room?: string; right?: string; retryAfterMs?: number; requestId?: string } = {},
  ) {
    super(message);
    this.code = code;
    this.room = detail.room;
    this.right = detail.right;
    this.retryAfterMs = detail.retryAfterMs;
    this.requestId = detail.requestId;
  }

  /** The error a server `error` frame stands for. */
  static fromFrame(frame: ErrorFrame): FanoutError {
    return new FanoutError(frame.code, frame.message, {
      ...(frame.room !== undefined && { room: frame.room }),
      ...(frame.right !== undefined && { right: frame.right }),
      ...(frame.retryAfterMs !== undefined && { retryAfterMs: frame.retryAfterMs }),
      ...(frame.requestId !== undefined && { requestId: frame.requestId }),
    });
  }
}
