/**
 * The connection: one WebSocket at a time to a fanout stage, replaced
 * whenever it drops — API Gateway closes every connection within 2 hours
 * and after 10 idle minutes, and networks fail — with every room rejoined
 * where it left off.
 */

import { backoffDelay, type BackoffOptions } from "./backoff.js";
import { Emitter } from "./emitter.js";
import { FanoutError, type ErrorFrame } from "./errors.js";
import type { Action, Frame, Message, WhoAmI } from "./protocol.js";
import { Room, type RoomOptions, type RoomTransport } from "./room.js";
import { SeenIds } from "./seen.js";

/** The parts of a WebSocket the SDK uses (the browser's, or the `ws` package's). */
export interface WebSocketLike {
  readonly readyState: number;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  onopen: ((event: unknown) => void) | null;
  onmessage: ((event: { data: unknown }) => void) | null;
  onclose: ((event: { code: number; reason: string }) => void) | null;
  onerror: ((event: unknown) => void) | null;
}

export type WebSocketConstructor = new (url: string) => WebSocketLike;

export type ConnectionState = "idle" | "connecting" | "connected" | "reconnecting" | "disconnected";

/** A change of the connection's state. */
export interface StateChange {
  state: ConnectionState;
  /** Why (for `reconnecting` and `disconnected`). */
  reason?: string;
  /** The WebSocket close code, when a close caused it. */
  code?: number;
  /** `reconnecting`: how many attempts failed in a row so far. */
  attempt?: number;
  /** `reconnecting`: how long until the next attempt (ms). */
  delayMs?: number;
}

export interface ClientEvents {
  /** Every state change. */
  state: StateChange;
  connecting: StateChange;
  connected: StateChange;
  reconnecting: StateChange;
  disconnected: StateChange;
  /** The token was refreshed on the open connection (`expiresAt`, seconds). */
  refreshed: { expiresAt: number };
  /** An event sent to this user, this connection or the whole tenant (no room). */
  message: Message;
  /** A server error not tied to a request (e.g. `token_expired`). */
  error: FanoutError;
}

export interface ClientOptions {
  /** The stage's WebSocket URL, e.g. `wss://abc.execute-api.eu-west-1.amazonaws.com/prod`. */
  url: string;
  /**
   * Returns a token for `?token=`: called on every connect and before each
   * refresh, so it can fetch a fresh one from your backend.
   */
  token: () => Promise<string> | string;
  /** The WebSocket implementation (default: `globalThis.WebSocket`; on Node 20, pass the `ws` package's). */
  WebSocket?: WebSocketConstructor;
  /** How long a request waits for its reply, connecting included (default 10 s). */
  requestTimeoutMs?: number;
  /** How long a WebSocket may take to open before the attempt counts as failed (default 10 s). */
  connectTimeoutMs?: number;
  /** Reconnect delays (default 0.5 s doubling to 30 s, jittered). */
  backoff?: BackoffOptions;
  /** Failed connects in a row before giving up (`disconnected`); default: never give up. */
  maxReconnectAttempts?: number;
  /** Send a ping when nothing was sent for this long (default 4 min; API Gateway closes after 10 idle minutes). */
  heartbeatIntervalMs?: number;
  /** Reconnect on our own terms before API Gateway's 2-hour limit (default 110 min). */
  maxConnectionAgeMs?: number;
  /** Refresh the token this long before it expires (default 60 s). */
  refreshBeforeExpiryMs?: number;
  /** How long a gap in a room's `seq` may stay open before history fills it (default 1 s). */
  reorderWaitMs?: number;
  /** Out-of-order events held per room at most (default 1,000). */
  maxBufferedPerRoom?: number;
}

