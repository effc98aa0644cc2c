// Drives /mcp with the official MCP TypeScript SDK client (Streamable HTTP transport):
// initialize + session, tools/list with schemas, train_style -> training_status until
// completed, reply_as (miss, then cache hit; with a progress token, the text as it comes), style_profile, list_conversations, tool
// errors, a bad key, and session termination. The SDK validates every structuredContent
// against the tool's outputSchema. Usage: node sdk_client.mjs INFO_JSON CHAT_TXT
import { readFileSync } from "node:fs";
import assert from "node:assert/strict";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";

const info = JSON.parse(readFileSync(process.argv[2], "utf8"));
const chat = readFileSync(process.argv[3], "utf8");
const url = new URL(`http://127.0.0.1:${info.port}/mcp`);
// between training_status polls (200 at most): the test double trains in 0.6 s, a real
// cluster (tests/cluster/contract.sh) in seconds
const pollMs = Number(process.env.WS_SDK_POLL_MS || 25);

async function connect(key) {
  const transport = new StreamableHTTPClientTransport(url, {
    requestInit: { headers: { Authorization: `Bearer ${key}` } },
  });
  const client = new Client({ name: "whatstyle-sdk-test", version: "1.0.0" });
  await client.connect(transport);
  return { client, transport };
}

let passed = 0;
async function step(name, fn) {
  await fn();
  passed++;
  console.log(`ok   ${name}`);
}

const { client, transport } = await connect(info.key);

await step("initialize negotiates 2025-11-25 and a session", async () => {
  assert.equal(transport.protocolVersion, "2025-11-25");
  assert.ok(transport.sessionId && transport.sessionId.startsWith("mcp_"));
  assert.equal(client.getServerVersion().name, "whatstyle");
  assert.ok(client.getServerCapabilities().tools);
});

await step("tools/list has the nine tools with input and output schemas", async () => {
  const { tools } = await client.listTools();
  const names = tools.map((t) => t.name).sort();
  assert.deepEqual(names, ["list_conversations", "reply_as", "style_profile", "train_style", "training_status",
                          "whatsapp_draft", "whatsapp_drafts", "whatsapp_link", "whatsapp_set_mode"]);
  for (const t of tools) {
    assert.equal(t.inputSchema.type, "object");
    assert.equal(t.outputSchema.type, "object");
  }
});

await step("reply_as before training is a tool error (no_model)", async () => {
  const r = await client.callTool({ name: "reply_as", arguments: { message: "hi" } });
  assert.equal(r.isError, true);
  assert.match(r.content[0].text, /no_model/);
});

let jobId;
await step("train_style queues a job (export_text)", async () => {
  const r = await client.callTool({ name: "train_style", arguments: { persona: "Ann", export_text: chat } });
  assert.equal(r.isError, false);
  assert.equal(r.structuredContent.status, "queued");
  jobId = r.structuredContent.job_id;
  assert.match(jobId, /^job_/);
});

await step("train_style with an unknown persona names the participants", async () => {
  const r = await client.callTool({ name: "train_style", arguments: { persona: "Zed", export_text: chat } });
  assert.equal(r.isError, true);
  assert.match(r.content[0].text, /participants: Ann, Bob/);
});

let jobId2;
await step("train_style accepts export_base64", async () => {
  const r = await client.callTool({
    name: "train_style",
    arguments: { persona: "Bob", export_base64: Buffer.from(chat).toString("base64") },
  });
  assert.equal(r.isError, false, r.content?.[0]?.text);
  jobId2 = r.structuredContent.job_id;
});

async function waitJob(id) {
  let st;
  for (let i = 0; i < 200; i++) {
    const r = await client.callTool({ name: "training_status", arguments: { job_id: id } });
    assert.equal(r.isError, false);
    st = r.structuredContent;
    if (st.status === "completed" || st.status === "failed") break;
    await new Promise((res) => setTimeout(res, pollMs));
  }
  return st;
}

await step("training_status reaches completed", async () => {
  const st = await waitJob(jobId);
  assert.equal(st.status, "completed", JSON.stringify(st));
  assert.ok(st.samples_processed > 0);
  assert.equal((await waitJob(jobId2)).status, "completed");
  // several gateways (tests/cluster) cache a key's user, model version included, for up to 2 s
  // each: let the new version reach all of them before the cache check below
  await new Promise((res) => setTimeout(res, Number(process.env.WS_SDK_SETTLE_MS || 0)));
});

await step("reply_as answers, then answers the same question from the cache", async () => {
  const args = { message: "coffee tomorrow?", context: [{ author: "Bob", text: "hey" }] };
  const a = await client.callTool({ name: "reply_as", arguments: args });
  assert.equal(a.isError, false, a.content?.[0]?.text);
  assert.equal(typeof a.structuredContent.reply, "string");
  assert.ok(a.structuredContent.confidence >= 0 && a.structuredContent.confidence <= 1);
  const b = await client.callTool({ name: "reply_as", arguments: args });
  assert.equal(b.structuredContent.cached, true);
  assert.equal(b.structuredContent.reply, a.structuredContent.reply);
});

