/**
 * Process signals for the daemon: the first SIGTERM or SIGINT starts a graceful stop, a second
 * one exits at once (exit status 130 for SIGINT, 143 for SIGTERM). A cluster worker is also
 * told to stop by its primary (`stop()`): that starts the same graceful stop, and does not count
 * as a signal, so a Ctrl-C that reaches the worker and its primary is still the first one.
 */
export type ShutdownHandler = (signal: NodeJS.Signals) => Promise<void>;

export interface ShutdownSignals {
  /** Starts the graceful stop unless it runs already. */
  stop(signal: NodeJS.Signals): void;
  /** Removes the signal listeners. */
  off(): void;
}

export function onShutdownSignals(
  handler: ShutdownHandler,
  exit: (code: number) => void = process.exit,
): ShutdownSignals {
  let stopping = false;
  const stop = (signal: NodeJS.Signals) => {
    if (stopping) return;
    stopping = true;
    // A start that had already failed keeps its exit status (2 for configuration, 1 otherwise).
    handler(signal).then(
      () => exit(typeof process.exitCode === 'number' ? process.exitCode : 0),
      () => exit(1),
    );
  };
  const listener = (signal: NodeJS.Signals) => {
    if (stopping) {
      exit(signal === 'SIGINT' ? 130 : 143);
      return;
    }
    stop(signal);
  };
  process.on('SIGTERM', listener);
  process.on('SIGINT', listener);
  return {
    stop,
    off() {
      process.off('SIGTERM', listener);
      process.off('SIGINT', listener);
    },
  };
}
