// dependency-cruiser rules, run by `pnpm lint` (after biome) as
//   depcruise --config .dependency-cruiser.cjs packages/node/src packages/policy/src packages/edge/src
// Exit status: the number of "error" violations; "warn" ones are printed and do not fail lint.
//
// packages/node/src is built in layers, one folder each; a layer may import any layer to its right,
// never one to its left:
//
//   hooks → pipeline → socket → guard → @egress-guard/policy
//
//   hooks/     patches of fetch/undici/http/https/http2/net/tls/dns and the undici interceptors
//   pipeline/  a request's life: decide, admit, time, settle, record
//   socket/    the net.Socket/tls connect choke point, guarded lookup, connection context
//   guard/     the EgressGuard: policy in force, events, breakers
//
// Files at the src root (the entry files index.ts, install.ts, register.ts, and anything else there) may
// import anything; nothing in a layer may import a file at the src root. Type-only imports count
// (tsPreCompilationDeps), for the layers and for cycles alike.
const SDK = '^packages/node/src/';
const POLICY_SRC = '^packages/policy/src/';
const EDGE = '^packages/edge/src/';

/** Left to right: each may import the ones after it, none before it. */
const LAYERS = ['hooks', 'pipeline', 'socket', 'guard'];

const layerRules = LAYERS.slice(1).map((name, i) => {
  const above = LAYERS.slice(0, i + 1);
  return {
    name: `layer-${name}`,
    comment: `${name}/ may import only the layers to its right (${LAYERS.join(' → ')} → policy), not ${above.join(', ')}/.`,
    severity: 'error',
    from: { path: `${SDK}${name}/` },
    to: { path: `${SDK}(${above.join('|')})/` },
  };
});

module.exports = {
  forbidden: [
    {
      name: 'no-circular',
      comment:
        'No import cycles in packages/node/src, packages/policy/src or packages/edge/src, type-only imports included.',
      severity: 'error',
      from: { path: `(${SDK}|${POLICY_SRC}|${EDGE})` },
      to: { circular: true },
    },
    ...layerRules,
    {
      name: 'layer-not-to-src-root',
      comment:
        'The files at packages/node/src/ (index.ts, install.ts, register.ts, …) sit above every layer: ' +
        'no layer may import them.',
      severity: 'error',
      from: { path: `${SDK}(${LAYERS.join('|')})/` },
      to: { path: `${SDK}[^/]+$` },
    },
    {
      name: 'policy-not-to-sdk',
      comment: '@egress-guard/policy sits below the SDK: it must not import it.',
      severity: 'error',
      from: { path: POLICY_SRC },
      to: { path: '^packages/node/' },
    },
    {
      name: 'not-to-unresolvable',
      comment:
        'Every import in packages/node/src resolves (a file on disk, a core module or an installed package).',
      severity: 'error',
      from: { path: SDK },
      to: { couldNotResolve: true },
    },
  ],
  options: {
    // Type-only imports (`import type`, `import { type X }`, `export type … from`) are dependencies too.
    tsPreCompilationDeps: true,
    // @egress-guard/* resolve to the packages' sources, as in vitest.config.ts: lint needs no build, and
    // cycles through the policy package are seen.
    tsConfig: { fileName: 'tsconfig.depcruise.json' },
    doNotFollow: { path: ['node_modules'] },
    enhancedResolveOptions: {
      exportsFields: ['exports'],
      conditionNames: ['import', 'require', 'node', 'default', 'types'],
      mainFields: ['module', 'main', 'types', 'typings'],
    },
  },
};