await step("style_profile and list_conversations", async () => {
  const p = await client.callTool({ name: "style_profile", arguments: {} });
  assert.equal(p.isError, false, p.content?.[0]?.text);
  assert.equal(typeof p.structuredContent.profile, "object");
  let items = [];
  for (let i = 0; i < 50 && items.length < 2; i++) {
    const c = await client.callTool({ name: "list_conversations", arguments: { limit: 10 } });
    assert.equal(c.isError, false);
    items = c.structuredContent.items;
    if (items.length < 2) await new Promise((res) => setTimeout(res, 20));
  }
  assert.equal(items.length, 2);
});

await step("whatsapp_link, whatsapp_set_mode, whatsapp_drafts and whatsapp_draft", async () => {
  const number = String(100000000 + Math.floor(Math.random() * 899999999));
  const l = await client.callTool({ name: "whatsapp_link",
    arguments: { phone_number_id: number, access_token: "EAAGsdk" + number, mode: "draft" } });
  assert.equal(l.isError, false, l.content?.[0]?.text);
  assert.equal(l.structuredContent.phone_number_id, number);
  assert.equal(l.structuredContent.mode, "draft");
  assert.ok(!JSON.stringify(l).includes("EAAGsdk"), "the token is echoed");
  const m = await client.callTool({ name: "whatsapp_set_mode",
    arguments: { phone_number_id: number, contact: "16505551234", mode: "auto" } });
  assert.equal(m.isError, false, m.content?.[0]?.text);
  assert.equal(m.structuredContent.mode, "auto");
  const d = await client.callTool({ name: "whatsapp_drafts", arguments: { status: "pending" } });
  assert.equal(d.isError, false, d.content?.[0]?.text);
  assert.ok(Array.isArray(d.structuredContent.items));
  const x = await client.callTool({ name: "whatsapp_draft", arguments: { draft_id: "wad_none", action: "approve" } });
  assert.equal(x.isError, true);
  const y = await client.callTool({ name: "whatsapp_link", arguments: { phone_number_id: "+1 555", access_token: "t" } });
  assert.equal(y.isError, true);
});

await step("bad arguments are tool errors, unknown tools protocol errors", async () => {
  const r = await client.callTool({ name: "list_conversations", arguments: { limit: 0 } });
  assert.equal(r.isError, true);
  await assert.rejects(client.callTool({ name: "no_such_tool", arguments: {} }), /-32602|Unknown tool/);
});

await step("reply_as with a progress token streams the reply's text as progress", async () => {
  const seen = [];
  const args = { message: "and what about the weekend?" };
  const r = await client.callTool({ name: "reply_as", arguments: args }, undefined, { onprogress: (p) => seen.push(p) });
  assert.equal(r.isError, false, r.content?.[0]?.text);
  const reply = r.structuredContent.reply;
  assert.ok(seen.length >= 1, JSON.stringify(seen));
  // (how many pieces depends on the engine and the cache: a cached reply is one piece; that
  // pieces are the tokens as generated is checked by test_clone_stream and reply_stream.sh)
  for (let i = 1; i < seen.length; i++) {
    assert.ok(seen[i].progress > seen[i - 1].progress);
    assert.ok(seen[i].message.startsWith(seen[i - 1].message)); // the text so far, growing
  }
  if (!r.structuredContent.fallback) assert.equal(seen[seen.length - 1].message, reply);
  // the same again comes from the cache: one notification with the whole reply
  const again = [];
  const c = await client.callTool({ name: "reply_as", arguments: args }, undefined, { onprogress: (p) => again.push(p) });
  assert.equal(c.structuredContent.cached, true);
  assert.equal(again.length, 1);
  assert.equal(again[0].message, reply);
});

await step("train_style with a progress token streams progress over SSE", async () => {
  const seen = [];
  const r = await client.callTool(
    { name: "train_style", arguments: { persona: "Ann", export_text: chat } },
    undefined,
    { onprogress: (p) => seen.push(p) },
  );
  assert.equal(r.isError, false, r.content?.[0]?.text);
  assert.equal(r.structuredContent.status, "completed");
  assert.ok(seen.length >= 2, JSON.stringify(seen));
  assert.equal(seen[seen.length - 1].progress, 100);
  for (let i = 1; i < seen.length; i++) assert.ok(seen[i].progress > seen[i - 1].progress);
});

await step("another user's job is invisible", async () => {
  const other = await connect(info.key2);
  const r = await other.client.callTool({ name: "training_status", arguments: { job_id: jobId } });
  assert.equal(r.isError, true);
  assert.match(r.content[0].text, /not_found/);
  await other.client.close();
});

await step("a bad key cannot connect", async () => {
  await assert.rejects(connect("ws_live_00000000_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"));
});

await step("session termination", async () => {
  await transport.terminateSession();
  assert.equal(transport.sessionId, undefined);
  await client.close();
});

console.log(`${passed} passed, 0 failed`);
