import { createRequire } from 'node:module';

/**
 * @peculiar/x509, loaded on first use: it and what it pulls in (tsyringe, reflect-metadata,
 * asn1js, pvtsutils) cost ~20 MB of a daemon's resident memory, and only creating a CA and
 * printing a CA's subject need it (validation and leaves use Node's X509Certificate and
 * der.ts). Synchronous (the package's CommonJS build, which `import` resolves to as well), so
 * a getter can use it. tsyringe needs the Reflect metadata API installed before the library's
 * module body runs, hence reflect-metadata first; import x509 only through here.
 */
type X509 = typeof import('@peculiar/x509');

const require = createRequire(import.meta.url);
let loaded: X509 | undefined;

export function loadX509(): X509 {
  if (!loaded) {
    require('reflect-metadata');
    loaded = require('@peculiar/x509') as X509;
  }
  return loaded;
}
