// Checks the running server against docs/api/openapi.yaml: every operation of the document
// is exercised, every answer's status is one the document lists for that operation, and
// every JSON body validates against the documented schema. Also: no route answers that the
// document does not describe. Usage: node openapi_check.mjs OPENAPI_YAML INFO_JSON CHAT_TXT
import { readFileSync } from "node:fs";
import assert from "node:assert/strict";
import YAML from "yaml";
import Ajv from "ajv";

const spec = YAML.parse(readFileSync(process.argv[2], "utf8"));
const info = JSON.parse(readFileSync(process.argv[3], "utf8"));
const chat = readFileSync(process.argv[4], "utf8");
const base = `http://127.0.0.1:${info.port}`;

const ajv = new Ajv({ strict: false, allErrors: true });
const rewrite = (v) =>
  Array.isArray(v) ? v.map(rewrite)
  : v && typeof v === "object"
    ? Object.fromEntries(Object.entries(v).map(([k, x]) => [k, k === "$ref" && x.startsWith("#/") ? `spec${x}` : rewrite(x)]))
    : v;
ajv.addSchema({ $id: "spec", components: rewrite(spec.components) });

function operation(method, path) {
  for (const [tpl, ops] of Object.entries(spec.paths)) {
    const re = new RegExp("^" + tpl.replace(/\{[^}]+\}/g, "[^/]+") + "$");
    if (re.test(path) && ops[method.toLowerCase()]) return { tpl, op: ops[method.toLowerCase()] };
  }
  return null;
}

function resolveResponse(r) {
  if (r && r.$ref) return r.$ref.split("/").slice(1).reduce((o, k) => o[k], spec);
  return r;
}

// An event stream whose events the document lists (x-events: event name -> schema of its JSON data).
function checkEvents(what, text, events) {
  for (const block of text.split("\n\n").filter((b) => b.trim())) {
    const ev = (block.match(/^event: (.*)$/m) || [])[1] || "message";
    const data = block.split("\n").filter((l) => l.startsWith("data: ")).map((l) => l.slice(6)).join("\n");
    assert.ok(events[ev], `${what}: event "${ev}" is not documented`);
    const validate = ajv.compile(rewrite(events[ev]));
    assert.ok(validate(JSON.parse(data)), `${what}: event ${ev}: ${ajv.errorsText(validate.errors)} in ${data.slice(0, 300)}`);
  }
}

const covered = new Set();
let checks = 0;

async function call(method, path, { key, body, type, headers = {} } = {}) {
  const h = { ...headers };
  if (key) h.Authorization = `Bearer ${key}`;
  if (type) h["Content-Type"] = type;
  const res = await fetch(base + path, { method, headers: h, body });
  const text = await res.text();
  const found = operation(method, path.split("?")[0]);
  assert.ok(found, `${method} ${path}: not in the OpenAPI document (answered ${res.status})`);
  covered.add(`${method.toLowerCase()} ${found.tpl}`);
  const resp = resolveResponse(found.op.responses[String(res.status)]);
  assert.ok(resp, `${method} ${path}: status ${res.status} is not documented (${text.slice(0, 200)})`);
  const ct = (res.headers.get("content-type") || "").split(";")[0];
  if (resp.content && text.length) {
    const media = resp.content[ct];
    assert.ok(media, `${method} ${path} ${res.status}: content type ${ct} not documented`);
    if (ct === "application/json" && media.schema) {
      const validate = ajv.compile(rewrite(media.schema));
      const ok = validate(JSON.parse(text));
      assert.ok(ok, `${method} ${path} ${res.status}: ${ajv.errorsText(validate.errors)} in ${text.slice(0, 300)}`);
    }
  }
  if (res.status === 429) assert.ok(res.headers.get("retry-after"));
  checks++;
  if (ct === "text/event-stream" && resp.content?.[ct]?.["x-events"]) checkEvents(`${method} ${path}`, text, resp.content[ct]["x-events"]);
  return { status: res.status, json: ct === "application/json" && text ? JSON.parse(text) : null, res, text };
}

