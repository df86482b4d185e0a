/**
 * Image references as docker and skopeo read them: `alpine` is
 * `docker.io/library/alpine:latest`, a first component with a dot, a colon or `localhost` is a
 * registry host, `@sha256:...` pins a digest. Docker Hub's API host is registry-1.docker.io.
 */
export interface ImageReference {
  /** `host[:port]` of the registry API. */
  readonly registry: string;
  readonly name: string;
  /** A tag or a digest. */
  readonly reference: string;
  /** As the user wrote it, for messages. */
  readonly text: string;
}

const DOCKER_HUB = 'registry-1.docker.io';

export function parseImageReference(text: string): ImageReference {
  const trimmed = text.trim();
  let rest = trimmed;
  let registry = 'docker.io';
  const slash = rest.indexOf('/');
  const first = slash === -1 ? '' : rest.slice(0, slash);
  if (first && (first.includes('.') || first.includes(':') || first === 'localhost')) {
    registry = first;
    rest = rest.slice(slash + 1);
  }
  let reference = 'latest';
  const at = rest.indexOf('@');
  if (at !== -1) {
    reference = rest.slice(at + 1);
    rest = rest.slice(0, at);
  } else {
    const colon = rest.lastIndexOf(':');
    if (colon !== -1) {
      reference = rest.slice(colon + 1);
      rest = rest.slice(0, colon);
    }
  }
  if (registry === 'docker.io' || registry === 'index.docker.io') {
    registry = DOCKER_HUB;
    if (!rest.includes('/')) rest = `library/${rest}`;
  }
  if (!/^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:\/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$/.test(rest)) {
    throw new Error(`not an image reference: ${JSON.stringify(text)}`);
  }
  if (!/^(?:[\w][\w.-]{0,127}|sha256:[a-f0-9]{64}|sha512:[a-f0-9]{128})$/.test(reference)) {
    throw new Error(`not an image reference (bad tag or digest): ${JSON.stringify(text)}`);
  }
  return { registry, name: rest, reference, text: trimmed };
}
