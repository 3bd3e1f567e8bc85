import { defineConfig } from 'tsup';

export default defineConfig({
  // edge-worker: the entry of the worker processes `startEdgeWorkers` forks (dist/edge-worker.js).
  entry: { index: 'src/index.ts', 'edge-worker': 'src/workers/worker-main.ts' },
  format: ['esm', 'cjs'],
  dts: true,
  sourcemap: true,
  clean: true,
  target: 'node20',
  splitting: false,
});
