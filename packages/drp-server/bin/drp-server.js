#!/usr/bin/env node
// `npx drp-server`: npx resolves a package by this name, so this package only carries the bin
// and starts @drp/server's launcher (which reads process.argv itself).
import '@drp/server/bin';
