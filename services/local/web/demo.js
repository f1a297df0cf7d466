// The demo chat: every feature of the client SDK on one page. It loads the
// SDK as built (/sdk/index.js) and gets its tokens from the local stack's
// development endpoint. ?user=alice&rooms=lobby,random&tenant=acme signs
// in at once (handy for two windows side by side).

import { FanoutClient } from "/sdk/index.js";

const stage = document.querySelector('meta[name="fanout-stage"]').content;
const $ = (id) => document.getElementById(id);
/** How long a typing indicator shows after the last signal. */
const TYPING_SHOWN_MS = 3000;
/** Soonest a second typing signal is sent. */
const TYPING_SIGNAL_EVERY_MS = 2000;
/** Messages per history page. */
const PAGE = 20;

let client;
let me;
/** Per room: its SDK room, rendered messages by seq, unread count, typists. */
const rooms = new Map();
let current;

function start({ tenant, user, roomNames }) {
  me = user;
  $("login").hidden = true;
  $("chat").hidden = false;
  $("identity").textContent = `${user} @ ${tenant}`;
  client = new FanoutClient({
    url: `ws://${location.host}/${stage}`,
    token: async () => {
      const response = await fetch("/_fanout/dev/token", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ tenant, user }),
      });
      if (!response.ok) throw new Error(`token endpoint: ${response.status} ${await response.text()}`);
      return (await response.json()).token;
    },
    backoff: { initialDelayMs: 250, maxDelayMs: 5000 },
  });
  client.on("state", showState);
  client.on("error", (error) => showError(`${error.code}: ${error.message}`));
  for (const name of roomNames) addRoom(name);
  select(roomNames[0]);
  client.connect().catch((error) => showError(error.message));
}

function showState(change) {
  const badge = $("state");
  badge.dataset.state = change.state;
  badge.dataset.connectionId = client.connectionId ?? "";
  badge.textContent = change.state;
  badge.title = change.reason ?? (client.connectionId ? `connection ${client.connectionId}` : "");
}

function showError(text) {
  const p = $("error");
  p.textContent = text;
  p.hidden = !text;
}

function addRoom(name) {
  const room = client.room(name, { presence: true, state: { since: new Date().toISOString() } });
  const entry = { room, bySeq: new Map(), unread: 0, typists: new Map(), oldest: undefined, loaded: false };
  rooms.set(name, entry);

  const li = document.createElement("li");
  li.dataset.room = name;
  li.textContent = `# ${name}`;
  li.addEventListener("click", () => select(name));
  $("room-list").append(li);

  room.ready.then(
    () => loadLatest(entry),
    (error) => showError(`${name}: ${error.code} ${error.message}`),
  );
  room.on("message", (m) => {
    render(entry, m);
    if (current !== name) {
      entry.unread++;
      renderRoomList();
    }
  });
  room.on("update", (u) => {
    const shown = entry.bySeq.get(u.ref);
    if (shown) render(entry, { ...shown.message, data: u.data, updatedAt: u.sentAt });
  });
  room.on("delete", (d) => {
    const shown = entry.bySeq.get(d.ref);
    if (shown) render(entry, { ...shown.message, data: undefined, deleted: true });
  });
  room.on("signal", (s) => {
    const who = s.from?.user;
    if (!who || who === me) return;
    clearTimeout(entry.typists.get(who));
    entry.typists.set(who, setTimeout(() => {
      entry.typists.delete(who);
      renderTyping();
    }, TYPING_SHOWN_MS));
    renderTyping();
  });
  room.on("members", () => name === current && renderPresence());
  room.on("reset", (r) => {
    // Messages were lost while away: start over from the newest page.
    notice(`Some messages (${r.from}–${r.to}) are no longer available; reloaded.`);
    entry.bySeq.clear();
    if (name === current) $("messages").replaceChildren();
    void loadLatest(entry);
  });
}

async function loadLatest(entry) {
  try {
    const page = await entry.room.history({ limit: PAGE });
    for (const m of page.messages) if (m.type === "message") render(entry, m);
    entry.loaded = true;
    $("older").disabled = !page.more;
  } catch (error) {
    showError(`history: ${error.code ?? ""} ${error.message}`);
  }
}

async function loadOlder() {
  const entry = rooms.get(current);
  if (!entry || entry.oldest === undefined) return;
  try {
    const page = await entry.room.history({ before: entry.oldest, limit: PAGE });
    for (const m of page.messages) if (m.type === "message") render(entry, m);
    $("older").disabled = !page.more;
  } catch (error) {
    showError(`history: ${error.code ?? ""} ${error.message}`);
  }
}

function select(name) {
  current = name;
  const entry = rooms.get(name);
  entry.unread = 0;
  $("room-title").textContent = `# ${name}`;
  const list = $("messages");
  list.replaceChildren(...[...entry.bySeq.keys()].sort((a, b) => a - b).map((seq) => entry.bySeq.get(seq).li));
  list.scrollTop = list.scrollHeight;
  renderRoomList();
  renderPresence();
  renderTyping();
}