const k = info.key, k2 = info.key2;
await call("GET", "/healthz");
await call("GET", "/.well-known/jwks.json");
await call("GET", "/readyz");
await call("GET", "/metrics");
await call("GET", "/v1/me");                                        // 401
await call("GET", "/v1/me", { key: k2 });
await call("POST", "/v1/reply", { key: k2, type: "application/json", body: '{"message":"hi"}' });  // 409
await call("POST", "/v1/reply", { key: k2, type: "application/json", body: "{nope" });             // 400
await call("POST", "/v1/exports?persona=Nobody", { key: k2, type: "text/plain", body: chat });     // 422
await call("POST", "/v1/exports?persona=Ann", { key: k2, type: "text/plain", body: "not a chat\n" }); // 400
await call("POST", "/v1/exports?persona=Ann", { key: k2, type: "image/png", body: chat });         // 415
const up = await call("POST", "/v1/exports?persona=Ann", { key: k2, type: "text/plain", body: chat });
assert.equal(up.status, 202);
let job;
for (let i = 0; i < 200; i++) {
  job = await call("GET", `/v1/training-jobs/${up.json.job_id}`, { key: k2 });
  if (job.json.status === "completed") break;
  await new Promise((r) => setTimeout(r, 25));
}
assert.equal(job.json.status, "completed");
await call("GET", `/v1/training-jobs/${up.json.job_id}`, { key: info.key });                       // 404 other user
const rep = await call("POST", "/v1/reply", {
  key: k2, type: "application/json", body: JSON.stringify({ message: "hello?", context: [{ author: "Bob", text: "hi" }] }),
});
assert.equal(rep.status, 200);
// streamed: token events, then done (a Reply); the pieces spell the reply unless it fell back
const streamed = await call("POST", "/v1/reply", {
  key: k2, type: "application/json", body: JSON.stringify({ message: "and the weekend?", stream: true }),
});
assert.equal(streamed.res.headers.get("content-type").split(";")[0], "text/event-stream");
const evs = streamed.text.split("\n\n").filter((b) => b.trim()).map((b) => [b.match(/^event: (.*)$/m)[1], JSON.parse(b.split("data: ")[1])]);
assert.equal(evs[evs.length - 1][0], "done");
assert.ok(evs.length >= 2 && evs.slice(0, -1).every(([e]) => e === "token"));
const done = evs[evs.length - 1][1];
if (!done.fallback) assert.equal(evs.slice(0, -1).map(([, d]) => d.text).join(""), done.reply);
await call("POST", "/v1/reply", { key: k2, type: "application/json", body: '{"message":"hi","stream":1}' });  // 400
await call("GET", "/v1/style-profile", { key: k2 });
await call("GET", "/v1/conversations?limit=5", { key: k2 });
await call("GET", "/v1/conversations?limit=0", { key: k2 });                                       // 400
await call("GET", "/v1/me/export", { key: k2 });
// the dashboard's endpoints (docs/dashboard.md): session cookie + CSRF, keys, jobs, inspect
const json = "application/json";
await call("POST", "/v1/session", { type: json, body: '{"key":"ws_live_00000000_x"}' });            // 401
const sess = await call("POST", "/v1/session", { type: json, body: JSON.stringify({ key: k2 }) });
assert.equal(sess.status, 200);
const cookie = { Cookie: sess.res.headers.get("set-cookie").split(";")[0] };
await call("GET", "/v1/session", { headers: cookie });
await call("GET", "/v1/session");                                                                   // 401
await call("POST", "/v1/keys", { type: json, body: "{}", headers: cookie });                        // 403 csrf
const nk = await call("POST", "/v1/keys", { type: json, body: '{"name":"check"}', headers: { ...cookie, "X-CSRF-Token": sess.json.csrf_token } });
assert.equal(nk.status, 201);
await call("GET", "/v1/keys", { key: k2 });
await call("DELETE", `/v1/keys/${nk.json.key_id}`, { key: info.key });                             // 404 other user
await call("DELETE", `/v1/keys/${nk.json.key_id}`, { key: k2 });
await call("GET", "/v1/training-jobs", { key: k2 });
await call("GET", `/v1/training-jobs/${up.json.job_id}/events`, { key: k2 });
await call("GET", `/v1/training-jobs/${up.json.job_id}/events`, { key: info.key });                 // 404
await call("POST", "/v1/exports/inspect", { key: k2, type: "text/plain", body: chat });
await call("POST", "/v1/exports/inspect", { key: k2, type: "text/plain", body: "not a chat\n" });   // 400
await call("POST", "/v1/signup", { type: json, body: '{"name":"x"}' });                              // 403 here
await call("DELETE", "/v1/session", { headers: { ...cookie, "X-CSRF-Token": sess.json.csrf_token } });
const init = JSON.stringify({ jsonrpc: "2.0", id: 1, method: "initialize",
  params: { protocolVersion: "2025-11-25", capabilities: {}, clientInfo: { name: "openapi", version: "1" } } });
