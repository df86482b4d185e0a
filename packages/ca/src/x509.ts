// @peculiar/x509 relies on tsyringe, which needs the Reflect metadata API installed before
// the library's module body runs: keep this import first, and import x509 only from here.
import 'reflect-metadata';

export * as x509 from '@peculiar/x509';
