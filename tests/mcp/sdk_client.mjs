// sdk_client.mjs - the official MCP TypeScript SDK's Client, driven line by
// line: tests/integration/test_mcp_sdk.py (and bench/mcp.sh) start
//
//   node sdk_client.mjs SPEC_JSON
//
// where SPEC_JSON is {"command": devbridge, "args": [...], "env": {...},
// "cwd": dir}.  It connects through StdioClientTransport (env passed
// explicitly: the SDK gives a server only HOME, LOGNAME, PATH, SHELL, TERM
// and USER otherwise), prints {"ready":true, "pid":N, "server":{...}} and
// then answers one JSON command per stdin line with one JSON line:
//
//   {"op":"list"}                     -> {"tools":[...]} (the SDK caches each
//                                        outputSchema: callTool validates)
//   {"op":"call","name":N,"args":{},"progress":bool}
//                                     -> {"result":{...}, "valid":bool,
//                                        "errors":[...], "progress":[...]} or
//                                        {"error":{"code","message"}}
//   {"op":"read","uri":U}             -> {"result":{...}}
//   {"op":"subscribe","uri":U}        -> {"result":{}}
//   {"op":"updated","uri":U,"timeout_ms":T}
//                                     -> {"updated":true} once
//                                        notifications/resources/updated for U
//                                        came (since subscribe), or false
//   {"op":"close"}                    -> {"closed":true}, then exits
//
// "valid" is a second, explicit check of structuredContent against the
// tool's outputSchema with the SDK's own Ajv validator (the one callTool
// uses), so a test sees the verdict and its errors, not only a throw.
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { ResourceUpdatedNotificationSchema } from '@modelcontextprotocol/sdk/types.js';
import { AjvJsonSchemaValidator } from '@modelcontextprotocol/sdk/validation/ajv';
import readline from 'node:readline';

const spec = JSON.parse(process.argv[2]);
const out = (o) => process.stdout.write(JSON.stringify(o) + '\n');

const transport = new StdioClientTransport({
  command: spec.command,
  args: spec.args ?? [],
  env: spec.env,
  cwd: spec.cwd,
  stderr: 'inherit',
});
const client = new Client({ name: 'devbridge-sdk-test', version: '0.0.0' });
const validator = new AjvJsonSchemaValidator();
const schemas = new Map();
const updated = new Map(); // uri -> count of notifications/resources/updated
const waiters = [];

client.setNotificationHandler(ResourceUpdatedNotificationSchema, (n) => {
  const uri = n.params.uri;
  updated.set(uri, (updated.get(uri) ?? 0) + 1);
  for (const w of waiters.splice(0)) w();
});

function errorOf(e) {
  return { error: { code: e.code ?? null, message: String(e.message ?? e) } };
}

async function call(cmd) {
  const progress = [];
  const opts = { timeout: 60000 };
  if (cmd.progress) opts.onprogress = (p) => progress.push(p);
  const result = await client.callTool({ name: cmd.name, arguments: cmd.args ?? {} }, undefined, opts);
  const schema = schemas.get(cmd.name);
  let valid = null;
  let errors = [];
  if (schema && result.structuredContent !== undefined) {
    const v = validator.getValidator(schema)(result.structuredContent);
    valid = v.valid;
    if (!v.valid) errors = [v.errorMessage];
  }
  return { result, valid, errors, progress };
}

async function waitUpdated(uri, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  while ((updated.get(uri) ?? 0) === 0) {
    const left = deadline - Date.now();
    if (left <= 0) return false;
    await new Promise((resolve) => {
      const t = setTimeout(resolve, left);
      waiters.push(() => {
        clearTimeout(t);
        resolve();
      });
    });
  }
  return true;
}

async function handle(cmd) {
  switch (cmd.op) {
    case 'list': {
      const r = await client.listTools();
      for (const t of r.tools) schemas.set(t.name, t.outputSchema);
      return { tools: r.tools };
    }
    case 'call':
      return call(cmd);
    case 'read':
      return { result: await client.readResource({ uri: cmd.uri }) };
    case 'subscribe':
      updated.delete(cmd.uri);
      return { result: await client.subscribeResource({ uri: cmd.uri }) };
    case 'updated':
      return { updated: await waitUpdated(cmd.uri, cmd.timeout_ms ?? 10000) };
    case 'close':
      await client.close();
      return { closed: true };
    default:
      return { error: { code: null, message: 'unknown op ' + cmd.op } };
  }
}

try {
  await client.connect(transport);
} catch (e) {
  out(errorOf(e));
  process.exit(1);
}
out({ ready: true, pid: transport.pid, server: client.getServerVersion() });

const rl = readline.createInterface({ input: process.stdin });
for await (const line of rl) {
  if (!line.trim()) continue;
  const cmd = JSON.parse(line);
  try {
    out(await handle(cmd));
  } catch (e) {
    out(errorOf(e));
  }
  if (cmd.op === 'close') break;
}
await client.close();
process.exit(0);
