import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('../../../', import.meta.url));
const require = createRequire(import.meta.url);
const pinoPath = require.resolve('pino');
const sonicBoomPath = createRequire(pinoPath).resolve('sonic-boom');
const dir = mkdtempSync(join(tmpdir(), 'egress-exit-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

// The child: an asynchronous sonic-boom file destination (which, unlike pino.destination(), registers
// no exit handler of its own), N events in one burst, then the ending under test.
const child = join(dir, 'child.mts');
writeFileSync(
  child,
  `import SonicBoom from ${JSON.stringify(pathToFileURL(sonicBoomPath).href)};
import { createEventEmitter } from ${JSON.stringify(pathToFileURL(join(root, 'packages/policy/src/index.ts')).href)};
const [file, ending, flush, n] = process.argv.slice(2);
const destination = new SonicBoom({ dest: file, sync: false });
// A service has been running a while: the file is open (before that there is no descriptor to flush to).
await new Promise((resolve) => destination.once('ready', resolve));
const events = createEventEmitter({ destination, flushOnExit: flush === 'flush' });
if (ending === 'app-sigterm') process.on('SIGTERM', () => { process.stdout.write('app handler\\n'); setTimeout(() => process.exit(0), 20); });
for (let i = 0; i < Number(n); i++) {
  events.emit({ 'event.name': 'egress.decision', 'egress.schema': 1, 'egress.source': 'sdk', 'egress.id': 'exit-' + i,
    'egress.decision': 'allowed', 'egress.reason': 'allowed', 'egress.mode': 'enforce', 'egress.policy.hash': '${'e'.repeat(64)}',
    'egress.hook': 'fetch', 'url.scheme': 'https', 'server.address': 'api.example.com', 'server.port': 443 });
}
if (ending === 'exit') process.exit(0);
process.kill(process.pid, 'SIGTERM');
// Bounded: a signal that did not end the process shows as this exit code, not as a hang.
setTimeout(() => process.exit(99), 5000);
`,
);

function run(ending: string, flush: 'flush' | 'no-flush', n: number) {
  const file = join(dir, `${ending}-${flush}.jsonl`);
  return new Promise<{ code: number | null; signal: string | null; lines: number; stdout: string }>(
    (resolve) => {
      const p = spawn(process.execPath, ['--import', 'tsx', child, file, ending, flush, String(n)], {
        cwd: root,
        stdio: ['ignore', 'pipe', 'inherit'],
      });
      let stdout = '';
      p.stdout.on('data', (c) => {
        stdout += c;
      });
      const timer = setTimeout(() => p.kill('SIGKILL'), 20_000);
      p.on('close', (code, signal) => {
        clearTimeout(timer);
        const text = existsSync(file) ? readFileSync(file, 'utf8') : '';
        resolve({ code, signal, lines: text === '' ? 0 : text.trimEnd().split('\n').length, stdout });
      });
    },
  );
}

const N = 20_000;

describe('flushOnExit', () => {
  it('on SIGTERM: every buffered event reaches the file, and the process still dies by SIGTERM', async () => {
    const r = await run('sigterm', 'flush', N);
    expect(r.lines).toBe(N);
    expect(r.signal).toBe('SIGTERM');
  });

  it('without it, SIGTERM loses the buffered events (the reason for the option)', async () => {
    const r = await run('sigterm', 'no-flush', N);
    expect(r.signal).toBe('SIGTERM');
    expect(r.lines).toBeLessThan(N);
  });

  it('on a normal exit (process.exit): every event reaches the file', async () => {
    const r = await run('exit', 'flush', N);
    expect(r.code).toBe(0);
    expect(r.lines).toBe(N);
    const lost = await run('exit', 'no-flush', N);
    expect(lost.lines).toBeLessThan(N);
  });

  it("leaves the decision to exit to the application's own SIGTERM handler", async () => {
    const r = await run('app-sigterm', 'flush', N);
    expect(r.stdout).toBe('app handler\n');
    expect(r.code).toBe(0);
    expect(r.signal).toBeNull();
    expect(r.lines).toBe(N);
  });
});
