// Summaries of V8 CPU profiles (`node --cpu-prof`): self time per function, with the workspace's built
// files (packages/*/dist) mapped back to their TypeScript source through the build's source maps, and
// self time per area (egress-guard, undici, pino, opossum, Node internals, GC).
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { SourceMap } from 'node:module';
import { join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const repoRoot = resolve(fileURLToPath(new URL('../..', import.meta.url)));
const maps = new Map();

function sourceMapFor(file) {
  if (maps.has(file)) return maps.get(file);
  let map;
  try {
    const mapFile = `${file}.map`;
    if (existsSync(mapFile))
      map = { sm: new SourceMap(JSON.parse(readFileSync(mapFile, 'utf8'))), dir: join(file, '..') };
  } catch {
    map = undefined;
  }
  maps.set(file, map);
  return map;
}

/** `file:line` for a profile call frame, in the TypeScript source when a source map says where. */
export function locate(callFrame) {
  const { url, lineNumber, columnNumber } = callFrame;
  if (!url) return '';
  let file = url.startsWith('file://') ? fileURLToPath(url) : url;
  if (file.startsWith('/')) {
    const m = sourceMapFor(file);
    if (m && lineNumber >= 0) {
      const e = m.sm.findEntry(lineNumber, columnNumber);
      if (e?.originalSource) {
        const src = e.originalSource.startsWith('file://')
          ? fileURLToPath(e.originalSource)
          : resolve(m.dir, e.originalSource);
        return `${relative(repoRoot, src)}:${e.originalLine + 1}`;
      }
    }
    file = relative(repoRoot, file).replace(/^node_modules\/\.pnpm\/[^/]+\/node_modules\//, 'node_modules/');
  }
  return `${file}:${lineNumber + 1}`;
}

/** Which part of the stack a frame belongs to. */
export function areaOf(callFrame) {
  const url = callFrame.url ?? '';
  const name = callFrame.functionName;
  if (name === '(garbage collector)') return 'GC';
  if (name === '(program)' || name === '(idle)' || name === '(root)') return name;
  if (/packages\/(node|policy|edge|cli)\//.test(url)) return 'egress-guard';
  if (/undici/.test(url)) return 'undici';
  if (/pino|sonic-boom|thread-stream|fast-redact|quick-format/.test(url)) return 'pino';
  if (/opossum/.test(url)) return 'opossum';
  if (/request-filtering-agent|ipaddr/.test(url)) return 'request-filtering-agent';
  if (/prom-client/.test(url)) return 'prom-client';
  if (/\/bench\//.test(url)) return 'bench harness';
  if (url.startsWith('node:') || url === '') return 'node internals / native';
  if (/node_modules/.test(url)) return 'other packages';
  return 'other';
}

/**
 * Summarises one .cpuprofile: `{ totalMs, busyMs, functions: [{ name, where, area, selfMs, pct }], areas: [...] }`,
 * where pct is the share of busy (non-idle) time; functions sorted by self time. `window: [fromUs, toUs]`
 * (process.hrtime.bigint() / 1000n of the profiled process) keeps the samples of one phase.
 */
export function summariseProfile(file, { top = 15, window } = {}) {
  const prof = JSON.parse(readFileSync(file, 'utf8'));
  const byId = new Map(prof.nodes.map((n) => [n.id, n]));
  const self = new Map();
  // Sample times are on the monotonic clock, as process.hrtime (µs): `window` keeps one phase only.
  let t = prof.startTime;
  for (let i = 0; i < prof.samples.length; i++) {
    const dt = prof.timeDeltas[i] ?? 0;
    t += dt;
    if (window && (t < window[0] || t > window[1])) continue;
    const id = prof.samples[i];
    self.set(id, (self.get(id) ?? 0) + dt);
  }
  const fns = new Map();
  const areas = new Map();
  let total = 0;
  let idle = 0;
  for (const [id, us] of self) {
    const node = byId.get(id);
    const cf = node.callFrame;
    total += us;
    if (cf.functionName === '(idle)') {
      idle += us;
      continue;
    }
    const where = locate(cf);
    const key = `${cf.functionName}|${where}`;
    const area = areaOf(cf);
    const f = fns.get(key) ?? { name: cf.functionName || '(anonymous)', where, area, selfUs: 0 };
    f.selfUs += us;
    fns.set(key, f);
    areas.set(area, (areas.get(area) ?? 0) + us);
  }
  const busy = total - idle;
  const pct = (us) => (busy > 0 ? (100 * us) / busy : 0);
  return {
    totalMs: total / 1000,
    busyMs: busy / 1000,
    functions: [...fns.values()]
      .sort((a, b) => b.selfUs - a.selfUs)
      .slice(0, top)
      .map((f) => ({
        name: f.name,
        where: f.where,
        area: f.area,
        selfMs: f.selfUs / 1000,
        pct: pct(f.selfUs),
      })),
    areas: [...areas.entries()]
      .sort((a, b) => b[1] - a[1])
      .map(([area, us]) => ({ area, selfMs: us / 1000, pct: pct(us) })),
  };
}

/** The newest .cpuprofile in `dir`. */
export function newestProfile(dir) {
  const files = readdirSync(dir).filter((f) => f.endsWith('.cpuprofile'));
  if (files.length === 0) return undefined;
  return join(dir, files.sort().at(-1));
}

/** A summary as markdown lines (areas, then the top functions). */
export function profileMarkdown(summary, { title, top = 12 } = {}) {
  const lines = [];
  if (title) lines.push(`**${title}** (busy ${summary.busyMs.toFixed(0)} ms sampled)`, '');
  lines.push(
    `Self time by area: ${summary.areas
      .filter((a) => a.pct >= 1)
      .map((a) => `${a.area} ${a.pct.toFixed(0)}%`)
      .join(', ')}`,
    '',
    '| self % | function | where |',
    '|---:|---|---|',
    ...summary.functions.slice(0, top).map((f) => `| ${f.pct.toFixed(1)} | \`${f.name}\` | ${f.where} |`),
  );
  return lines.join('\n');
}
