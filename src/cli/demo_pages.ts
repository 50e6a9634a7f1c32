/**
 * @module
 * The pages of `serve --demo`: a consumer that charts a live stream and a producer that sends
 * one (a sine wave, or what you type). Plain HTML and one ES module each, importing the
 * browser bundle from `/hydra-relay.browser.js`; the relay's WebSocket address comes from
 * `/demo.json`. Kept as strings so they ship inside the package on every registry.
 */

const STYLE = `
  body { font: 15px/1.4 system-ui, sans-serif; margin: 2rem auto; max-width: 860px; color: #1d2330; }
  h1 { font-size: 1.4rem; } label, input, button { font: inherit; }
  input[type=text], input[type=password] { width: 100%; box-sizing: border-box; padding: .4rem; font-family: monospace; }
  button { padding: .4rem 1rem; margin-top: .5rem; }
  canvas { width: 100%; height: 280px; border: 1px solid #c8ccd6; background: #fbfcfe; }
  #status { font-family: monospace; margin: .6rem 0; }
  #log { font-family: monospace; white-space: pre; height: 8.5em; overflow: hidden; color: #4a5263; }
  .err { color: #b00020; }`;

/** The consumer page: paste a token, watch the stream. */
export const CONSUMER_PAGE: string = `<!doctype html>
<html lang="en"><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>hydra relay · live stream</title>
<style>${STYLE}</style>
<h1>hydra relay · live stream</h1>
<p>The relay forwards ciphertext only; this page decrypts with the session token, which never
leaves the browser. Numbers (or JSON with a <code>value</code>) are charted; everything else is
listed.</p>
<label>Session token <input id="token" type="password" placeholder="hydra1_…" autocomplete="off"></label>
<button id="go">Connect</button> <a href="/producer.html">producer page</a>
<div id="status">not connected</div>
<canvas id="chart" width="1600" height="560"></canvas>
<div id="log"></div>
<script type="module">
import { Consumer, Session } from "/hydra-relay.browser.js";
const $ = (id) => document.getElementById(id);
// A token in the URL goes in the fragment (#token=…), which browsers never send to a server.
const q = new URLSearchParams(location.hash.slice(1));
if (q.get("token")) $("token").value = q.get("token");
const values = [];
let count = 0;
function draw() {
  const c = $("chart"), g = c.getContext("2d");
  g.clearRect(0, 0, c.width, c.height);
  if (values.length === 0) return;
  const lo = Math.min(...values), hi = Math.max(...values), span = hi - lo || 1;
  g.strokeStyle = "#2563eb"; g.lineWidth = 4; g.beginPath();
  values.forEach((v, i) => {
    const x = values.length === 1 ? c.width / 2 : (i / (values.length - 1)) * (c.width - 20) + 10;
    const y = c.height - 10 - ((v - lo) / span) * (c.height - 20);
    i === 0 ? g.moveTo(x, y) : g.lineTo(x, y);
  });
  g.stroke();
}
async function run() {
  $("go").disabled = true;
  try {
    const session = Session.fromToken($("token").value);
    const demo = await (await fetch("/demo.json")).json();
    const websocket = demo.websocket ?? location.hostname + ":" + demo.port;
    $("status").textContent = "connecting to " + websocket + " …";
    const consumer = await Consumer.connect(websocket, session);
    consumer.on("stream-start", () => ($("status").textContent = "streaming"));
    consumer.on("lagged", (g) => ($("log").textContent = "gap: frames " + g.from + "…" + g.to + "\\n" + $("log").textContent));
    $("status").textContent = "connected, waiting for the producer";
    const text = new TextDecoder();
    for await (const m of consumer) {
      count++;
      const s = text.decode(m);
      let v = Number(s);
      if (!Number.isFinite(v)) { try { v = Number(JSON.parse(s).value); } catch { v = NaN; } }
      if (Number.isFinite(v)) { values.push(v); if (values.length > 300) values.shift(); }
      $("status").textContent = count + " messages · last " + (Number.isFinite(v) ? v.toFixed(2) : JSON.stringify(s.slice(0, 40)));
      $("log").textContent = (s.slice(0, 120) + "\\n" + $("log").textContent).slice(0, 2000);
      draw();
    }
    $("status").textContent += " · stream ended";
    document.body.dataset.done = "1";
  } catch (e) {
    $("status").innerHTML = '<span class="err"></span>';
    $("status").firstChild.textContent = String(e.message || e);
    $("go").disabled = false;
  }
}
$("go").onclick = run;
if (q.get("token")) run();
</script>
</html>
`;

/** The producer page: sends a sine wave, or typed lines. */
export const PRODUCER_PAGE: string = `<!doctype html>
<html lang="en"><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>hydra relay · producer</title>
<style>${STYLE}</style>
<h1>hydra relay · producer</h1>
<p>Sends a sine wave (10 values a second) to every consumer of the session, sealed in this
browser. Or type a line and press Enter.</p>
<label>Session token <input id="token" type="password" placeholder="hydra1_…" autocomplete="off"></label>
<button id="go">Start</button> <a href="/">consumer page</a>
<div id="status">not started</div>
<label>Send a line <input id="line" type="text" disabled></label>
<script type="module">
import { Producer, Session } from "/hydra-relay.browser.js";
const $ = (id) => document.getElementById(id);
// A token in the URL goes in the fragment (#token=…), which browsers never send to a server.
const q = new URLSearchParams(location.hash.slice(1));
if (q.get("token")) $("token").value = q.get("token");
$("go").onclick = async () => {
  $("go").disabled = true;
  try {
    const session = Session.fromToken($("token").value);
    const demo = await (await fetch("/demo.json")).json();
    const websocket = demo.websocket ?? location.hostname + ":" + demo.port;
    const producer = await Producer.connect(websocket, session);
    const enc = new TextEncoder();
    let i = 0;
    setInterval(() => {
      const v = 50 + 40 * Math.sin(i++ / 8);
      producer.broadcast(enc.encode(v.toFixed(2)));
      $("status").textContent = i + " values sent · last " + v.toFixed(2);
    }, 100);
    $("line").disabled = false;
    $("line").onkeydown = (e) => {
      if (e.key === "Enter") { producer.broadcast(enc.encode($("line").value)); $("line").value = ""; }
    };
  } catch (e) {
    $("status").textContent = String(e.message || e);
    $("go").disabled = false;
  }
};
</script>
</html>
`;
