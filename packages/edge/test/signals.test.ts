/**
 * Signals on a real child process running `startEdge({ signals: true })`: SIGHUP reloads the policy
 * file (flows in flight kept), SIGTERM drains (stops accepting, waits for flows) and the process exits 0.
 * The child runs the TypeScript sources through tsx, with `@egress-guard/*` mapped to the sources as
 * vitest does.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import net from 'node:net';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { type RecordingServer, startTcpServer } from '../../../test/support/index.js';
import { connectTunnel, echo, TEST_PORTS, tempDir, untilClosed, waitFor } from './helpers/edge-kit.js';

const REPO = fileURLToPath(new URL('../../../', import.meta.url));
const rule = (name: string, host: string) => `
  - name: ${name}
    hosts: [${host}]
    schemes: [tcp]
    ports: [${TEST_PORTS}]
    privateAddresses: allow`;

const CHILD = `
import { startEdge } from ${JSON.stringify(pathToFileURL(`${REPO}packages/edge/src/index.ts`).href)};
const [policy] = process.argv.slice(2);
const names = { 'db.test': '127.0.0.1' };
const edge = await startEdge({
  policy,
  listeners: [{ kind: 'explicit', host: '127.0.0.1', port: 0 }],
  signals: true,
  watch: false,
  defaultMetrics: false,
  limits: { drainTimeout: '10s' },
  resolver: {
    resolve4: async (name) => (names[name] ? [{ address: names[name], ttl: 0 }] : []),
    resolve6: async () => [],
  },
});
process.stderr.write('READY ' + JSON.stringify({ port: edge.listeners[0].port }) + '\\n');
`;

let child: ChildProcess | undefined;
let server: RecordingServer | undefined;
let dir: Awaited<ReturnType<typeof tempDir>> | undefined;
afterEach(async () => {
  if (child && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  await server?.close();
  await dir?.cleanup();
  child = undefined;
});

describe('signals', () => {
  it('SIGHUP reloads; SIGTERM drains in-flight flows and exits 0', async () => {
    server = await startTcpServer();
    dir = await tempDir();
    const policyFile = await dir.write('egress.yaml', `version: 1\nallow:${rule('db', 'db.test')}\n`);
    const script = await dir.write('edge-child.mts', CHILD);
    const tsconfig = await dir.write(
      'tsconfig.json',
      JSON.stringify({
        extends: `${REPO}tsconfig.base.json`,
        compilerOptions: { paths: { '@egress-guard/policy': [`${REPO}packages/policy/src/index.ts`] } },
      }),
    );
    const tsx = pathToFileURL(createRequire(import.meta.url).resolve('tsx')).href;
    const proc = spawn(process.execPath, ['--import', tsx, script, policyFile], {
      env: { ...process.env, TSX_TSCONFIG_PATH: tsconfig },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child = proc;
    let stdout = '';
    let stderr = '';
    proc.stdout!.on('data', (c: Buffer) => {
      stdout += c.toString();
    });
    proc.stderr!.on('data', (c: Buffer) => {
      stderr += c.toString();
    });
    const exited = new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)));
    const ready = await waitFor(
      () => /READY (\{.*\})/.exec(stderr)?.[1],
      20_000,
      `READY from the child (stderr: ${stderr})`,
    );
    const port = (JSON.parse(ready) as { port: number }).port;
    const events = () =>
      stdout
        .split('\n')
        .filter((l) => l.startsWith('{'))
        .map((l) => JSON.parse(l) as Record<string, unknown>);

    const tunnel = await connectTunnel(port, `db.test:${server.port}`);
    expect(tunnel.status).toBe(200);
    expect((await echo(tunnel.socket, Buffer.from('before'))).toString()).toBe('before');

    await writeFile(policyFile, `version: 1\nallow:${rule('other', 'other.test')}\n`);
    proc.kill('SIGHUP');
    await waitFor(
      () => events().find((e) => e['event.name'] === 'egress.policy.reloaded'),
      10_000,
      'the reload event',
    );
    expect((await connectTunnel(port, `db.test:${server.port}`)).status).toBe(403);
    expect((await echo(tunnel.socket, Buffer.from('kept'))).toString()).toBe('kept');

    proc.kill('SIGTERM');
    let refused = false;
    for (let i = 0; i < 50 && !refused; i++) {
      refused = await new Promise<boolean>((resolve) => {
        const s = net.connect(port, '127.0.0.1');
        s.once('error', () => resolve(true));
        s.once('connect', () => {
          s.destroy();
          resolve(false);
        });
      });
      if (!refused) await new Promise((r) => setTimeout(r, 50));
    }
    expect(refused).toBe(true);
    // Still draining: the flow in flight keeps working, and the process waits for it.
    expect((await echo(tunnel.socket, Buffer.from('draining'))).toString()).toBe('draining');
    expect(proc.exitCode).toBeNull();
    tunnel.socket.end();
    await untilClosed(tunnel.socket);
    const code = await Promise.race([
      exited,
      new Promise<string>((r) => setTimeout(() => r('timeout'), 10_000)),
    ]);
    expect(code).toBe(0);
    const completion = events().find(
      (e) => e['event.name'] === 'egress.completion' && e['egress.rule'] === 'db',
    );
    expect(completion).toMatchObject({ 'egress.close_reason': 'client_closed', 'egress.outcome': 'ok' });
  });
});
