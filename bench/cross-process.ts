// The extra cost of following a fill from another process vs from the same one (issue 14):
// a cold 200 MB blob from a local plain-HTTP upstream, one client per process.
//
//   same-1   one drp process, one client (the fill alone)
//   same-2   one drp process, two clients (the second joins the fill in memory)
//   cross-2  two drp processes on one directory, one client each (the second follows the
//            first's spool: reads it back, hashes it itself)
//
// Follower cost in-process = same-2 - same-1 (CPU of the drp process); across processes = the
// follower process's CPU in cross-2. Wall = the follower's client time. Rounds alternate the
// three cases; medians and spread are printed. Nothing is asserted.
//
//   pnpm build && node --import tsx bench/cross-process.ts      (ROUNDS=5, SIZE_MB=200)
import { type ChildProcess, fork } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';

const SIZE = Number(process.env.SIZE_MB ?? 200) * 1024 * 1024;
const ROUNDS = Number(process.env.ROUNDS ?? 5);
const NODE = new URL('./cross-process/node.mjs', import.meta.url).pathname;

interface Node {
  readonly child: ChildProcess;
  readonly port: number;
  cpu(): Promise<number>;
}

function startNode(dir: string, upstreamPort: number): Promise<Node> {
  return new Promise((resolve, reject) => {
    const child = fork(NODE, [], {
      env: { ...process.env, CACHE_DIR: dir, UPSTREAM_PORT: String(upstreamPort), DEBUG: '' },
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    child.once('error', reject);
    child.once('message', (m: { port: number }) => {
      const cpu = () =>
        new Promise<number>((done) => {
          child.once('message', (r: { cpu: number }) => done(r.cpu));
          child.send('cpu');
        });
      resolve({ child, port: m.port, cpu });
    });
  });
}

function download(port: number, path: string): Promise<{ ms: number; bytes: number }> {
  const started = performance.now();
  return new Promise((resolve, reject) => {
    http
      .get({ host: '127.0.0.1', port, path, agent: false }, (res) => {
        let bytes = 0;
        res.on('data', (c: Buffer) => {
          bytes += c.length;
        });
        res.once('end', () => resolve({ ms: performance.now() - started, bytes }));
        res.once('error', reject);
      })
      .once('error', reject);
  });
}

/** A fresh blob per run (a cold miss every time), served as fast as the socket takes it. */
function upstream(): Promise<{ server: http.Server; port: number; blob: (data: Buffer) => string }> {
  const blobs = new Map<string, Buffer>();
  const server = http.createServer((req, res) => {
    const data = blobs.get((req.url ?? '').split('/blobs/')[1] ?? '');
    if (!data) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { 'content-length': data.length });
    res.end(data);
  });
  return new Promise((resolve) =>
    server.listen(0, '127.0.0.1', () =>
      resolve({
        server,
        port: (server.address() as AddressInfo).port,
        blob: (data) => {
          const digest = `sha256:${createHash('sha256').update(data).digest('hex')}`;
          blobs.clear();
          blobs.set(digest, data);
          return digest;
        },
      }),
    ),
  );
}

type Case = 'same-1' | 'same-2' | 'cross-2';

async function run(kind: Case, up: Awaited<ReturnType<typeof upstream>>, data: Buffer) {
  const dir = mkdtempSync(join(tmpdir(), 'drp-bench-xp-'));
  const nodes = await Promise.all((kind === 'cross-2' ? [0, 1] : [0]).map(() => startNode(dir, up.port)));
  try {
    // The same bytes under a fresh digest each run would need a fresh blob: flip the first byte.
    data[0] = ((data[0] ?? 0) + 1) & 0xff;
    const path = `/v2/bench/blob/blobs/${up.blob(data)}`;
    const before = await Promise.all(nodes.map((n) => n.cpu()));
    const leader = download((nodes[0] as Node).port, path);
    // The follower arrives once the fill is under way (as a real second client would).
    await new Promise((resolve) => setTimeout(resolve, 50));
    const follower =
      kind === 'same-1' ? undefined : download((nodes[kind === 'cross-2' ? 1 : 0] as Node).port, path);
    const [lead, follow] = await Promise.all([leader, follower]);
    if (lead.bytes !== data.length || (follow && follow.bytes !== data.length))
      throw new Error('short download');
    // Let the commit (fdatasync, rename) finish before reading CPU.
    await new Promise((resolve) => setTimeout(resolve, 300));
    const after = await Promise.all(nodes.map((n) => n.cpu()));
    const cpu = after.map((a, i) => a - (before[i] ?? 0));
    return { cpu, leadMs: lead.ms, followMs: follow?.ms };
  } finally {
    for (const n of nodes) n.child.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
}

const stats = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const median =
    s.length % 2 ? (s[(s.length - 1) / 2] ?? 0) : ((s[s.length / 2 - 1] ?? 0) + (s[s.length / 2] ?? 0)) / 2;
  return `${median.toFixed(3)} (${(s[0] ?? 0).toFixed(3)}-${(s[s.length - 1] ?? 0).toFixed(3)})`;
};

const up = await upstream();
const data = randomBytes(SIZE);
const same1: number[] = [];
const same2: number[] = [];
const same2Wall: number[] = [];
const crossLeader: number[] = [];
const crossFollower: number[] = [];
const crossWall: number[] = [];
const soloWall: number[] = [];
console.log(`cold ${SIZE / 1024 / 1024} MB blob, ${ROUNDS} rounds, load ${loadavg()[0]?.toFixed(1)}`);
for (let round = 0; round < ROUNDS; round += 1) {
  const a = await run('same-1', up, data);
  same1.push(a.cpu[0] ?? 0);
  soloWall.push(a.leadMs);
  const b = await run('same-2', up, data);
  same2.push(b.cpu[0] ?? 0);
  same2Wall.push(b.followMs ?? 0);
  const c = await run('cross-2', up, data);
  crossLeader.push(c.cpu[0] ?? 0);
  crossFollower.push(c.cpu[1] ?? 0);
  crossWall.push(c.followMs ?? 0);
  console.log(
    `round ${round + 1}: same-1 ${a.cpu[0]?.toFixed(2)} s; same-2 ${b.cpu[0]?.toFixed(2)} s; cross-2 leader ${c.cpu[0]?.toFixed(2)} s + follower ${c.cpu[1]?.toFixed(2)} s`,
  );
}
const marginal = same2.map((v, i) => v - (same1[i] ?? 0));
console.log('CPU seconds, median (min-max):');
console.log(`  fill alone (same-1)                    ${stats(same1)}`);
console.log(`  + a follower in the same process       ${stats(marginal)}   (same-2 ${stats(same2)})`);
console.log(`  cross-2 leader process                 ${stats(crossLeader)}`);
console.log(`  cross-2 follower process               ${stats(crossFollower)}`);
console.log('Wall ms of a client, median (min-max):');
console.log(`  the fill's own client (same-1)         ${stats(soloWall)}`);
console.log(`  follower in the same process           ${stats(same2Wall)}`);
console.log(`  follower in another process            ${stats(crossWall)}`);
up.server.close();
