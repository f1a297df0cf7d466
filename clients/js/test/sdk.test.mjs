// The SDK against the real local stack, over real sockets.

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import WebSocket from "ws";
import { FanoutError } from "../dist/index.js";
import { eventually, outageSwitch, reportLeaksAtExit, startStack } from "./helpers/stack.mjs";

let stack;
const clients = [];
before(async () => {
  stack = await startStack();
});
after(async () => {
  for (const client of clients) client.close();
  await stack?.stop();
  reportLeaksAtExit();
});

/** A client of the shared stack, closed after the file. */
function connect(options) {
  const client = stack.client(options);
  clients.push(client);
  return client;
}

describe("publish and receive", () => {
  test("a message published by one client reaches the other with its sender", async () => {
    const alice = connect({ tenant: "t-basic", user: "alice" });
    const bob = connect({ tenant: "t-basic", user: "bob" });
    await Promise.all([alice.connect(), bob.connect()]);
    const aliceRoom = alice.room("lobby");
    const bobRoom = bob.room("lobby");
    await Promise.all([aliceRoom.ready, bobRoom.ready]);
    const received = [];
    aliceRoom.on("message", (m) => received.push(m));

    await bobRoom.publish({ text: "hi" });

    await eventually(() => received.length === 1, { what: "alice to receive bob's message" });
    assert.equal(received[0].from.user, "bob");
    assert.deepEqual(received[0].data, { text: "hi" });
    assert.equal(received[0].seq, aliceRoom.lastSeq);
    assert.equal(alice.state, "connected");
    assert.equal(alice.identity.user, "alice");
  });
});

describe("resume across a forced reconnect", () => {
  test("500 messages with a server-side disconnect in the middle arrive once each, in seq order", async () => {
    const reader = connect({ tenant: "t-resume", user: "reader" });
    const states = [];
    reader.on("state", (s) => states.push(s.state));
    await reader.connect();
    const room = reader.room("feed");
    const joined = await room.ready;
    const received = [];
    room.on("message", (m) => received.push(m));

    const total = 500;
    let disconnected = false;
    for (let batch = 0; batch < total / 10; batch++) {
      const details = Array.from({ length: 10 }, (_, i) => ({
        tenant: "t-resume",
        target: { room: "feed" },
        data: { n: batch * 10 + i },
      }));
      await stack.putEvents(details);
      if (!disconnected && batch * 10 >= total * 0.4) {
        // In the middle of the stream, as API Gateway's 2-hour limit would.
        await eventually(() => received.length > 0, { what: "the first messages" });
        await stack.disconnect(reader.connectionId);
        disconnected = true;
      }
    }

    // Generous: on moto every event is a dozen store calls, and a loaded
    // machine slows them down; what matters is that nothing is lost.
    await eventually(() => received.length >= total, {
      timeoutMs: 120_000,
      what: `all ${total} messages`,
      progress: () =>
        `have ${received.length}, last seq ${room.lastSeq} (joined at ${joined.seq}), client ${reader.state}`,
    });
    await new Promise((resolve) => setTimeout(resolve, 300)); // anything extra would show now
    assert.equal(received.length, total, "each message exactly once");
    const seqs = received.map((m) => m.seq);
    assert.deepEqual(seqs, Array.from({ length: total }, (_, i) => joined.seq + 1 + i), "in seq order, no gap");
    assert.deepEqual(
      received.map((m) => m.data.n).sort((a, b) => a - b),
      Array.from({ length: total }, (_, i) => i),
      "every message published",
    );
    assert.ok(states.includes("reconnecting"), `the client reconnected (states: ${states.join(", ")})`);
    assert.equal(reader.state, "connected");
  });

  test("a room whose missed events are gone emits reset, then continues", async () => {
    const small = await startStack(["--stream-max-events", "5"]);
    const outage = outageSwitch();
    const client = small.client({
      tenant: "t-reset",
      user: "sleeper",
      WebSocketImpl: outage.WebSocket,
      backoff: { initialDelayMs: 50, maxDelayMs: 200 },
    });
    try {
      await client.connect();
      const room = client.room("news");
      await room.ready;
      const received = [];
      const resets = [];
      room.on("message", (m) => received.push(m.seq));
      room.on("reset", (r) => resets.push(r));
      await small.putEvents([{ tenant: "t-reset", target: { room: "news" }, data: { n: 0 } }]);
      await eventually(() => received.length === 1, { what: "the first message" });

      outage.state.down = true;
      await small.disconnect(client.connectionId);
      await eventually(() => client.state === "reconnecting", { what: "the client to notice" });
      for (let n = 1; n <= 12; n++) {
        await small.putEvents([{ tenant: "t-reset", target: { room: "news" }, data: { n } }]);
      }
      // The planner stores them; the room keeps only the newest 5 (9..13).
      await eventually(
        async () => {
          const r = await fetch(`${small.httpUrl}/_fanout/history?tenant=t-reset&room=news`);
          const page = await r.json();
          return page.messages.at(-1)?.seq === 13;
        },
        { what: "the 12 events to be stored" },
      );
      outage.state.down = false;

      await eventually(() => resets.length === 1 && received.at(-1) === 13, {
        what: `a reset and the surviving events (resets ${JSON.stringify(resets)}, seqs ${received})`,
      });
      assert.equal(resets[0].from, 2);
      assert.equal(resets[0].to, resets[0].head - 5);
      assert.deepEqual(received, [1, 9, 10, 11, 12, 13]);
    } finally {
      client.close();
      await small.stop();
    }
  });
});

