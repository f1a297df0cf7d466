// The demo chat and the dashboard in a real browser (headless Chromium),
// against the real local stack.

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import WebSocket from "ws";
import { FanoutClient } from "../dist/index.js";
import { launch, screenshot } from "./helpers/browser.mjs";
import { eventually, reportLeaksAtExit, startStack } from "./helpers/stack.mjs";

let stack;
let browser;
before(async () => {
  stack = await startStack();
  browser = await launch();
});
after(async () => {
  await browser?.close();
  await stack?.stop();
  reportLeaksAtExit();
});

/** A page signed in to the demo as `user`, connected. */
async function chatAs(context, user) {
  const page = await context.newPage();
  page.on("pageerror", (error) => console.error(`[${user}] page error:`, error));
  await page.goto(`${stack.httpUrl}/demo?tenant=t-demo&user=${user}&rooms=lobby`);
  await page.locator('#state[data-state="connected"]').waitFor();
  return page;
}

async function send(page, text) {
  await page.fill("#text", text);
  await page.press("#text", "Enter");
}

const messageTexts = (page) => page.locator("#messages li .text").allTextContents();

describe("demo chat", () => {
  test("two users chat; one is disconnected server-side and, back, shows what it missed", async () => {
    const aliceContext = await browser.newContext();
    const bobContext = await browser.newContext();
    try {
      const alice = await chatAs(aliceContext, "alice");
      const bob = await chatAs(bobContext, "bob");

      // Presence: each sees the other.
      await alice.locator("#presence li", { hasText: "bob" }).waitFor();
      await bob.locator("#presence li", { hasText: "alice" }).waitFor();

      await send(alice, "hello bob");
      await bob.locator("#messages li", { hasText: "hello bob" }).waitFor();
      assert.equal(await bob.locator("#messages li", { hasText: "hello bob" }).locator(".from").textContent(), "alice");

      // Typing indicator: a signal from alice's keystrokes.
      await alice.fill("#text", "typing…");
      await bob.locator("#typing", { hasText: "alice is typing" }).waitFor();
      await alice.fill("#text", "");

      // bob's network goes away, and the server drops his connection.
      const bobConnection = await bob.locator("#state").getAttribute("data-connection-id");
      assert.ok(bobConnection, "the badge carries the connection id");
      await bobContext.setOffline(true);
      await stack.disconnect(bobConnection);
      await bob.locator('#state[data-state="reconnecting"]').waitFor();

      for (const text of ["missed one", "missed two", "missed three"]) await send(alice, text);
      await alice.locator("#messages li", { hasText: "missed three" }).waitFor();
      assert.equal(await bob.locator("#messages li", { hasText: "missed" }).count(), 0);

      await bobContext.setOffline(false);
      await bob.locator('#state[data-state="connected"]').waitFor({ timeout: 20_000 });
      await bob.locator("#messages li", { hasText: "missed three" }).waitFor();
      assert.deepEqual(await messageTexts(bob), ["hello bob", "missed one", "missed two", "missed three"]);
      assert.notEqual(await bob.locator("#state").getAttribute("data-connection-id"), bobConnection);

      // alice edits and deletes her own messages; bob sees both.
      const mine = alice.locator("#messages li", { hasText: "missed one" });
      alice.once("dialog", (dialog) => dialog.accept("found one"));
      await mine.hover();
      await mine.locator("button", { hasText: "edit" }).click();
      await bob.locator("#messages li", { hasText: "found one" }).waitFor();
      const two = alice.locator("#messages li", { hasText: "missed two" });
      await two.hover();
      await two.locator("button", { hasText: "delete" }).click();
      await bob.locator("#messages li.deleted").waitFor();
      // Nobody else's message has edit buttons.
      assert.equal(await bob.locator("#messages li", { hasText: "found one" }).locator("button").count(), 0);

      console.log(`screenshots: ${await screenshot(alice, "demo-alice")}, ${await screenshot(bob, "demo-bob")}`);
    } finally {
      await aliceContext.close();
      await bobContext.close();
    }
  });

  test("scrolling back loads older messages from history", async () => {
    await stack.putEvents(
      Array.from({ length: 10 }, (_, n) => ({ tenant: "t-demo", target: { room: "archive" }, data: { text: `old ${n}` } })),
    );
    await stack.putEvents(
      Array.from({ length: 10 }, (_, n) => ({ tenant: "t-demo", target: { room: "archive" }, data: { text: `old ${n + 10}` } })),
    );
    await stack.putEvents(
      Array.from({ length: 5 }, (_, n) => ({ tenant: "t-demo", target: { room: "archive" }, data: { text: `old ${n + 20}` } })),
    );
    await eventually(async () => {
      const r = await fetch(`${stack.httpUrl}/_fanout/history?tenant=t-demo&room=archive&limit=100`);
      return (await r.json()).messages.length === 25;
    }, { what: "25 stored messages" });
    const context = await browser.newContext();
    try {
      const page = await context.newPage();
      await page.goto(`${stack.httpUrl}/demo?tenant=t-demo&user=carol&rooms=archive`);
      await page.locator("#messages li").nth(19).waitFor();
      assert.equal(await page.locator("#messages li").count(), 20, "the newest page");
      await page.click("#older");
      await page.locator("#messages li", { hasText: "old 0" }).waitFor();
      assert.equal(await page.locator("#messages li").count(), 25);
      assert.equal(await page.locator("#older").isDisabled(), true, "nothing older");
    } finally {
      await context.close();
    }
  });
});

describe("dashboard", () => {
  test("shows connections, rooms, queues, deliveries and dead letters", async () => {
    const clients = ["ann", "ben", "cat"].map(
      (user) =>
        new FanoutClient({
          url: stack.wsUrl,
          WebSocket,
          token: () => stack.token({ tenant: "t-dash", user }),
        }),
    );
    try {
      await Promise.all(clients.map((c) => c.connect()));
      await Promise.all(clients.map((c) => c.room("ops").ready));
      await clients[0].room("standup").ready;
      for (let n = 0; n < 5; n++) {
        await stack.putEvents([{ tenant: "t-dash", target: { room: "ops" }, data: { n } }]);
      }
      // A broadcast the planner cannot read: dead-lettered at once, with its reason.
      await stack.putEvents([{ tenant: "t-dash", target: {} }]);

      const context = await browser.newContext({ viewport: { width: 1280, height: 1000 } });
      const page = await context.newPage();
      page.on("pageerror", (error) => console.error("dashboard page error:", error));
      await page.goto(`${stack.httpUrl}/dashboard`);
      await page.locator('#health[data-state="connected"]').waitFor();
      // Connections of this file's other tests may be closing: at least ours.
      await eventually(async () => Number((await page.locator("#connections").textContent()).replace(/\D/g, "")) >= 3, {
        what: "the connection count",
      });
      await page.locator("#rooms tr", { hasText: "ops" }).locator("td", { hasText: /^3$/ }).waitFor();
      await page.locator("#rooms tr", { hasText: "standup" }).waitFor();
      await page.locator("#queues tr", { hasText: "plan-dlq" }).waitFor();
      await page.locator("#dead-letters pre", { hasText: "bad_detail" }).waitFor({ timeout: 15_000 });
      assert.match(await page.locator("#queues tr.nonzero").first().textContent(), /plan-dlq/);
      await page.locator("#chart canvas").waitFor();
      await eventually(async () => (await page.locator("#p99").textContent()).endsWith("ms"), {
        what: "a p99 from the deliveries",
      });
      console.log(`screenshot: ${await screenshot(page, "dashboard")}`);
      await context.close();
    } finally {
      for (const c of clients) c.close();
    }
  });
});
