#!/usr/bin/env node
// Thin launcher kept outside dist/ so that package managers can link the bin before a build.
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
