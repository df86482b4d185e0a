// The test harness: temp dirs, a test CA, OCI images, a real registry with request counting,
// programmable TLS fronts and client wrappers. See README.md.
export * from './ca.ts';
export * from './clients.ts';
export * from './counter.ts';
export * from './front.ts';
export * from './harness.ts';
export * from './http.ts';
export * from './image.ts';
export * from './process.ts';
export * from './registry.ts';
