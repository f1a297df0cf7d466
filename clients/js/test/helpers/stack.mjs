// Starts the real local stack (the fanout-local binary) on a free port for
// a test file, and gives the test what a product backend has: development
// tokens and grants, @connections, and EventBridge's PutEvents.

import { spawn } from "node:child_process";
import { randomUUID } from "node:crypto";
import { existsSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import WebSocket from "ws";
import { FanoutClient } from "../../dist/index.js";

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, "../../../..");
/** Log lines kept per stack, printed when a start fails. */
const LOG_LINES = 200;

export function stackBinary() {
  const bin = process.env.FANOUT_LOCAL_BIN ?? path.join(repo, "target/debug/fanout-local");
  if (!existsSync(bin)) {
    throw new Error(
      `no fanout-local binary at ${bin}: build it (cargo build -p fanout-local) or set FANOUT_LOCAL_BIN`,
    );
  }
  return bin;
}

/**
 * The backend flags: with FANOUT_SDK_TEST_BACKEND=aws, DynamoDB,
 * EventBridge and SQS on FANOUT_TEST_AWS_ENDPOINT (moto's server), each
 * stack with resources of its own.
 */
function backendArgs() {
  if (process.env.FANOUT_SDK_TEST_BACKEND !== "aws") return [];
  const endpoint = process.env.FANOUT_TEST_AWS_ENDPOINT;
  if (!endpoint) throw new Error("FANOUT_SDK_TEST_BACKEND=aws needs FANOUT_TEST_AWS_ENDPOINT");
  const prefix = `sdk${randomUUID().replaceAll("-", "").slice(0, 10)}-`;
  return ["--backend", "aws", "--endpoint-url", endpoint, "--resource-prefix", prefix];
}

/** Starts `fanout-local --port 0 ...args` and waits until it serves. */
export async function startStack(args = []) {
  const env = { ...process.env, RUST_LOG: process.env.RUST_LOG ?? "warn" };
  // The development token endpoints exist only with the development secret.
  delete env.FANOUT_JWT_SECRET;
  const child = spawn(stackBinary(), ["--port", "0", ...backendArgs(), ...args], { env, stdio: ["ignore", "pipe", "pipe"] });
  const logs = [];
  const keep = (chunk) => {
    for (const line of chunk.toString().split("\n")) {
      if (line) logs.push(line);
      if (logs.length > LOG_LINES) logs.shift();
    }
  };
  child.stderr.on("data", keep);
  const started = Date.now();
  const wsUrl = await new Promise((resolve, reject) => {
    let out = "";
    const timer = setTimeout(() => reject(new Error(`the stack did not start in 30 s:\n${logs.join("\n")}`)), 30_000);
    child.stdout.on("data", (chunk) => {
      keep(chunk);
      out += chunk.toString();
      const match = /WebSocket\s+(ws:\/\/\S+?)\?token=/.exec(out);
      if (match) {
        clearTimeout(timer);
        resolve(match[1]);
      }
    });
    child.on("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`fanout-local exited (${code}) before serving:\n${logs.join("\n")}`));
    });
  }).catch((error) => {
    // A stack that did not come up must not outlive the test.
    child.kill("SIGKILL");
    throw error;
  });
  reportSlow("starting the stack", started);
  const httpUrl = new URL(wsUrl.replace(/^ws:/, "http:")).origin;
  return new Stack(child, wsUrl, httpUrl, logs);
}

class Stack {
  constructor(child, wsUrl, httpUrl, logs) {
    this.child = child;
    this.wsUrl = wsUrl;
    this.httpUrl = httpUrl;
    this.logs = logs;
  }

  /** Ctrl-C, as a user stops it; killed if it has not stopped within 5 s. */
  async stop() {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    const stopping = Date.now();
    const exited = new Promise((resolve) => this.child.once("exit", resolve));
    this.child.kill("SIGINT");
    const timer = setTimeout(() => this.child.kill("SIGKILL"), 5_000);
    await exited;
    clearTimeout(timer);
    reportSlow("stopping the stack", stopping);
  }

