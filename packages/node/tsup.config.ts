import { defineConfig } from 'tsup';

export default defineConfig({
  entry: ['src/index.ts', 'src/register.ts'],
  format: ['esm', 'cjs'],
  dts: true,
  sourcemap: true,
  clean: true,
  target: 'node20',
  // One copy of the code shared by both entries (per format): the preload and the application's
  // `import '@egress-guard/node'` then run the same modules, and `instanceof EgressGuard` holds for the
  // guard the preload installed. (Across the ESM and CJS builds the process-wide record in
  // src/process/installed-state.ts keeps one guard.)
  splitting: true,
  shims: true,
});
