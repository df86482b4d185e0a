#!/usr/bin/env node
// Thin launcher kept outside dist/ so that package managers can link the bin before a build.
import { main } from '../dist/cli.js';

main(process.argv.slice(2)).catch((error) => {
  process.stderr.write(`drp-server: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
});
