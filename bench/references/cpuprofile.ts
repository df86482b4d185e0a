// Summarises a V8 .cpuprofile (from `node --cpu-prof`, e.g. DRP_BENCH_NODE_ARGS="--cpu-prof
// --cpu-prof-dir=DIR"): the functions with the most self time, the heaviest inclusive frames,
// and optionally folded stacks (`frame;frame;frame count`) for flamegraph.pl / speedscope.
//   node --import tsx bench/references/cpuprofile.ts FILE.cpuprofile [--top 30] [--folded OUT]
import { readFileSync, writeFileSync } from 'node:fs';
import { basename } from 'node:path';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}

interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

function frameName(n: ProfileNode): string {
  const f = n.callFrame;
  const file = f.url ? basename(f.url.replace(/^file:\/\//, '')) : '';
  return `${f.functionName || '(anonymous)'}${file ? ` ${file}:${f.lineNumber + 1}` : ''}`;
}

export function summarise(profile: Profile, top = 30): { text: string; folded: string } {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const selfUs = new Map<number, number>();
  profile.samples.forEach((id, i) => {
    selfUs.set(id, (selfUs.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0));
  });
  const total = [...selfUs.values()].reduce((a, b) => a + b, 0);
  const idle = [...selfUs.entries()]
    .filter(([id]) =>
      ['(idle)', '(program)', '(garbage collector)'].includes(byId.get(id)?.callFrame.functionName ?? ''),
    )
    .map(([id, us]) => `${byId.get(id)?.callFrame.functionName} ${((100 * us) / total).toFixed(1)}%`);

  const selfByName = new Map<string, number>();
  const inclByName = new Map<string, number>();
  const folded = new Map<string, number>();
  for (const [id, us] of selfUs) {
    const stack: string[] = [];
    for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
      const n = byId.get(cur);
      if (n && n.callFrame.functionName !== '(root)') stack.push(frameName(n));
    }
    const leaf = stack[0] ?? '(root)';
    selfByName.set(leaf, (selfByName.get(leaf) ?? 0) + us);
    for (const name of new Set(stack)) inclByName.set(name, (inclByName.get(name) ?? 0) + us);
    const key = stack.reverse().join(';');
    folded.set(key, (folded.get(key) ?? 0) + us);
  }
  const pct = (us: number) => `${((100 * us) / total).toFixed(1).padStart(5)}%`;
  const rows = (m: Map<string, number>) =>
    [...m.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .map(([name, us]) => `${pct(us)}  ${name}`);
  const text = [
    `profile: ${((profile.endTime - profile.startTime) / 1e6).toFixed(1)} s, ${idle.join(', ')}`,
    '',
    'self time:',
    ...rows(selfByName),
    '',
    'inclusive time:',
    ...rows(inclByName),
  ].join('\n');
  const foldedText = [...folded.entries()].map(([k, us]) => `${k} ${Math.round(us / 1000)}`).join('\n');
  return { text, folded: `${foldedText}\n` };
}

if (process.argv[1] && import.meta.filename === process.argv[1]) {
  const [file, ...rest] = process.argv.slice(2);
  if (!file) {
    process.stderr.write('usage: cpuprofile.ts FILE.cpuprofile [--top N] [--folded OUT]\n');
    process.exit(2);
  }
  const topAt = rest.indexOf('--top');
  const foldedAt = rest.indexOf('--folded');
  const { text, folded } = summarise(
    JSON.parse(readFileSync(file, 'utf8')) as Profile,
    topAt >= 0 ? Number(rest[topAt + 1]) : 30,
  );
  process.stdout.write(`${text}\n`);
  if (foldedAt >= 0 && rest[foldedAt + 1]) writeFileSync(rest[foldedAt + 1]!, folded);
}