describe("connection upkeep", () => {
  test("heartbeats go out when the app is quiet, and the connection is renewed before its maximum age", async () => {
    const sent = [];
    class RecordingWebSocket extends WebSocket {
      send(data) {
        sent.push(JSON.parse(data).action);
        super.send(data);
      }
    }
    const client = connect({
      tenant: "t-upkeep",
      user: "quiet",
      WebSocketImpl: RecordingWebSocket,
      heartbeatIntervalMs: 200,
      maxConnectionAgeMs: 1_500,
    });
    const reasons = [];
    client.on("reconnecting", (s) => reasons.push(s.reason));
    await client.connect();
    const room = client.room("lobby");
    await room.ready;
    const first = client.connectionId;

    await eventually(() => reasons.length === 1 && client.state === "connected", {
      what: "the reconnect at the maximum age",
    });
    assert.match(reasons[0], /maximum age/);
    assert.notEqual(client.connectionId, first);
    assert.ok(sent.filter((a) => a === "ping").length >= 3, `pings: ${sent.join(",")}`);
    assert.equal(sent.filter((a) => a === "join").length, 2, "the room was rejoined");
    const received = [];
    room.on("message", (m) => received.push(m));
    await room.publish({ text: "after renewal" });
    await eventually(() => received.length === 1, { what: "a message on the renewed connection" });
  });
});

describe("tokens", () => {
  test("the token is refreshed before it expires and the connection stays open", async () => {
    let tokens = 0;
    const client = connect({
      tenant: "t-refresh",
      user: "carol",
      ttlSeconds: 3,
      refreshBeforeExpiryMs: 1_500,
      onToken: () => tokens++,
    });
    const states = [];
    const refreshes = [];
    client.on("state", (s) => states.push(s.state));
    client.on("refreshed", (r) => refreshes.push(r.expiresAt));
    await client.connect();
    const firstExpiry = client.expiresAt;
    const room = client.room("lobby");
    await room.ready;

    // Past the first token's expiry (the stack closes an unrefreshed
    // connection at its expiry with 4001).
    await new Promise((resolve) => setTimeout(resolve, 5_000));
    const received = [];
    room.on("message", (m) => received.push(m));
    await room.publish({ text: "still here" });
    await eventually(() => received.length === 1, { what: "a message after the first expiry" });

    assert.ok(tokens >= 2, `the provider was asked again (${tokens} tokens)`);
    assert.ok(refreshes.length >= 1 && client.expiresAt > firstExpiry, "the expiry moved on");
    assert.deepEqual(states, ["connecting", "connected"], "no reconnect was needed");
  });
});

