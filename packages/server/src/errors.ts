/**
 * The daemon's errors, with stable codes like core's DrpError: callers match `code`, never the
 * message (which is for people and may change).
 */

export const SERVER_ERROR_CODES = {
  /** A variable or flag has a bad value; the message names it. Exit status 2. */
  DRP_SERVER_CONFIG_INVALID: { exit: 2 },
  /** CACHE_DIR (or another directory) cannot be created or written. Exit status 1. */
  DRP_SERVER_DIR_UNUSABLE: { exit: 1 },
} as const;

export type ServerErrorCode = keyof typeof SERVER_ERROR_CODES;

export class ServerError extends Error {
  constructor(
    readonly code: ServerErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'ServerError';
  }
}

/** A configuration problem: the message is ready to print after `drp-server: `. */
export class ConfigError extends ServerError {
  constructor(message: string) {
    super('DRP_SERVER_CONFIG_INVALID', message);
    this.name = 'ConfigError';
  }
}

/** Thrown by the variable parsers (config/parsers.ts); the loader turns them into ConfigError. */
/** What a value should have looked like; `showsValue` when the text already quotes it. */
export class Expected extends Error {
  constructor(
    readonly expected: string,
    readonly showsValue = false,
  ) {
    super(`expected ${expected}`);
    this.name = 'Expected';
  }
}

/** A file that exists but is wrong: `detail` follows the variable's name (`invalid NAME detail`). */
export class BadFile extends Error {
  constructor(readonly detail: string) {
    super(detail);
    this.name = 'BadFile';
  }
}

export function isServerError(error: unknown, code?: ServerErrorCode): error is ServerError {
  return error instanceof ServerError && (code === undefined || error.code === code);
}