/** Shows (or re-renders) one message in its place by seq. */
function render(entry, message) {
  const seq = message.seq;
  if (seq === undefined) return;
  const existing = entry.bySeq.get(seq);
  const li = existing?.li ?? document.createElement("li");
  li.dataset.seq = String(seq);
  li.className = message.deleted ? "deleted" : "";
  const sender = message.from?.user ?? message.from?.service ?? "?";
  const text = message.deleted ? "(deleted)" : textOf(message.data);
  li.replaceChildren();
  const from = Object.assign(document.createElement("span"), { className: "from", textContent: sender });
  const body = Object.assign(document.createElement("span"), { className: "text", textContent: text });
  const meta = Object.assign(document.createElement("span"), {
    className: "meta",
    textContent: `#${seq} ${new Date(message.sentAt).toLocaleTimeString()}${message.updatedAt && !message.deleted ? " (edited)" : ""}`,
  });
  li.append(from, body, meta);
  if (message.from?.user === me && !message.deleted) li.prepend(actions(entry, seq));
  entry.bySeq.set(seq, { li, message });
  entry.oldest = Math.min(entry.oldest ?? seq, seq);
  if (entry.room.name !== current) return;
  const list = $("messages");
  const atBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 40;
  if (!existing) {
    const after = [...list.children].find((other) => Number(other.dataset.seq) > seq);
    list.insertBefore(li, after ?? null);
  }
  if (atBottom) list.scrollTop = list.scrollHeight;
}

function actions(entry, seq) {
  const span = Object.assign(document.createElement("span"), { className: "actions" });
  const edit = Object.assign(document.createElement("button"), { type: "button", textContent: "edit" });
  edit.addEventListener("click", async () => {
    const text = prompt("Edit message", textOf(entry.bySeq.get(seq)?.message.data));
    if (text === null) return;
    await entry.room.update(seq, { text }).catch((e) => showError(`${e.code}: ${e.message}`));
  });
  const del = Object.assign(document.createElement("button"), { type: "button", textContent: "delete" });
  del.addEventListener("click", () => entry.room.delete(seq).catch((e) => showError(`${e.code}: ${e.message}`)));
  span.append(edit, del);
  return span;
}

function textOf(data) {
  if (data && typeof data === "object" && typeof data.text === "string") return data.text;
  return JSON.stringify(data);
}

function renderRoomList() {
  for (const li of $("room-list").children) {
    const entry = rooms.get(li.dataset.room);
    li.setAttribute("aria-current", String(li.dataset.room === current));
    li.textContent = `# ${li.dataset.room}`;
    if (entry.unread > 0) {
      li.append(Object.assign(document.createElement("span"), { className: "unread", textContent: String(entry.unread) }));
    }
  }
}

function renderPresence() {
  const entry = rooms.get(current);
  $("presence").replaceChildren(
    ...entry.room.members.map((m) =>
      Object.assign(document.createElement("li"), {
        textContent: m.connections > 1 ? `${m.user} (${m.connections} tabs)` : m.user,
      }),
    ),
  );
}

function renderTyping() {
  const names = [...(rooms.get(current)?.typists.keys() ?? [])];
  $("typing").textContent = names.length === 0 ? "\u00a0" : `${names.join(", ")} ${names.length === 1 ? "is" : "are"} typing…`;
}

function notice(text) {
  const p = $("notice");
  p.textContent = text;
  p.hidden = false;
}

let lastTypingSignal = 0;
$("text").addEventListener("input", () => {
  const entry = rooms.get(current);
  if (!entry || Date.now() - lastTypingSignal < TYPING_SIGNAL_EVERY_MS) return;
  lastTypingSignal = Date.now();
  entry.room.signal({ typing: true }).catch(() => undefined);
});

$("composer").addEventListener("submit", async (event) => {
  event.preventDefault();
  const input = $("text");
  const text = input.value.trim();
  if (!text) return;
  input.value = "";
  try {
    await rooms.get(current).room.publish({ text });
    showError("");
  } catch (error) {
    input.value = text;
    showError(`${error.code}: ${error.message}`);
  }
});

$("older").addEventListener("click", () => void loadOlder());

$("login").addEventListener("submit", (event) => {
  event.preventDefault();
  const form = new FormData(event.target);
  start({
    tenant: String(form.get("tenant")).trim(),
    user: String(form.get("user")).trim(),
    roomNames: String(form.get("rooms")).split(",").map((r) => r.trim()).filter(Boolean),
  });
});

const params = new URLSearchParams(location.search);
if (params.get("user")) {
  start({
    tenant: params.get("tenant") ?? "acme",
    user: params.get("user"),
    roomNames: (params.get("rooms") ?? "lobby").split(",").map((r) => r.trim()).filter(Boolean),
  });
}