const DEFAULTS = {
  requestTimeoutMs: 10_000,
  connectTimeoutMs: 10_000,
  maxReconnectAttempts: Number.POSITIVE_INFINITY,
  heartbeatIntervalMs: 4 * 60_000,
  maxConnectionAgeMs: 110 * 60_000,
  refreshBeforeExpiryMs: 60_000,
  reorderWaitMs: 1_000,
  maxBufferedPerRoom: 1_000,
};
/** History fills of one gap before the gap is skipped. */
const MAX_GAP_FILLS = 3;
/** Rooms rejoined at once after a reconnect (the server allows bursts of 40 frames). */
const REJOIN_CONCURRENCY = 8;
/** Tries of a rejoin that was rate limited or failed inside the service. */
const REJOIN_TRIES = 4;
/** Soonest a refresh is tried again when the new token does not move the expiry on. */
const MIN_REFRESH_DELAY_MS = 1_000;
/** Longest a timer may be set for (browsers and Node overflow past it). */
const MAX_TIMER_MS = 2 ** 31 - 1;
/** The WebSocket `OPEN` ready state. */
const OPEN = 1;
/** Close code the SDK uses when it drops a connection itself to reconnect. */
const CLOSE_RECONNECT = 4000;
/** Close code of an expired token (the server's). */
const CLOSE_TOKEN_EXPIRED = 4001;

interface Pending {
  resolve: (frame: Frame) => void;
  reject: (error: FanoutError) => void;
  timer: ReturnType<typeof setTimeout>;
}

interface Waiter {
  resolve: () => void;
  reject: (error: FanoutError) => void;
  timer: ReturnType<typeof setTimeout>;
}

/**
 * A fanout client. Make one per app, `connect()` it, and get rooms with
 * `client.room(name)`.
 */
