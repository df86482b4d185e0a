#!/usr/bin/env node
// Thin launcher kept outside dist/ so that package managers can link the bin before a build.
import { setFlagsFromString } from 'node:v8';

// V8's young generation grows to 16 MiB per semi-space on Node 20 (32 on Node 24) under drp's
// streaming load, and every Buffer it holds keeps its backing store (the bytes) alive until a
// scavenge: measured, a big part of the peak RSS of a 16-client burst. Growth factor 1 keeps it
// at its initial 1 MiB (the one young-generation flag V8 reads after start, so `npx drp-server`
// gets it without a re-exec); docs/performance.md has the A/B. A semi-space flag of the user's
// own (node --max-semi-space-size=N, NODE_OPTIONS) wins.
const own = [...process.execArgv, ...(process.env.NODE_OPTIONS ?? '').split(/\s+/)];
if (!own.some((flag) => /^--(max|min)-semi-space-size|^--semi-space-growth-factor/.test(flag))) {
  setFlagsFromString('--semi-space-growth-factor=1');
}

// Loading the daemon takes a moment; a SIGTERM or SIGINT meanwhile (nothing is being served
// yet) ends the process cleanly instead of through the default handler.
const early = () => process.exit(0);
// Everything the daemon writes (cache, tag index, CA, logs it creates) is for its own user
// only: files 0600, directories 0700, whatever the umask it was started with.
process.umask(0o077);
process.once('SIGTERM', early);
process.once('SIGINT', early);

const { main } = await import('../dist/cli.js');
main(process.argv.slice(2), {
  replaceEarlySignalHandlers() {
    process.off('SIGTERM', early);
    process.off('SIGINT', early);
  },
}).catch((error) => {
  process.stderr.write(`drp-server: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
});