describe("presence", () => {
  test("two clients see each other enter and leave", async () => {
    const alice = connect({ tenant: "t-presence", user: "alice" });
    const bob = connect({ tenant: "t-presence", user: "bob" });
    await Promise.all([alice.connect(), bob.connect()]);
    const aliceRoom = alice.room("lobby", { presence: true, state: { status: "online" } });
    await aliceRoom.ready;
    const notices = [];
    aliceRoom.on("presence", (n) => notices.push(n));
    const bobRoom = bob.room("lobby", { presence: true, state: { status: "busy" } });
    await bobRoom.ready;

    await eventually(() => aliceRoom.members.some((m) => m.user === "bob"), { what: "alice to see bob" });
    assert.deepEqual(aliceRoom.members.find((m) => m.user === "bob").state, { status: "busy" });
    await eventually(() => bobRoom.members.length === 2, { what: "bob to see both" });

    await bobRoom.setPresence({ status: "away" });
    await eventually(() => aliceRoom.members.find((m) => m.user === "bob")?.state?.status === "away", {
      what: "alice to see bob away",
    });

    bob.close();
    await eventually(() => !aliceRoom.members.some((m) => m.user === "bob"), {
      timeoutMs: 15_000,
      what: "alice to see bob leave",
    });
    assert.ok(notices.some((n) => n.type === "presence.left" && n.user === "bob"));
  });
});

describe("errors", () => {
  test("rate limiting is surfaced with the server's code and retry delay", async () => {
    // A stack of its own with a low frame rate, so the limit is reached
    // however fast the backend answers.
    const strict = await startStack(["--client-frame-rate", "2", "--client-frame-burst", "5"]);
    const client = strict.client({ tenant: "t-rate", user: "eager" });
    try {
      await client.connect();
      const room = client.room("lobby");
      await room.ready;
      const results = await Promise.allSettled(Array.from({ length: 20 }, (_, n) => room.publish({ n })));
      const refused = results.filter((r) => r.status === "rejected").map((r) => r.reason);
      assert.ok(refused.length > 0, "some publishes were over the frame rate");
      assert.ok(results.some((r) => r.status === "fulfilled"), "the burst was accepted");
      for (const error of refused) {
        assert.ok(error instanceof FanoutError, String(error));
        assert.equal(error.code, "rate_limited");
        assert.ok(error.retryAfterMs > 0, `retryAfterMs ${error.retryAfterMs}`);
      }
    } finally {
      client.close();
      await strict.stop();
    }
  });

  test("a room outside the token's capabilities is refused; a grant opens it", async () => {
    const client = connect({
      tenant: "t-grants",
      user: "dave",
      capabilities: { lobby: ["subscribe", "publish"] },
    });
    await client.connect();
    const refused = client.room("vip");
    await assert.rejects(refused.ready, (error) => {
      assert.ok(error instanceof FanoutError);
      assert.equal(error.code, "forbidden");
      assert.equal(error.room, "vip");
      assert.equal(error.right, "subscribe");
      return true;
    });

    let grants = 0;
    const vip = client.room("vip", {
      grant: () => {
        grants++;
        return stack.grant({ tenant: "t-grants", user: "dave", room: "vip", rights: ["subscribe", "publish"], ttlSeconds: 60 });
      },
    });
    await vip.ready;
    const received = [];
    vip.on("message", (m) => received.push(m));
    await vip.publish({ text: "in" });
    await eventually(() => received.length === 1, { what: "the message in the granted room" });

    // A rejoin asks for a fresh grant.
    await stack.disconnect(client.connectionId);
    await eventually(() => grants === 2 && client.state === "connected", { what: "the rejoin with a new grant" });
    await vip.publish({ text: "again" });
    await eventually(() => received.length === 2, { what: "a message after the rejoin" });
  });

  test("requests while the stack is unreachable fail with a timeout, not a hang", async () => {
    const outage = outageSwitch();
    outage.state.down = true;
    const client = connect({
      tenant: "t-down",
      user: "erin",
      WebSocketImpl: outage.WebSocket,
      requestTimeoutMs: 500,
      backoff: { initialDelayMs: 50, maxDelayMs: 100 },
    });
    void client.connect().catch(() => undefined);
    await assert.rejects(client.ping(), (error) => error instanceof FanoutError && error.code === "timeout");
    outage.state.down = false;
    await client.connect();
    await client.ping();
  });
});
