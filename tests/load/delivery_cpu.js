// The yardstick of `cargo bench -p okr-consumers --bench delivery_cpu`: the same steps
// in Node (no packages): verify the PeopleForce sample's HMAC-SHA256 signature in
// constant time, parse the body, build the normalized event (the fields ingest reads,
// the id from SHA-256 of the body), and encode it for its three queues (the whole event,
// the notification view without the personal data, and that view with the directory's
// fields for the progress queue).
//
// usage: node tests/load/delivery_cpu.js     (run from the repository; docs/performance.md)
const crypto = require('crypto');
const fs = require('fs');

const body = fs.readFileSync('events/bodies/peopleforce/employee_create.json');
const secret = 'pf-test-secret';
const header = 'sha256=' + crypto.createHmac('sha256', secret).update(body).digest('hex');

function delivery() {
  const expected = Buffer.from(crypto.createHmac('sha256', secret).update(body).digest('hex'));
  const given = Buffer.from(header.slice('sha256='.length));
  if (given.length !== expected.length || !crypto.timingSafeEqual(given, expected)) throw new Error('signature');
  const payload = JSON.parse(body.toString('utf8'));
  const data = payload.data || {};
  const attributes = data.attributes || data;
  const digest = crypto.createHash('sha256').update('peopleforce').update(Buffer.from([0])).update(body).digest('hex');
  const now = new Date().toISOString();
  const event = {
    schema: 'okr-webhooks.event.v1',
    id: 'evt_' + digest.slice(0, 32),
    source: 'peopleforce',
    type: 'employee.created',
    provider_event: payload.action,
    entity: { kind: 'employee', id: String(data.id), name: `${attributes.first_name} ${attributes.last_name}` },
    occurred_at: new Date(attributes.created_at || now).toISOString(),
    received_at: now,
    actor: null, status: null, progress: null, changed_fields: [],
    related: { department: attributes.department && attributes.department.name },
    payload,
  };
  const cut = { data: { department: attributes.department } };
  const whole = JSON.stringify(event);
  const view = JSON.stringify({ ...event, payload: cut });
  // The progress queue's: the notification view with the directory's fields.
  const person = {
    id: String(data.id), name: event.entity.name, email: attributes.email,
    department: attributes.department && attributes.department.name,
    position: attributes.position && attributes.position.name, active: true,
  };
  const progress = JSON.stringify({ ...event, person, payload: cut });
  return whole.length + view.length + progress.length;
}

for (let i = 0; i < 200000; i++) delivery(); // warm up the JIT
const runs = 1000000;
const started = process.hrtime.bigint();
let bytes = 0;
for (let i = 0; i < runs; i++) bytes += delivery();
const elapsed = Number(process.hrtime.bigint() - started) / runs / 1000;
console.log(`Node ${process.version}: ${elapsed.toFixed(2)} us per delivery (${body.length} B body, ${bytes / runs} B encoded)`);
