// Two steps between route and store (createRegistryCache({ use: [...] })): an audit step that
// logs every decision after the rest of the pipeline has run, and a deny step that refuses
// named repositories with an OCI DENIED body before the store or the upstream is touched.
// Steps see the typed context: ctx.route (kind, name, tag, digest), ctx.registry, ctx.method,
// ctx.clientAuth, and ctx.outcome once the handler has run.
//
//   UPSTREAM=ghcr.io DENY=owner/secret PORT=5000 node --import tsx examples/deny-audit-step.ts
import { pathToFileURL } from 'node:url';
import { DrpError, type RequestContext, type Step, sendError } from '@drp/core';
import { createMirror } from './plain-http-mirror.ts';

export interface AuditLine {
  readonly registry: string;
  readonly method: string;
  readonly kind: RequestContext['route']['kind'];
  readonly name: string | undefined;
  readonly decision: 'denied' | 'served';
  readonly status: number;
  readonly cacheStatus: string;
}

/** Logs one line per request, whatever the steps after it decide (or throw). */
export function audit(log: (line: AuditLine) => void): Step {
  return async (ctx, next) => {
    try {
      await next();
    } finally {
      const { route, outcome } = ctx;
      const decision = outcome.error === 'DRP_DENIED' ? 'denied' : 'served';
      log({
        registry: ctx.registry,
        method: ctx.method,
        kind: route.kind,
        name: route.name,
        decision,
        status: ctx.res.statusCode,
        cacheStatus: outcome.cacheStatus,
      });
    }
  };
}

/** Answers 403 with an OCI DENIED body for these repositories; the rest goes on to the handler. */
export function denyRepositories(names: Iterable<string>): Step {
  const denied = new Set(names);
  return async (ctx, next) => {
    if (ctx.route.name === undefined || !denied.has(ctx.route.name)) return next();
    sendError(ctx, new DrpError('DRP_DENIED', `repository ${ctx.route.name} is not served by this mirror`));
  };
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const mirror = await createMirror({
    upstream: process.env.UPSTREAM ?? 'registry-1.docker.io',
    cacheDir: process.env.CACHE_DIR ?? '.drp/deny-audit-cache',
    use: [
      audit((line) => process.stdout.write(`${JSON.stringify(line)}\n`)),
      denyRepositories((process.env.DENY ?? '').split(',').filter(Boolean)),
    ],
  });
  mirror.server.listen(Number(process.env.PORT ?? 5000));
}
