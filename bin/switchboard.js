#!/usr/bin/env node
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const entry = new URL('../dist/cli/main.js', import.meta.url);
if (!existsSync(fileURLToPath(entry))) {
  console.error('switchboard: dist/ is missing. Run `npm ci` (it builds) or `npm run build` first.');
  process.exit(1);
}
await import(entry.href);