export class FanoutClient extends Emitter<ClientEvents> {
  readonly #options: Required<Omit<ClientOptions, "WebSocket" | "backoff">> & { backoff: BackoffOptions };
  readonly #WebSocket: WebSocketConstructor;
  readonly #transport: RoomTransport;
  #state: ConnectionState = "idle";
  #socket: WebSocketLike | undefined;
  /** The connection is set up (whoami answered, rooms rejoined). */
  #ready = false;
  #everConnected = false;
  #closedByApp = false;
  /** Failed connects in a row. */
  #attempt = 0;
  /** The next connect should not wait (a reconnect of our own). */
  #reconnectAtOnce = false;
  #who: WhoAmI | undefined;
  #nextRequestId = 0;
  #pending = new Map<string, Pending>();
  #waiters = new Set<Waiter>();
  #rooms = new Map<string, Room>();
  /** Rooms joined (or joining) on the current socket. */
  #joinedHere = new Set<Room>();
  #seen = new SeenIds();
  #timers = {
    reconnect: undefined as ReturnType<typeof setTimeout> | undefined,
    connect: undefined as ReturnType<typeof setTimeout> | undefined,
    heartbeat: undefined as ReturnType<typeof setTimeout> | undefined,
    refresh: undefined as ReturnType<typeof setTimeout> | undefined,
    maxAge: undefined as ReturnType<typeof setTimeout> | undefined,
  };
  #lastSentAt = 0;

  constructor(options: ClientOptions) {
    super();
    const WebSocketImpl =
      options.WebSocket ?? (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
    if (!WebSocketImpl) {
      throw new TypeError(
        "no WebSocket implementation: pass options.WebSocket (on Node 20, the `ws` package's WebSocket)",
      );
    }
    this.#WebSocket = WebSocketImpl;
    this.#options = {
      ...DEFAULTS,
      ...withoutUndefined(options),
      url: options.url,
      token: options.token,
      backoff: options.backoff ?? {},
    };
    this.#transport = {
      request: (action, fields) => this.request(action, fields),
      requestNow: (action, fields) => this.#send(action, fields, this.#options.requestTimeoutMs),
      forget: (room) => {
        if (this.#rooms.get(room.name) === room) this.#rooms.delete(room.name);
        this.#joinedHere.delete(room);
      },
      orderingDefaults: {
        waitMs: this.#options.reorderWaitMs,
        maxBuffered: this.#options.maxBufferedPerRoom,
        maxFills: MAX_GAP_FILLS,
      },
    };
  }

  get state(): ConnectionState {
    return this.#state;
  }

  /** The current connection's id (for `exclude` and connection targets), while connected. */
  get connectionId(): string | undefined {
    return this.#ready ? this.#who?.connectionId : undefined;
  }

  /** Who the token says this client is, once connected. */
  get identity(): { tenant: string; user: string } | undefined {
    return this.#who && { tenant: this.#who.tenant, user: this.#who.user };
  }

  /** When the connection's token expires (seconds since the epoch), once connected. */
  get expiresAt(): number | undefined {
    return this.#who?.expiresAt;
  }

  /**
   * Opens the connection (and keeps it open until `close()`); resolves
   * once it is first connected.
   */
  connect(): Promise<void> {
    if (this.#state === "idle" || this.#state === "disconnected") {
      this.#closedByApp = false;
      this.#attempt = 0;
      void this.#open();
    }
    return this.#whenReady(Number.POSITIVE_INFINITY);
  }

  /** Closes the connection for good: pending requests fail with `closed`. */
  close(): void {
    this.#closedByApp = true;
    this.#clearTimers();
    const socket = this.#socket;
    this.#socket = undefined;
    this.#ready = false;
    this.#failPending(new FanoutError("closed", "the client was closed"));
    for (const waiter of this.#waiters) {
      clearTimeout(waiter.timer);
      waiter.reject(new FanoutError("closed", "the client was closed"));
    }
    this.#waiters.clear();
    socket?.close(1000, "closed by the app");
    this.#setState({ state: "disconnected", reason: "closed by the app" });
  }

  /**
   * The room `name`: joined now if connected (else on connect), and
   * rejoined after every reconnect, resuming after the last `seq` it
   * delivered. The same name gives the same room until it is left.
   */
  room(name: string, options: RoomOptions = {}): Room {
    const existing = this.#rooms.get(name);
    if (existing) return existing;
    const room = new Room(name, options, this.#transport);
    this.#rooms.set(name, room);
    if (this.#socket?.readyState === OPEN && this.#who) void this.#joinWithRetry(room);
    return room;
  }

  /** Sends a ping; resolves when the server answers. */
  async ping(): Promise<void> {
    await this.request("ping");
  }

  /**
   * Any protocol action; resolves with its reply frame, or rejects with a
   * {@link FanoutError}. Waits for the connection if it is not up yet
   * (within the request timeout).
   */
  async request(action: Action, fields: Record<string, unknown> = {}, timeoutMs?: number): Promise<Frame> {
    const deadline = Date.now() + (timeoutMs ?? this.#options.requestTimeoutMs);
    await this.#whenReady(deadline);
    return this.#send(action, fields, deadline - Date.now());
  }

  async #open(): Promise<void> {
    if (this.#closedByApp) return;
    this.#setState({ state: this.#everConnected ? "reconnecting" : "connecting" });
    let token: string;
    try {
      token = await this.#options.token();
    } catch (error) {
      this.#retry(`the token provider failed: ${String(error)}`);
      return;
    }
    if (this.#closedByApp) return;
    const separator = this.#options.url.includes("?") ? "&" : "?";
    let socket: WebSocketLike;
    try {
      socket = new this.#WebSocket(`${this.#options.url}${separator}token=${encodeURIComponent(token)}`);
    } catch (error) {
      this.#retry(`could not open a WebSocket: ${String(error)}`);
      return;
    }
    this.#socket = socket;
    this.#joinedHere.clear();
    // A handshake that never completes (a stalled network or upgrade)
    // would otherwise leave the client connecting forever.
    this.#timers.connect = setTimeout(() => {
      if (socket === this.#socket && socket.readyState !== OPEN) {
        this.#reconnect(`the WebSocket did not open within ${this.#options.connectTimeoutMs} ms`, false);
      }
    }, this.#options.connectTimeoutMs);
    socket.onopen = () => {
      clearTimeout(this.#timers.connect);
      void this.#setUp(socket);
    };
    socket.onmessage = (event) => {
      if (socket === this.#socket) this.#receive(event.data);
    };
    socket.onclose = (event) => this.#closed(socket, event.code, event.reason);
    // An error is always followed by a close, which does the work.
    socket.onerror = () => undefined;
  }

  /** A fresh socket: learn who we are, rejoin every room, then announce `connected`. */
  async #setUp(socket: WebSocketLike): Promise<void> {
    try {
      const who = (await this.#send("whoami", {}, this.#options.requestTimeoutMs)) as unknown as WhoAmI;
      if (socket !== this.#socket) return;
      this.#who = who;
      this.#scheduleRefresh(who.expiresAt);
      this.#timers.maxAge = setTimeout(
        () => this.#reconnect("the connection reached its maximum age"),
        Math.min(this.#options.maxConnectionAgeMs, MAX_TIMER_MS),
      );
      await this.#rejoinAll();
      if (socket !== this.#socket) return;
      this.#ready = true;
      this.#everConnected = true;
      this.#attempt = 0;
      this.#scheduleHeartbeat();
      this.#setState({ state: "connected" });
      for (const waiter of this.#waiters) {
        clearTimeout(waiter.timer);
        waiter.resolve();
      }
      this.#waiters.clear();
    } catch (error) {
      if (socket === this.#socket) this.#reconnect(`setting up the connection failed: ${String(error)}`, false);
    }
  }

  async #rejoinAll(): Promise<void> {
    const queue = [...this.#rooms.values()];
    const worker = async () => {
      for (let room = queue.shift(); room; room = queue.shift()) await this.#joinWithRetry(room);
    };
    await Promise.all(Array.from({ length: REJOIN_CONCURRENCY }, worker));
  }

  async #joinWithRetry(room: Room): Promise<void> {
    if (this.#joinedHere.has(room)) return;
    this.#joinedHere.add(room);
    const socket = this.#socket;
    for (let tries = 1; ; tries++) {
      try {
        await room.join();
        return;
      } catch (error) {
        const code = error instanceof FanoutError ? error.code : "internal";
        const retriable = code === "rate_limited" || code === "internal" || code === "timeout";
        if (!retriable || tries >= REJOIN_TRIES || socket !== this.#socket) return;
        const wait = error instanceof FanoutError && error.retryAfterMs ? error.retryAfterMs : backoffDelay(tries - 1);
        await new Promise((resolve) => setTimeout(resolve, wait));
        if (socket !== this.#socket) return;
      }
    }
  }

  #receive(data: unknown): void {
    if (typeof data !== "string") return; // the server sends text frames only
    let frame: Frame;
    try {
      frame = JSON.parse(data) as Frame;
    } catch {
      console.warn("fanout: a frame that is not JSON was ignored", data.slice(0, 200));
      return;
    }
    if (typeof frame !== "object" || frame === null || typeof frame.type !== "string") return;
    const pending = frame.requestId === undefined ? undefined : this.#pending.get(frame.requestId);
    if (pending && frame.requestId !== undefined) {
      this.#pending.delete(frame.requestId);
      clearTimeout(pending.timer);
      if (frame.type === "error") pending.reject(FanoutError.fromFrame(frame as unknown as ErrorFrame));
      else pending.resolve(frame);
      return;
    }
    if (frame.type === "error") {
      this.emit("error", FanoutError.fromFrame(frame as unknown as ErrorFrame));
      return;
    }
    if (frame.requestId !== undefined) return; // the late reply of a request that timed out
    const room = typeof frame.room === "string" ? this.#rooms.get(frame.room) : undefined;
    if (room) {
      room.receive(frame);
    } else if (frame.type === "message" && frame.room === undefined && this.#seen.firstSight(frame.id)) {
      this.emit("message", frame as unknown as Message);
    }
  }

  /** Sends a request on the current socket; rejects if there is none. */
  #send(action: Action, fields: Record<string, unknown>, timeoutMs: number): Promise<Frame> {
    const socket = this.#socket;
    if (!socket || socket.readyState !== OPEN) {
      return Promise.reject(new FanoutError("disconnected", `not connected (${action} was not sent)`));
    }
    const requestId = `r${++this.#nextRequestId}`;
    return new Promise<Frame>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(requestId);
        reject(new FanoutError("timeout", `no reply to ${action} within ${Math.round(timeoutMs)} ms`, { requestId }));
      }, Math.max(0, timeoutMs));
      this.#pending.set(requestId, { resolve, reject, timer });
      try {
        socket.send(JSON.stringify({ ...fields, action, requestId }));
        this.#lastSentAt = Date.now();
      } catch (error) {
        clearTimeout(timer);
        this.#pending.delete(requestId);
        reject(new FanoutError("disconnected", `could not send ${action}: ${String(error)}`, { requestId }));
      }
    });
  }

  #whenReady(deadline: number): Promise<void> {
    if (this.#ready) return Promise.resolve();
    if (this.#closedByApp) return Promise.reject(new FanoutError("closed", "the client was closed"));
    if (this.#state === "idle") {
      return Promise.reject(new FanoutError("disconnected", "not connected: call connect() first"));
    }
    if (this.#state === "disconnected") {
      return Promise.reject(new FanoutError("disconnected", "not connected: gave up reconnecting"));
    }
    return new Promise<void>((resolve, reject) => {
      const waiter: Waiter = {
        resolve,
        reject,
        timer: setTimeout(
          () => {
            this.#waiters.delete(waiter);
            reject(new FanoutError("timeout", "not connected within the request timeout"));
          },
          Math.min(Math.max(0, deadline - Date.now()), MAX_TIMER_MS),
        ),
      };
      this.#waiters.add(waiter);
    });
  }

  #closed(socket: WebSocketLike, code: number, reason: string): void {
    if (socket !== this.#socket) return;
    this.#socket = undefined;
    this.#ready = false;
    this.#clearTimers();
    this.#failPending(new FanoutError("disconnected", `the connection closed (${code}) before the reply`));
    if (this.#closedByApp) return;
    if (code === CLOSE_TOKEN_EXPIRED) this.#reconnectAtOnce = true;
    this.#retry(describeClose(code, reason), code);
  }

  /** Schedules the next connect, or gives up past `maxReconnectAttempts`. */
  #retry(reason: string, code?: number): void {
    if (this.#closedByApp) return;
    const atOnce = this.#reconnectAtOnce;
    this.#reconnectAtOnce = false;
    if (!atOnce) this.#attempt += 1;
    if (this.#attempt > this.#options.maxReconnectAttempts) {
      const gaveUp = `${reason}; gave up after ${this.#attempt - 1} attempts`;
      this.#setState({ state: "disconnected", reason: gaveUp, ...(code !== undefined && { code }) });
      for (const waiter of this.#waiters) {
        clearTimeout(waiter.timer);
        waiter.reject(new FanoutError("disconnected", gaveUp));
      }
      this.#waiters.clear();
      return;
    }
    const delayMs = atOnce ? 0 : backoffDelay(this.#attempt - 1, this.#options.backoff);
    this.#setState({
      state: this.#everConnected ? "reconnecting" : "connecting",
      reason,
      attempt: this.#attempt,
      delayMs: Math.round(delayMs),
      ...(code !== undefined && { code }),
    });
    this.#timers.reconnect = setTimeout(() => void this.#open(), delayMs);
  }

  /** Drops the current socket and connects again (at once, unless `atOnce` is false). */
  #reconnect(reason: string, atOnce = true): void {
    const socket = this.#socket;
    if (!socket) return;
    this.#reconnectAtOnce = atOnce;
    this.#socket = undefined;
    this.#ready = false;
    this.#clearTimers();
    this.#failPending(new FanoutError("disconnected", `reconnecting: ${reason}`));
    try {
      socket.close(CLOSE_RECONNECT, reason.slice(0, 120));
    } catch {
      // Already closing.
    }
    this.#retry(reason);
  }

  #scheduleHeartbeat(): void {
    clearTimeout(this.#timers.heartbeat);
    const idle = Date.now() - this.#lastSentAt;
    const wait = Math.max(0, this.#options.heartbeatIntervalMs - idle);
    this.#timers.heartbeat = setTimeout(() => {
      if (!this.#ready) return;
      if (Date.now() - this.#lastSentAt < this.#options.heartbeatIntervalMs) {
        this.#scheduleHeartbeat();
        return;
      }
      const socket = this.#socket;
      this.#send("ping", {}, this.#options.requestTimeoutMs).then(
        () => this.#scheduleHeartbeat(),
        () => {
          // No pong: the socket is dead without knowing it (a half-open TCP connection).
          if (socket === this.#socket) this.#reconnect("the server did not answer a heartbeat", false);
        },
      );
    }, Math.min(wait, MAX_TIMER_MS));
  }

  #scheduleRefresh(expiresAt: number): void {
    clearTimeout(this.#timers.refresh);
    const wait = expiresAt * 1000 - this.#options.refreshBeforeExpiryMs - Date.now();
    this.#timers.refresh = setTimeout(() => void this.#refresh(), Math.min(Math.max(0, wait), MAX_TIMER_MS));
  }

  async #refresh(): Promise<void> {
    const socket = this.#socket;
    if (!socket) return;
    try {
      const token = await this.#options.token();
      const reply = await this.#send("refresh", { token }, this.#options.requestTimeoutMs);
      if (socket !== this.#socket || !this.#who) return;
      const expiresAt = Number(reply.expiresAt);
      this.#who = { ...this.#who, expiresAt };
      this.emit("refreshed", { expiresAt });
      const next = expiresAt * 1000 - this.#options.refreshBeforeExpiryMs - Date.now();
      if (next < MIN_REFRESH_DELAY_MS) {
        clearTimeout(this.#timers.refresh);
        this.#timers.refresh = setTimeout(() => void this.#refresh(), MIN_REFRESH_DELAY_MS);
      } else {
        this.#scheduleRefresh(expiresAt);
      }
    } catch (error) {
      if (socket !== this.#socket) return;
      if (error instanceof FanoutError && error.code === "forbidden") {
        // The new token was refused: a new connection asks the provider again.
        this.#reconnect(`the refreshed token was refused: ${error.message}`, false);
      } else {
        clearTimeout(this.#timers.refresh);
        this.#timers.refresh = setTimeout(() => void this.#refresh(), MIN_REFRESH_DELAY_MS);
      }
    }
  }

  #failPending(error: FanoutError): void {
    for (const [requestId, pending] of this.#pending) {
      clearTimeout(pending.timer);
      pending.reject(new FanoutError(error.code, error.message, { requestId }));
    }
    this.#pending.clear();
  }

  #clearTimers(): void {
    for (const timer of Object.values(this.#timers)) clearTimeout(timer);
    this.#timers = {
      reconnect: undefined,
      connect: undefined,
      heartbeat: undefined,
      refresh: undefined,
      maxAge: undefined,
    };
  }

  #setState(change: StateChange): void {
    const same = change.state === this.#state && change.reason === undefined;
    this.#state = change.state;
    if (same) return;
    this.emit("state", change);
    if (change.state !== "idle") this.emit(change.state, change);
  }
}

/** What a close code means, for the `reconnecting` reason. */
function describeClose(code: number, reason: string): string {
  const known: Record<number, string> = {
    1000: "closed normally",
    1001: "closed by the server (idle timeout or maximum connection duration)",
    1006: "the connection dropped (network, or the connect was refused)",
    1008: "closed by the server (policy: e.g. not reading fast enough)",
    1009: "closed by the server (a frame was too large)",
    1011: "closed by the server (internal error)",
    [CLOSE_TOKEN_EXPIRED]: "the token expired",
  };
  const meaning = known[code] ?? "closed";
  return reason ? `${meaning}: ${reason} (${code})` : `${meaning} (${code})`;
}

/** The options the caller set (an explicit `undefined` keeps the default). */
function withoutUndefined<T extends object>(options: T): Partial<T> {
  return Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined)) as Partial<T>;
}