const mh = { Accept: "application/json, text/event-stream" };
const i1 = await call("POST", "/mcp", { key: k2, type: "application/json", body: init, headers: mh });
const sid = i1.res.headers.get("mcp-session-id");
await call("POST", "/mcp", { key: k2, type: "application/json", headers: { ...mh, "Mcp-Session-Id": sid },
  body: JSON.stringify({ jsonrpc: "2.0", method: "notifications/initialized" }) });               // 202
await call("GET", "/mcp", { key: k2 });                                                             // 405
await call("DELETE", "/mcp", { key: k2, headers: { "Mcp-Session-Id": sid } });                     // 204
// the WhatsApp channel (the helper runs with WS_TEST_WA_SECRET=openapi-secret)
const hook = "/v1/whatsapp/webhook";
await call("GET", `${hook}?hub.mode=subscribe&hub.verify_token=openapi-verify&hub.challenge=42`);   // 200
await call("GET", `${hook}?hub.mode=subscribe&hub.verify_token=nope&hub.challenge=42`);             // 403
const note = JSON.stringify({ object: "whatsapp_business_account", entry: [{ id: "1", changes: [{ field: "messages",
  value: { messaging_product: "whatsapp", metadata: { display_phone_number: "1", phone_number_id: "4242" },
    messages: [{ from: "16505551234", id: "wamid.OPENAPI1", timestamp: "1750000000", type: "text", text: { body: "hi" } }] } }] }] });
const { createHmac } = await import("node:crypto");
const sig = "sha256=" + createHmac("sha256", "openapi-secret").update(note).digest("hex");
assert.equal((await call("POST", hook, { type: "application/json", body: note })).status, 401);
assert.equal((await call("POST", hook, { type: "application/json", body: note, headers: { "X-Hub-Signature-256": sig } })).status, 200);
const wl = "/v1/whatsapp/links";
await call("POST", wl, { key: k2, type: "application/json", body: '{"phone_number_id":"x","access_token":"t"}' }); // 400
assert.equal((await call("POST", wl, { key: k2, type: "application/json",
  body: '{"phone_number_id":"4242","access_token":"EAAGopenapi","mode":"draft"}' })).status, 201);
assert.equal((await call("POST", wl, { key: k, type: "application/json",
  body: '{"phone_number_id":"4242","access_token":"other"}' })).status, 409);
await call("GET", wl, { key: k2 });
await call("PUT", `${wl}/4242/mode`, { key: k2, type: "application/json", body: '{"mode":"auto","contact":"16505551234"}' });
await call("PUT", `${wl}/4242/mode`, { key: k2, type: "application/json", body: '{"mode":"loud"}' });  // 400
await call("GET", "/v1/whatsapp/drafts?status=pending", { key: k2 });
await call("GET", "/v1/whatsapp/drafts?status=bogus", { key: k2 });                                 // 400
await call("GET", "/v1/whatsapp/drafts/wad_nope", { key: k2 });                                     // 404
await call("POST", "/v1/whatsapp/drafts/wad_nope/approve", { key: k2 });                            // 404
await call("DELETE", `${wl}/4243`, { key: k2 });                                                    // 404
await call("DELETE", `${wl}/4242`, { key: k2 });                                                    // 200
await call("DELETE", "/v1/me", { key: k2 });                                                        // 204
await call("GET", "/v1/me", { key: k2 });                                                           // 401 afterwards

for (const [tpl, ops] of Object.entries(spec.paths))
  for (const m of Object.keys(ops))
    assert.ok(covered.has(`${m} ${tpl}`), `operation ${m.toUpperCase()} ${tpl} was not exercised`);
console.log(`ok   openapi: ${checks} responses valid against docs/api/openapi.yaml, ${covered.size} operations covered`);
