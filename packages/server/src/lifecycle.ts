/**
 * Process signals for the daemon: the first SIGTERM or SIGINT starts a graceful stop, a second
 * one exits at once (exit status 130 for SIGINT, 143 for SIGTERM).
 */
export type ShutdownHandler = (signal: NodeJS.Signals) => Promise<void>;

export function onShutdownSignals(
  handler: ShutdownHandler,
  exit: (code: number) => void = process.exit,
): () => void {
  let stopping = false;
  const listener = (signal: NodeJS.Signals) => {
    if (stopping) {
      exit(signal === 'SIGINT' ? 130 : 143);
      return;
    }
    stopping = true;
    // A start that had already failed keeps its exit status (2 for configuration, 1 otherwise).
    handler(signal).then(
      () => exit(typeof process.exitCode === 'number' ? process.exitCode : 0),
      () => exit(1),
    );
  };
  process.on('SIGTERM', listener);
  process.on('SIGINT', listener);
  return () => {
    process.off('SIGTERM', listener);
    process.off('SIGINT', listener);
  };
}
