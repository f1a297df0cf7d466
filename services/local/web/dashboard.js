// The local dashboard: polls /_fanout/dashboard once a second and draws
// it. The chart is uPlot (vendored, see web/vendor/README.md).

const $ = (id) => document.getElementById(id);
const POLL_MS = 1000;
let chart;

function cell(text) {
  return Object.assign(document.createElement("td"), { textContent: String(text) });
}

function row(...cells) {
  const tr = document.createElement("tr");
  tr.append(...cells.map(cell));
  return tr;
}

function drawChart(data) {
  const xs = data.series.map((p) => p.startMs / 1000);
  const rate = data.series.map((p) => p.deliveriesPerSecond);
  const p99 = data.series.map((p) => p.p99Ms ?? null);
  const width = Math.max(300, $("chart").clientWidth);
  if (!chart) {
    chart = new uPlot(
      {
        width,
        height: 240,
        series: [
          {},
          { label: "deliveries/s", stroke: "#2f6fed", fill: "rgba(47,111,237,0.08)", scale: "rate" },
          { label: "p99 ms", stroke: "#d64545", scale: "ms", spanGaps: false },
        ],
        axes: [{}, { scale: "rate", label: "deliveries/s" }, { scale: "ms", side: 1, label: "p99 ms", grid: { show: false } }],
      },
      [xs, rate, p99],
      $("chart"),
    );
  } else {
    chart.setData([xs, rate, p99]);
    if (chart.width !== width) chart.setSize({ width, height: 240 });
  }
}

function render(data) {
  $("connections").textContent = data.connections.toLocaleString();
  const r = data.rooms;
  $("rooms-note").textContent =
    `${r.total} room(s) across the ${r.connectionsCounted} connection(s) counted` +
    (r.connectionsCounted < data.connections ? " (a sample)" : "");
  $("rooms").replaceChildren(
    ...(r.rooms.length ? r.rooms.map((room) => row(room.tenant, room.room, room.connections)) : [row("—", "no rooms", "")]),
  );

  const last = data.series.at(-1) ?? {};
  const recent = data.series.slice(-2);
  const rate = recent.reduce((sum, p) => sum + p.deliveriesPerSecond, 0) / Math.max(1, recent.length);
  $("rate").textContent = rate.toFixed(0);
  const p99 = [...data.series].reverse().find((p) => p.p99Ms != null)?.p99Ms;
  $("p99").textContent = p99 == null ? "–" : `${p99} ms`;
  $("rate").dataset.bucketStart = String(last.startMs ?? "");
  drawChart(data);

  $("queues").replaceChildren(
    ...data.queues.map((q) => {
      const tr = row(q.name + (q.deadLetter ? " (DLQ)" : ""), q.visible ?? "?", q.inFlight ?? "?", q.delayed ?? "?");
      tr.dataset.queue = q.name;
      if (q.deadLetter && (q.visible || q.inFlight || q.delayed)) tr.className = "nonzero";
      if (q.error) tr.title = q.error;
      return tr;
    }),
  );

  const letters = data.deadLetters.messages;
  const box = $("dead-letters");
  if (letters.length === 0 && data.deadLetters.errors.length === 0) {
    box.textContent = "none";
  } else {
    box.replaceChildren(
      ...letters.map((m) => Object.assign(document.createElement("pre"), { textContent: `${m.queue}\n${m.description}` })),
      ...data.deadLetters.errors.map((e) => Object.assign(document.createElement("p"), { className: "error", textContent: e })),
    );
  }
}

async function poll() {
  const health = $("health");
  try {
    const response = await fetch("/_fanout/dashboard", { cache: "no-store" });
    if (!response.ok) throw new Error(`${response.status} ${await response.text()}`);
    render(await response.json());
    health.dataset.state = "connected";
    health.textContent = "live";
    $("updated").textContent = `updated ${new Date().toLocaleTimeString()}`;
  } catch (error) {
    health.dataset.state = "disconnected";
    health.textContent = "stack unreachable";
    health.title = String(error);
  } finally {
    setTimeout(poll, POLL_MS);
  }
}

poll();
