// bench_client.mjs - bench/mcp.sh's SDK client: one `devbridge mcp`
// session, N tools/call bridge_status round trips timed one after another
// (each as an agent makes it: callTool, the structuredContent validated
// against the outputSchema), and the server's VmRSS idle after the
// handshake and after the calls.
//
//   node bench_client.mjs SPEC_JSON N   (SPEC_JSON as sdk_client.mjs's)
//
// Prints one JSON line: {n, ms:[...], rss_idle_kib, rss_after_kib}.
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';

const spec = JSON.parse(process.argv[2]);
const n = Number(process.argv[3] ?? 200);

function rssKib(pid) {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) : null;
}

const transport = new StdioClientTransport({
  command: spec.command,
  args: spec.args ?? [],
  env: spec.env,
  cwd: spec.cwd,
  stderr: 'inherit',
});
const client = new Client({ name: 'devbridge-bench', version: '0.0.0' });
await client.connect(transport);
await client.listTools(); // caches the outputSchemas: callTool validates
const pid = transport.pid;
const rssIdle = rssKib(pid);
const ms = [];
for (let i = 0; i < n; i++) {
  const t0 = performance.now();
  const r = await client.callTool({ name: 'bridge_status', arguments: {} });
  ms.push(performance.now() - t0);
  if (r.isError) throw new Error('bridge_status failed: ' + JSON.stringify(r.content));
}
const rssAfter = rssKib(pid);
await client.close();
process.stdout.write(JSON.stringify({ n, ms, rss_idle_kib: rssIdle, rss_after_kib: rssAfter }) + '\n');
