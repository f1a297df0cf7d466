/** Reconnect delays: exponential, capped, with jitter. */

export interface BackoffOptions {
  /** Delay before the first retry, in ms (default 500). */
  initialDelayMs?: number;
  /** Longest delay, in ms (default 30,000). */
  maxDelayMs?: number;
  /** Growth per failed attempt (default 2). */
  multiplier?: number;
}

export const DEFAULT_BACKOFF: Required<BackoffOptions> = {
  initialDelayMs: 500,
  maxDelayMs: 30_000,
  multiplier: 2,
};

/**
 * The delay before retry number `attempt` (0 for the first): "equal
 * jitter" — half of the capped exponential step, plus a random part of
 * the other half — so thousands of clients that API Gateway dropped at the
 * same moment do not all come back at the same moment, and none retries
 * at once in a tight loop.
 */
export function backoffDelay(
  attempt: number,
  options: BackoffOptions = {},
  random: () => number = Math.random,
): number {
  const { initialDelayMs, maxDelayMs, multiplier } = { ...DEFAULT_BACKOFF, ...options };
  const step = Math.min(maxDelayMs, initialDelayMs * multiplier ** Math.max(0, attempt));
  return step / 2 + random() * (step / 2);
}
