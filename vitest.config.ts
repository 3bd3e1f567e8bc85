import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

const src = (pkg: string, file = 'index.ts') =>
  fileURLToPath(new URL(`./packages/${pkg}/src/${file}`, import.meta.url));

export default defineConfig({
  resolve: {
    // Tests run against the sources; subprocess tests (preload, CLI) use the built dist.
    alias: [
      { find: /^@egress-guard\/policy$/, replacement: src('policy') },
      { find: /^@egress-guard\/node$/, replacement: src('node') },
      { find: /^@egress-guard\/edge$/, replacement: src('edge') },
    ],
  },
  test: {
    include: ['packages/*/test/**/*.test.ts', 'test/**/*.test.ts', 'examples/**/*.test.ts'],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    pool: 'forks',
    fileParallelism: true,
  },
});
