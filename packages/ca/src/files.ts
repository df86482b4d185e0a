import { randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { chmod, mkdir, open, rename, stat, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import createDebug from 'debug';
import { CaError } from './errors.js';

const debug = createDebug('drp:ca');

export const KEY_FILE_MODE = 0o600;
export const CERT_FILE_MODE = 0o644;
export const DIR_MODE = 0o700;

/** Reads a file, or returns undefined when it does not exist. */
export async function readIfExists(path: string): Promise<string | undefined> {
  try {
    const handle = await open(path, constants.O_RDONLY);
    try {
      return await handle.readFile('utf8');
    } finally {
      await handle.close();
    }
  } catch (err) {
    if (isErrno(err, 'ENOENT')) return undefined;
    throw ioError(`Cannot read ${path}`, err);
  }
}

export async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch (err) {
    if (isErrno(err, 'ENOENT')) return false;
    throw ioError(`Cannot stat ${path}`, err);
  }
}

/**
 * Creates the CA directory 0700. With `tighten`, an existing directory we own is set to 0700
 * too: it holds the CA key, and a directory others can write lets them swap ca.crt and ca.key.
 */
export async function ensurePrivateDir(dir: string, tighten = true): Promise<void> {
  try {
    await mkdir(dir, { recursive: true, mode: DIR_MODE });
    const st = await stat(dir);
    if (tighten && (st.mode & 0o777) !== DIR_MODE && isOwnedByUs(st.uid)) {
      await chmod(dir, DIR_MODE);
      debug('tightened %s from %o to %o', dir, st.mode & 0o777, DIR_MODE);
    }
  } catch (err) {
    throw ioError(`Cannot create the CA directory ${dir}`, err);
  }
}

/**
 * Writes a file so that a crash never leaves it half-written: temp file in the same directory
 * (created with its final mode, so a key is never readable by others even for a moment),
 * fsync, rename over the target, fsync the directory.
 */
export async function writeFileAtomic(path: string, data: string | Buffer, mode: number): Promise<void> {
  const tmp = join(dirname(path), `.${basename(path)}.${randomBytes(6).toString('hex')}.tmp`);
  try {
    const handle = await open(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, mode);
    try {
      await handle.writeFile(data);
      await handle.chmod(mode); // the umask may have removed bits from the creation mode
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(tmp, path);
    await syncDir(dirname(path));
  } catch (err) {
    await unlink(tmp).catch(() => undefined);
    throw ioError(`Cannot write ${path}`, err);
  }
}

/** Renames and makes the rename durable. */
export async function renameDurable(from: string, to: string): Promise<void> {
  try {
    await rename(from, to);
    await syncDir(dirname(to));
  } catch (err) {
    throw ioError(`Cannot rename ${from} to ${to}`, err);
  }
}

async function syncDir(dir: string): Promise<void> {
  if (process.platform === 'win32') return;
  const handle = await open(dir, constants.O_RDONLY);
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/**
 * Refuses a private key file that users other than the owner can read, or that anyone but
 * the owner can modify. Group read (0640, e.g. Kubernetes secrets with fsGroup) is accepted;
 * the check follows symlinks, as Kubernetes mounts secrets through them.
 */
export async function checkKeyFileMode(path: string): Promise<void> {
  if (process.platform === 'win32') return; // no POSIX modes to check
  let mode: number;
  try {
    mode = (await stat(path)).mode & 0o777;
  } catch (err) {
    throw ioError(`Cannot stat ${path}`, err);
  }
  if ((mode & 0o027) !== 0) {
    throw new CaError(
      'CA_KEY_PERMISSIONS',
      `CA key file ${path} has mode ${mode.toString(8).padStart(4, '0')}: it must not be readable or writable by ` +
        `other users nor writable by its group. Run: chmod 600 ${path}`,
    );
  }
}

function isOwnedByUs(uid: number): boolean {
  return typeof process.getuid !== 'function' || process.getuid() === uid;
}

export function isErrno(err: unknown, code: string): boolean {
  return typeof err === 'object' && err !== null && (err as { code?: unknown }).code === code;
}

function ioError(message: string, cause: unknown): CaError {
  if (cause instanceof CaError) return cause;
  const detail = cause instanceof Error ? `: ${cause.message}` : '';
  return new CaError('CA_IO', `${message}${detail}`, { cause });
}
