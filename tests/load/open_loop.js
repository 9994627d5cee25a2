// An open-loop load generator for tests/load/load.py (docs/performance.md): POSTs
// pre-signed deliveries at a fixed rate, each due at its scheduled time whether or not
// the answers before it have come back (over at most CONNECTIONS connections: one due
// while all are busy waits for a free one), and times each answer from that scheduled
// time (as wrk2 does), so a server that stalls is charged for every request the stall
// delays.
//
// usage: node tests/load/open_loop.js URL REQUESTS RATE SECONDS CONNECTIONS
//   REQUESTS: one "signature<TAB>body" per line (PeopleForce deliveries, as load.py
//   writes them); the signature goes in X-PeopleForce-Signature.
// The first WARM_UP (5) seconds at the same rate are sent and not counted: connections
// open, and Node's compiler (the generator's, and Express's) warms up.
// Prints one JSON line: sent, answered, non_2xx, errors, rate (answers a second),
// p50_ms, p99_ms, p999_ms, max_ms, and late_ms: the most this process sent a request
// after its scheduled time (if it is large, the generator, not the server, fell behind).
const fs = require('fs');
const http = require('http');

const [url, file, rateText, secondsText, connectionsText] = process.argv.slice(2);
const rate = Number(rateText);
const seconds = Number(secondsText);
const target = new URL(url);
const agent = new http.Agent({ keepAlive: true, maxSockets: Number(connectionsText) });
const WARM_UP = 5;
const warmUp = rate * WARM_UP;
const total = rate * (WARM_UP + seconds);
const lines = fs.readFileSync(file, 'utf8').split('\n', total).filter(Boolean);
if (lines.length < total) throw new Error(`${lines.length} requests cannot last ${WARM_UP} + ${seconds} s at ${rate}/s`);
const requests = lines.map((line) => {
  const tab = line.indexOf('\t');
  return [line.slice(0, tab), Buffer.from(line.slice(tab + 1))];
});

const latencies = new Float64Array(total - warmUp);
let settled = 0;
let answered = 0;
let non2xx = 0;
let errors = 0;
let late = 0;
let next = 0;
const start = performance.now() + 50;
const measuredFrom = start + WARM_UP * 1000;
let lastAnswer = measuredFrom;

function finished() {
  const sorted = Array.from(latencies.subarray(0, answered)).sort((a, b) => a - b);
  const at = (q) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
  const elapsed = (lastAnswer - measuredFrom) / 1000;
  console.log(JSON.stringify({
    sent: next - warmUp, answered, non_2xx: non2xx, errors, rate: answered / elapsed,
    p50_ms: at(0.5), p99_ms: at(0.99), p999_ms: at(0.999), max_ms: sorted[sorted.length - 1],
    late_ms: late,
  }));
  agent.destroy();
}

function send(index, scheduled) {
  const [signature, body] = requests[index];
  const request = http.request({
    agent, host: target.hostname, port: target.port, path: target.pathname, method: 'POST',
    headers: { 'Content-Type': 'application/json', 'Content-Length': body.length, 'X-PeopleForce-Signature': signature },
    timeout: 30000,
  }, (response) => {
    response.resume();
    response.on('end', () => {
      if (index >= warmUp) {
        lastAnswer = performance.now();
        latencies[answered++] = lastAnswer - scheduled;
        if (response.statusCode < 200 || response.statusCode > 299) non2xx++;
      }
      if (++settled === total) finished();
    });
  });
  request.on('timeout', () => request.destroy(new Error('timed out')));
  request.on('error', () => {
    if (index >= warmUp) errors++;
    if (++settled === total) finished();
  });
  request.end(body);
}

// Every millisecond, send each request whose time has come (the agent queues a request
// when all its connections are busy; its time still counts from its schedule).
const timer = setInterval(() => {
  const now = performance.now();
  while (next < total) {
    const scheduled = start + (next * 1000) / rate;
    if (scheduled > now) break;
    if (next >= warmUp) late = Math.max(late, now - scheduled);
    send(next, scheduled);
    next++;
  }
  if (next === total) clearInterval(timer);
}, 1);
