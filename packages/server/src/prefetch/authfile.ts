/**
 * Registry credentials from a docker-style auth file (`~/.docker/config.json`, or podman and
 * skopeo's `auth.json`): `{"auths": {"<host>": {"auth": base64("user:password")}}}`. Docker Hub
 * is filed under `https://index.docker.io/v1/`. Credential helpers (`credsStore`) are not run.
 */
import { readFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';

export interface Credential {
  readonly username: string;
  readonly password: string;
}

export function defaultAuthFile(): string {
  return join(process.env.DOCKER_CONFIG ?? join(homedir(), '.docker'), 'config.json');
}

/** Credentials by registry host; an absent file is no credentials, an unreadable one an error. */
export async function readAuthFile(path: string, required: boolean): Promise<Map<string, Credential>> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    if (!required && (error as NodeJS.ErrnoException).code === 'ENOENT') return new Map();
    throw new Error(`cannot read the auth file ${path}: ${(error as Error).message}`);
  }
  let parsed: { auths?: Record<string, { auth?: unknown; username?: unknown; password?: unknown }> };
  try {
    parsed = JSON.parse(text) as typeof parsed;
  } catch {
    throw new Error(`the auth file ${path} is not JSON`);
  }
  const result = new Map<string, Credential>();
  for (const [key, value] of Object.entries(parsed.auths ?? {})) {
    let username: string | undefined;
    let password: string | undefined;
    if (typeof value.auth === 'string' && value.auth !== '') {
      const decoded = Buffer.from(value.auth, 'base64').toString('utf8');
      const colon = decoded.indexOf(':');
      if (colon > 0) {
        username = decoded.slice(0, colon);
        password = decoded.slice(colon + 1);
      }
    } else if (typeof value.username === 'string' && typeof value.password === 'string') {
      username = value.username;
      password = value.password;
    }
    if (username === undefined || password === undefined) continue;
    result.set(hostOf(key), { username, password });
  }
  return result;
}

/** `https://index.docker.io/v1/` -> `registry-1.docker.io`; `https://host:5000/` -> `host:5000`. */
function hostOf(key: string): string {
  const host = key
    .replace(/^https?:\/\//, '')
    .replace(/\/.*$/, '')
    .toLowerCase();
  return host === 'index.docker.io' || host === 'docker.io' ? 'registry-1.docker.io' : host;
}