  async #post(pathname, body) {
    const response = await fetch(`${this.httpUrl}${pathname}`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(body),
    });
    const text = await response.text();
    if (!response.ok) throw new Error(`POST ${pathname}: ${response.status} ${text}`);
    return JSON.parse(text);
  }

  /** A development token: `{tenant, user, capabilities?, ttlSeconds?}`. */
  async token(request) {
    return (await this.#post("/_fanout/dev/token", request)).token;
  }

  /** A development room grant: `{tenant, user, room, rights, ttlSeconds?}`. */
  async grant(request) {
    return (await this.#post("/_fanout/dev/grant", request)).token;
  }

  /** Closes a connection from the server side, as DELETE @connections does on AWS. */
  async disconnect(connectionId) {
    const stage = new URL(this.wsUrl).pathname;
    const response = await fetch(`${this.httpUrl}${stage}/@connections/${encodeURIComponent(connectionId)}`, {
      method: "DELETE",
    });
    if (response.status !== 204 && response.status !== 200) {
      throw new Error(`DELETE @connections/${connectionId}: ${response.status} ${await response.text()}`);
    }
  }

  /**
   * Publishes as a product service: EventBridge PutEvents (at most 10
   * details), from `<tenant>.orders` (a source speaks for its tenant only).
   */
  async putEvents(details) {
    const response = await fetch(`${this.httpUrl}/`, {
      method: "POST",
      headers: {
        "content-type": "application/x-amz-json-1.1",
        "x-amz-target": "AWSEvents.PutEvents",
      },
      body: JSON.stringify({
        Entries: details.map((detail) => ({
          EventBusName: "fanout",
          Source: `${detail.tenant}.orders`,
          DetailType: "fanout.broadcast",
          Detail: JSON.stringify(detail),
        })),
      }),
    });
    const body = await response.json();
    if (!response.ok || body.FailedEntryCount) {
      throw new Error(`PutEvents: ${response.status} ${JSON.stringify(body)}`);
    }
    return body;
  }

  /** A connected SDK client for `tenant`/`user` (token options: capabilities, ttlSeconds). */
  client({ tenant, user, capabilities, ttlSeconds, onToken, WebSocketImpl = WebSocket, ...options }) {
    const client = new FanoutClient({
      url: this.wsUrl,
      WebSocket: WebSocketImpl,
      token: async () => {
        onToken?.();
        return this.token({ tenant, user, ...(capabilities && { capabilities }), ...(ttlSeconds && { ttlSeconds }) });
      },
      ...options,
    });
    return client;
  }
}

/** Says on stderr when a stack took long to start or stop (moto under load). */
function reportSlow(what, since) {
  const ms = Date.now() - since;
  if (ms > 2_000) console.error(`# ${what} took ${ms} ms`);
}

/**
 * After a test file's own `after` hooks: if the process is still alive
 * 10 s later, names what keeps it alive (an unclosed socket, a timer),
 * so a test that leaks one says which.
 */
export function reportLeaksAtExit() {
  setTimeout(() => {
    const resources = process.getActiveResourcesInfo().filter((r) => r !== "TTYWrap");
    console.error(`# still running 10 s after the tests: ${resources.join(", ") || "nothing visible"}`);
  }, 10_000).unref();
}

/** Resolves when `predicate()` holds, polling; rejects after `timeoutMs`. */
export async function eventually(predicate, { timeoutMs = 10_000, what = "the condition", progress } = {}) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await predicate();
    if (value) return value;
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${progress ? ` (${progress()})` : ""}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

/** A `ws` WebSocket whose connects can be refused on demand (a network outage). */
export function outageSwitch() {
  const state = { down: false };
  class FlakyWebSocket extends WebSocket {
    constructor(url) {
      super(state.down ? "ws://127.0.0.1:1/refused" : url);
    }
  }
  return { state, WebSocket: FlakyWebSocket };
}
