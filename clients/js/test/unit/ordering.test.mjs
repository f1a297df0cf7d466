// The ordering and backoff logic alone (no stack).

import assert from "node:assert/strict";
import { test } from "node:test";
import { SeqOrderer, backoffDelay } from "../../dist/index.js";

const event = (seq) => ({ type: "message", id: `e${seq}`, room: "r", seq, sentAt: "" });
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function orderer(history = []) {
  const delivered = [];
  const skipped = [];
  const fetches = [];
  const o = new SeqOrderer({
    waitMs: 20,
    maxBuffered: 100,
    maxFills: 3,
    deliver: (e) => delivered.push(e.seq),
    skipped: (from, to) => skipped.push([from, to]),
    fetchAfter: async (after) => {
      fetches.push(after);
      const messages = history.filter((e) => e.seq > after).slice(0, 2);
      return { messages, more: history.some((e) => e.seq > (messages.at(-1)?.seq ?? after)) };
    },
  });
  return { o, delivered, skipped, fetches };
}

test("events arrive out of order and twice; the app sees each once, in order", () => {
  const { o, delivered } = orderer();
  o.start(10);
  for (const seq of [12, 11, 11, 10, 14, 13, 12]) o.push(event(seq));
  assert.deepEqual(delivered, [11, 12, 13, 14]);
  o.close();
});

test("events before the join answers wait for it, and those at or below its seq are dropped", () => {
  const { o, delivered } = orderer();
  o.push(event(5));
  o.push(event(6));
  assert.deepEqual(delivered, []);
  o.start(5);
  assert.deepEqual(delivered, [6]);
  assert.equal(o.buffered, 0, "nothing left waiting (no history fill for old events)");
  o.close();
});

test("a gap still open after the wait is filled from history; a number history never shows is skipped on the last try", async () => {
  // 3 was never stored (its planner died); 4 and 5 are stored.
  const { o, delivered, skipped, fetches } = orderer([event(2), event(4), event(5)]);
  o.start(1);
  o.push(event(6));
  assert.deepEqual(delivered, []);
  await sleep(200);
  assert.deepEqual(delivered, [2, 4, 5, 6]);
  assert.deepEqual(skipped, [[3, 3]]);
  assert.deepEqual(fetches, [1, 2, 2, 2], "three tries on the gap at 3");
  o.close();
});

test("a number stored after a later one (concurrent planners) is waited for, not skipped", async () => {
  // 3 is numbered before 4 but stored after it: the first fill sees 2, 4.
  const history = [event(2), event(4)];
  const { o, delivered, skipped, fetches } = orderer(history);
  o.start(1);
  o.push(event(4));
  await sleep(30);
  assert.deepEqual(delivered, [2]);
  history.splice(1, 0, event(3));
  o.push(event(3)); // its live delivery comes too
  await sleep(100);
  assert.deepEqual(delivered, [2, 3, 4]);
  assert.deepEqual(skipped, []);
  assert.equal(fetches[0], 1);
  o.close();
});

test("a head above the last seq (from joined) is fetched even with nothing buffered", async () => {
  const { o, delivered } = orderer([event(1), event(2), event(3)]);
  o.start(0);
  o.expectUpTo(3);
  await sleep(150);
  assert.deepEqual(delivered, [1, 2, 3]);
  o.close();
});

test("a gap history cannot explain is skipped after the last try", async () => {
  const { o, delivered, skipped } = orderer([]);
  o.start(1);
  o.push(event(4));
  await sleep(300);
  assert.deepEqual(delivered, [4]);
  assert.deepEqual(skipped, [[2, 3]]);
  o.close();
});

test("backoff grows, is capped, and is jittered within [step/2, step]", () => {
  const options = { initialDelayMs: 100, maxDelayMs: 1_000, multiplier: 2 };
  assert.equal(backoffDelay(0, options, () => 0), 50);
  assert.equal(backoffDelay(0, options, () => 1), 100);
  assert.equal(backoffDelay(3, options, () => 1), 800);
  assert.equal(backoffDelay(10, options, () => 1), 1_000);
  assert.equal(backoffDelay(10, options, () => 0), 500);
});

test("a gap that cannot be read now waits for new input instead of polling", async () => {
  let fetches = 0;
  const delivered = [];
  const o = new SeqOrderer({
    waitMs: 10,
    maxBuffered: 100,
    maxFills: 3,
    deliver: (e) => delivered.push(e.seq),
    fetchAfter: async () => {
      fetches++;
      return null;
    },
  });
  o.start(0);
  o.push(event(2));
  await sleep(150);
  assert.equal(fetches, 1, "one try, then it waits");
  o.push(event(1)); // the rejoin's replay, say
  assert.deepEqual(delivered, [1, 2]);
  o.close();
});
