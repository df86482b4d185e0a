// A real registry (distribution 2.8, Debian's docker-registry) with token auth (`auth.token`),
// for the token-protocol tests: the harness's registry with the token server as its realm.
import type { Harness, Registry } from '../harness/index.ts';
import type { TokenServer } from './token-server.ts';

export function startTokenRegistry(h: Harness, tokens: TokenServer): Promise<Registry> {
  return h.startRegistry({
    config: {
      auth: {
        token: {
          realm: tokens.realm,
          service: tokens.service,
          issuer: tokens.issuer,
          rootcertbundle: tokens.rootCertBundle,
        },
      },
    },
  });
}
