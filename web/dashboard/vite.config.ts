import { defineConfig } from 'vite';

// Built by `npm run build` (or `npm run build:dashboard`) into dist/dashboard/, which Switchboard
// serves at /dashboard/. Everything is bundled: no CDN, no remote font.
const here = decodeURIComponent(new URL('.', import.meta.url).pathname);

export default defineConfig({
  root: here,
  base: '/dashboard/',
  publicDir: false,
  clearScreen: false,
  logLevel: 'warn',
  oxc: { jsx: { runtime: 'automatic', importSource: 'preact' } },
  build: {
    outDir: `${here}../../dist/web/dashboard`,
    emptyOutDir: true,
    target: 'es2022',
    assetsInlineLimit: 0,
    sourcemap: false,
    modulePreload: { polyfill: false },
  },
});
