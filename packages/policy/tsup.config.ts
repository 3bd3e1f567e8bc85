import { defineConfig } from 'tsup';

export default defineConfig({
  entry: ['src/index.ts'],
  format: ['esm', 'cjs'],
  dts: true,
  sourcemap: true,
  clean: true,
  target: 'node20',
  splitting: false,
  // The parts of these the policy uses are bundled into the dist (zod, as `import * as z`, is tree-shaken):
  // resolving and loading their hundreds of files cost every process that loads the policy (the SDK's
  // preload) more than their code does. pino and tldts stay external: they load only when needed.
  noExternal: ['zod', 'yaml', 'minimatch', 'ipaddr.js'],
  // yaml's Node build is CommonJS and requires node:process and node:buffer: in the ESM build, bundled, it
  // needs a `require` (under another name than the createRequire the sources import, which esbuild keeps).
  banner: ({ format }) =>
    format === 'esm'
      ? {
          js: "import { createRequire as __egressGuardCreateRequire } from 'node:module'; const require = __egressGuardCreateRequire(import.meta.url);",
        }
      : {},
  // __filename in the ESM build (the CommonJS one has it), for createRequire.
  shims: true,
});
