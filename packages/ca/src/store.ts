import { constants } from 'node:fs';
import { open, stat, unlink, utimes } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import createDebug from 'debug';
import { CaError } from './errors.js';
import {
  CERT_FILE_MODE,
  exists,
  isErrno,
  KEY_FILE_MODE,
  readIfExists,
  renameDurable,
  writeFileAtomic,
} from './files.js';

const debug = createDebug('drp:ca');

export const CERT_FILE_NAME = 'ca.crt';
export const KEY_FILE_NAME = 'ca.key';

export interface CaPaths {
  readonly certFile: string;
  readonly keyFile: string;
}

export function pathsInDir(dir: string): CaPaths {
  return { certFile: join(dir, CERT_FILE_NAME), keyFile: join(dir, KEY_FILE_NAME) };
}

const next = (path: string) => `${path}.next`;

/**
 * Installs a certificate and key as a pair. Two files cannot be replaced atomically together,
 * so both are first written completely as `.next` files, then renamed key first, certificate
 * second. completePendingInstall() finishes an install a crash interrupted, so a restart
 * never finds a certificate next to someone else's key.
 */
export async function installPair(paths: CaPaths, certPem: string, keyPem: string): Promise<void> {
  await writeFileAtomic(next(paths.keyFile), keyPem, KEY_FILE_MODE);
  await writeFileAtomic(next(paths.certFile), certPem, CERT_FILE_MODE);
  await renameDurable(next(paths.keyFile), paths.keyFile);
  await renameDurable(next(paths.certFile), paths.certFile);
}

/** True while an install is in progress (or was interrupted): a `.next` file exists. */
export async function hasPendingInstall(paths: CaPaths): Promise<boolean> {
  return (await exists(next(paths.keyFile))) || (await exists(next(paths.certFile)));
}

export async function completePendingInstall(paths: CaPaths): Promise<void> {
  const keyNext = await exists(next(paths.keyFile));
  const certNext = await exists(next(paths.certFile));
  if (keyNext && certNext) {
    debug('finishing an interrupted CA install in %s', dirname(paths.certFile));
    await renameDurable(next(paths.keyFile), paths.keyFile);
    await renameDurable(next(paths.certFile), paths.certFile);
  } else if (certNext) {
    // The key was already renamed into place: the certificate belongs to it.
    debug('finishing an interrupted CA install (certificate) in %s', dirname(paths.certFile));
    await renameDurable(next(paths.certFile), paths.certFile);
  } else if (keyNext) {
    // Certificate never completed: the install had not started replacing anything.
    await unlink(next(paths.keyFile)).catch((err: unknown) => {
      if (!isErrno(err, 'ENOENT')) throw err;
    });
  }
}

export async function readPair(paths: CaPaths): Promise<{ certPem?: string; keyPem?: string }> {
  const [certPem, keyPem] = await Promise.all([readIfExists(paths.certFile), readIfExists(paths.keyFile)]);
  return { certPem, keyPem };
}

/** `20261128T100520Z`: sortable, and free of characters awkward in file names. */
export function backupStamp(date: Date): string {
  return date
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d+Z$/, 'Z');
}

/**
 * Keeps the current pair as `ca.crt.<stamp>.bak` / `ca.key.<stamp>.bak` (key 0600) before a
 * rotation replaces it; returns the backup paths.
 */
export async function backupPair(paths: CaPaths, stamp: string): Promise<Partial<CaPaths>> {
  const { certPem, keyPem } = await readPair(paths);
  const backup: { certFile?: string; keyFile?: string } = {};
  // Written afresh (not copied) so the key copy is 0600 from its first byte.
  if (keyPem !== undefined) {
    backup.keyFile = `${paths.keyFile}.${stamp}.bak`;
    await writeFileAtomic(backup.keyFile, keyPem, KEY_FILE_MODE);
  }
  if (certPem !== undefined) {
    backup.certFile = `${paths.certFile}.${stamp}.bak`;
    await writeFileAtomic(backup.certFile, certPem, CERT_FILE_MODE);
  }
  return backup;
}

const LOCK_STALE_MS = 30_000;

/**
 * Serialises CA creation and rotation between processes sharing a directory (two replicas
 * starting at once must not each create a CA). The holder refreshes the lock every 5 s, so
 * one older than 30 s is a crashed holder's.
 */
export async function withDirLock<T>(dir: string, fn: () => Promise<T>): Promise<T> {
  const lock = join(dir, '.ca.lock');
  const deadline = Date.now() + 2 * LOCK_STALE_MS;
  for (;;) {
    try {
      const handle = await open(lock, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o600);
      await handle.writeFile(String(process.pid));
      await handle.close();
      break;
    } catch (err) {
      if (!isErrno(err, 'EEXIST'))
        throw new CaError('CA_IO', `Cannot create the lock ${lock}`, { cause: err });
      const age = await stat(lock).then(
        (st) => Date.now() - st.mtimeMs,
        () => 0,
      );
      if (age > LOCK_STALE_MS) {
        debug('removing a stale lock %s (%d ms old)', lock, age);
        await unlink(lock).catch(() => undefined);
      } else if (Date.now() > deadline) {
        throw new CaError('CA_IO', `Timed out waiting for the lock ${lock} held by another process`);
      } else {
        await delay(50);
      }
    }
  }
  // Keep the lock fresh while holding it: an RSA-4096 CA can take many seconds to generate
  // on a loaded machine, and a waiter must not take a live lock for a crashed one.
  const heartbeat = setInterval(() => {
    const now = new Date();
    utimes(lock, now, now).catch(() => undefined);
  }, LOCK_STALE_MS / 6);
  heartbeat.unref();
  try {
    return await fn();
  } finally {
    clearInterval(heartbeat);
    await unlink(lock).catch(() => undefined);
  }
}
